"""Masked-LM masking statistics, whole words, determinism; next-sentence pairs."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from ptft_keras.data.masking import MaskedLMMasker, make_nsp_pairs
from ptft_keras.errors import ConfigError

PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
SPECIAL = [PAD, UNK, CLS, SEP, MASK]
VOCAB = 5000


def packed_batch(rows: int, length: int, seed: int = 0) -> np.ndarray:
    """[CLS] random ids [SEP] [PAD]... with random lengths; about rows * 0.9 * length tokens."""
    rng = np.random.default_rng(seed)
    ids = np.zeros([rows, length], np.int32)
    for row, n in enumerate(rng.integers(length // 2, length - 1, size=rows)):
        ids[row, 0], ids[row, 1:n + 1], ids[row, n + 1] = CLS, rng.integers(5, VOCAB, n), SEP
    return ids


def masker(**kwargs) -> MaskedLMMasker:
    kwargs.setdefault("max_predictions_per_seq", 40)
    return MaskedLMMasker(vocabulary_size=VOCAB, mask_token_id=MASK, special_token_ids=SPECIAL,
                          **kwargs)


def test_rate_and_80_10_10_split_over_100k_tokens():
    ids = packed_batch(1200, 128)
    out = masker()(ids, seed=[1, 2], padding_mask=ids != PAD)
    maskable = (ids > MASK)
    assert maskable.sum() >= 100_000
    weights = out["mask_weights"].numpy()
    positions = out["mask_positions"].numpy()
    selected = np.zeros_like(maskable)
    for row in range(ids.shape[0]):
        selected[row, positions[row][weights[row] > 0]] = True
    assert abs(selected.sum() / maskable.sum() - 0.15) < 0.01
    assert not (selected & ~maskable).any(), "a special token or padding was selected"
    corrupted = out["token_ids"].numpy()
    assert (corrupted[~selected] == ids[~selected]).all(), "an unselected token changed"
    as_mask = corrupted[selected] == MASK
    kept = corrupted[selected] == ids[selected]
    replaced = ~as_mask & ~kept
    assert abs(as_mask.mean() - 0.8) < 0.01
    assert abs(replaced.mean() - 0.1) < 0.01
    assert abs(kept.mean() - 0.1) < 0.01
    assert not np.isin(corrupted[selected][replaced], SPECIAL).any()
    # labels: the original ids at ascending positions, zeros where unused
    np.testing.assert_array_equal(out["mask_ids"].numpy(),
                                  np.take_along_axis(ids, positions, 1) * (weights > 0))
    for row_positions, row_weights in zip(positions, weights):
        count = int(row_weights.sum())
        assert (row_weights[:count] == 1).all() and (np.diff(row_positions[:count]) > 0).all()
    assert out["mask_positions"].dtype == tf.int32 and out["mask_weights"].dtype == tf.float32


def test_max_predictions_per_seq_caps_the_selection():
    ids = packed_batch(50, 64)
    out = masker(mlm_probability=1.0, max_predictions_per_seq=5)(ids, seed=[0, 0])
    assert out["mask_positions"].shape == (50, 5)
    assert (out["mask_weights"].numpy().sum(axis=1) == 5).all()


def test_short_sequences_are_padded_to_max_predictions():
    out = masker(mlm_probability=1.0, max_predictions_per_seq=8)(
        np.array([[CLS, 10, 11, SEP]], np.int32), seed=[0, 0])
    assert out["mask_positions"].numpy().tolist() == [[1, 2, 0, 0, 0, 0, 0, 0]]
    assert out["mask_weights"].numpy().tolist() == [[1, 1, 0, 0, 0, 0, 0, 0]]


def test_whole_word_masking_takes_all_pieces_of_a_word():
    continuation = np.zeros(VOCAB, bool)
    continuation[2500:] = True  # ids >= 2500 are "##" pieces
    ids = packed_batch(400, 128, seed=3)
    out = masker(whole_word_masking=True, continuation_mask=continuation)(
        ids, seed=[5, 5], padding_mask=ids != PAD)
    weights, positions = out["mask_weights"].numpy(), out["mask_positions"].numpy()
    words_checked = 0
    for row in range(ids.shape[0]):
        chosen = set(positions[row][weights[row] > 0].tolist())
        word = []
        for position, token in enumerate(ids[row].tolist() + [PAD]):
            if word and (token <= MASK or not continuation[token]):
                states = {p in chosen for p in word}
                assert len(states) == 1, f"row {row}: word {word} partly masked"
                words_checked += len(word) > 1 and True in states
                word = []
            if token > MASK:
                word.append(position)
    assert words_checked > 100
    rate = weights.sum() / (ids > MASK).sum()
    assert 0.13 < rate <= 0.15 + 0.01


def test_same_seed_same_masks_different_seed_different_masks():
    ids = packed_batch(32, 64)
    m = masker()
    first, again, other = m(ids, seed=[7, 1]), m(ids, seed=[7, 1]), m(ids, seed=[7, 2])
    for key in first:
        np.testing.assert_array_equal(first[key].numpy(), again[key].numpy())
    assert not np.array_equal(first["mask_positions"].numpy(), other["mask_positions"].numpy())


def test_runs_in_a_graph_with_unknown_shapes():
    m = masker()
    fn = tf.function(lambda ids, seed: m(ids, seed),
                     input_signature=[tf.TensorSpec([None, None], tf.int32),
                                      tf.TensorSpec([2], tf.int64)])
    ids = packed_batch(4, 30)
    graph = fn(ids, tf.constant([3, 4], tf.int64))
    eager = m(ids, [3, 4])
    np.testing.assert_array_equal(graph["token_ids"].numpy(), eager["token_ids"].numpy())


def test_invalid_settings():
    with pytest.raises(ConfigError):
        masker(mlm_probability=0.0)
    with pytest.raises(ConfigError):
        masker(mask_token_rate=0.8, random_token_rate=0.3)
    with pytest.raises(ConfigError, match="continuation_mask"):
        masker(whole_word_masking=True)


# --------------------------------------------------------------------------- NSP
def chunks_of(num_documents: int, chunks_per_document: int = 3):
    """Token id = document * 1000 + position; three sentences of 4 tokens per chunk."""
    chunks, sentences, documents = [], [], []
    for document in range(num_documents):
        for chunk in range(chunks_per_document):
            start = chunk * 12
            chunks.append([document * 1000 + start + i for i in range(12)])
            sentences.append([(start + i) // 4 for i in range(12)])
            documents.append(document)
    return tf.ragged.constant(chunks), tf.ragged.constant(sentences), tf.constant(documents, tf.int64)


def test_nsp_pairs_split_at_sentence_boundaries_and_half_are_random():
    chunks, sentences, documents = chunks_of(400)
    first, second, is_random = make_nsp_pairs(chunks, sentences, documents, [0, 9])
    first, second, is_random = first.to_list(), second.to_list(), is_random.numpy()
    assert abs(is_random.mean() - 0.5) < 0.05
    for a, b, random_next, original, document in zip(first, second, is_random, chunks.to_list(),
                                                     documents.numpy()):
        assert len(a) in (4, 8), "A must end at a sentence boundary"
        assert a == original[:len(a)]
        if random_next:
            assert b and b[0] // 1000 != document, "a random B must come from another document"
        else:
            assert a + b == original


def test_nsp_is_deterministic_under_a_seed_and_never_random_with_one_document():
    chunks, sentences, documents = chunks_of(20)
    one = make_nsp_pairs(chunks, sentences, documents, [1, 1])
    two = make_nsp_pairs(chunks, sentences, documents, [1, 1])
    assert one[1].to_list() == two[1].to_list()
    single = make_nsp_pairs(*chunks_of(1), [1, 1])
    assert single[2].numpy().tolist() == [0, 0, 0]


def test_nsp_single_sentence_chunk_splits_inside_it():
    first, second, _ = make_nsp_pairs(tf.ragged.constant([[1, 2, 3, 4, 5]]),
                                      tf.ragged.constant([[0, 0, 0, 0, 0]]), [0], [4, 4])
    assert 1 <= len(first.to_list()[0]) <= 4
    assert first.to_list()[0] + second.to_list()[0] == [1, 2, 3, 4, 5]
