import numpy as np
import pytest
import tensorflow as tf

from ptft_keras.data.sequence_length import (
    choose_sequence_length,
    sample_rows,
    sequence_length_from_data,
    token_lengths,
)
from ptft_keras.errors import DataError


class WordTokenizer:
    """Stands in for ptft_keras.data.tokenizer.Tokenizer: one id per whitespace-separated word."""

    def tokenize(self, texts):
        words = tf.strings.split(tf.convert_to_tensor(texts, tf.string))
        return tf.ragged.map_flat_values(lambda w: tf.strings.length(w), words)


def test_percentile_is_rounded_up_to_a_multiple_of_8():
    lengths = list(range(1, 101))  # 95th percentile (higher) = 96 -> already a multiple of 8
    assert choose_sequence_length(lengths, max_length=512) == 96
    assert choose_sequence_length([17] * 20, max_length=512) == 24
    assert choose_sequence_length([8] * 20, max_length=512) == 8


def test_percentile_ignores_a_long_tail_under_five_percent():
    lengths = [10] * 96 + [400] * 4
    assert choose_sequence_length(lengths, max_length=512) == 16
    assert choose_sequence_length(lengths, max_length=512, percentile=100) == 400


def test_capped_at_the_checkpoint_maximum():
    assert choose_sequence_length([600, 700], max_length=512) == 512
    assert choose_sequence_length([600, 700], max_length=300) == 300


def test_no_examples_is_a_data_error():
    with pytest.raises(DataError, match="--sequence-length"):
        choose_sequence_length([], max_length=512)


def test_token_lengths_count_special_tokens():
    tok = WordTokenizer()
    assert token_lengths(tok, ["a b c", "d"]).tolist() == [5, 3]
    assert token_lengths(tok, ["a b c", "d"], ["x", "y z"]).tolist() == [7, 6]
    assert token_lengths(tok, ["a"] * 5, batch_size=2).tolist() == [3] * 5


def test_sample_is_seeded_and_bounded():
    rows = list(range(1000))
    a, b = sample_rows(rows, 100, seed=3), sample_rows(rows, 100, seed=3)
    assert len(a) == 100 and len(set(a.tolist())) == 100 and (a == b).all()
    assert sample_rows(rows, 5000).tolist() == rows


def test_lengths_are_measured_after_text_normalization():
    tok = WordTokenizer()
    assert token_lengths(tok, ["a<br/>b"]).tolist() == [3]
    assert token_lengths(tok, ["a<br/>b"], text_normalization="html_breaks").tolist() == [4]


def test_from_data_end_to_end():
    tok = WordTokenizer()
    texts = [" ".join(["w"] * n) for n in np.arange(1, 41)]  # 1..40 words -> 3..42 tokens
    # 95th percentile (higher) of 3..42 is 41 -> rounded up to 48
    assert sequence_length_from_data(tok, texts, max_length=512) == 48
    assert sequence_length_from_data(tok, texts, max_length=32) == 32


def test_real_tokenizer_lengths_match_the_packed_sequence():
    tokenizer_module = pytest.importorskip("ptft_keras.data.tokenizer")
    from ptft_keras.models.default_checkpoint import default_checkpoint_path

    tok = tokenizer_module.Tokenizer.from_pretrained(default_checkpoint_path())
    texts = ["a charming and often affecting journey .", "hi"]
    lengths = token_lengths(tok, texts)
    packed = tok(texts, sequence_length=32)
    np.testing.assert_array_equal(lengths, np.asarray(packed["padding_mask"]).sum(axis=1))
