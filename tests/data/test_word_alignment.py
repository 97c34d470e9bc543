"""Word -> word-piece alignment: first-piece labels, windows for long sentences, and one prediction per word."""
import numpy as np
import pytest
import tensorflow as tf

from ptft_keras.data.tokenizer import Tokenizer
from ptft_keras.data.word_alignment import (
    IGNORE_INDEX,
    align_words,
    longest_sequence_length,
    num_batches,
    predict_words,
    tokenize_words,
    windows_dataset,
)
from ptft_keras.errors import ConfigError, DataError

VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "john", "smith", "##s", "##on", "sings", "in", "paris",
              ".", "-", "new", "york"]


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.from_vocabulary(VOCABULARY, model_max_length=64)


def ids(*tokens):
    return [VOCABULARY.index(t) for t in tokens]


def test_each_word_is_tokenized_on_its_own(tok):
    pieces = tokenize_words(tok, [["John", "Smithson", "sings"], ["New-York", ".", "\u200b"]])
    assert pieces.to_list() == [
        [ids("john"), ids("smith", "##s", "##on"), ids("sings")],
        [ids("new", "-", "york"), ids("."), ids("[UNK]")],  # a word the basic tokenizer drops still gets a piece
    ]
    assert tokenize_words(tok, [["john"]] * 5, batch_size=2).to_list() == [[ids("john")]] * 5
    assert tokenize_words(tok, []).shape[0] == 0


def test_labels_on_first_pieces_and_minus_100_elsewhere(tok):
    pieces = tokenize_words(tok, [["John", "Smiths", "sings"], ["New-York"]])
    aligned = align_words(pieces, [[1, 2, 0], [3]], sequence_length=16)
    assert aligned.piece_ids.to_list() == [ids("john", "smith", "##s", "sings"), ids("new", "-", "york")]
    assert aligned.labels.to_list() == [[1, 2, IGNORE_INDEX, 0], [3, IGNORE_INDEX, IGNORE_INDEX]]
    assert aligned.pick_positions.to_list() == [[1, 2, 4], [1]]  # [CLS] is position 0
    assert aligned.pick_words.to_list() == [[0, 1, 2], [3]]
    assert (len(aligned), aligned.num_sentences, aligned.num_words) == (2, 2, 4)
    assert aligned.window_lengths.tolist() == [6, 5]
    assert [row.tolist() for row in aligned.per_sentence(np.arange(4))] == [[0, 1, 2], [3]]


def test_labels_must_match_the_words(tok):
    pieces = tokenize_words(tok, [["John", "sings"]])
    with pytest.raises(DataError, match="sentence 1 has 2 words but 3 labels"):
        align_words(pieces, [[1, 0, 0]], sequence_length=8)
    with pytest.raises(DataError, match="2 label sequences for 1 sentences"):
        align_words(pieces, [[1, 0], [0]], sequence_length=8)
    with pytest.raises(ConfigError, match="ragged"):
        align_words(pieces.merge_dims(1, 2), sequence_length=8)


def best_windows_by_brute_force(num_pieces, starts, window):
    """For one sentence of one-piece words: the window each word should be read from (most context)."""
    best = []
    for word in range(num_pieces):
        scores = []
        for k, start in enumerate(starts):
            end = min(start + window, num_pieces)
            if start <= word < end:
                left = word - start if start > 0 else np.inf
                right = end - 1 - word if end < num_pieces else np.inf
                scores.append((min(left, right), -k))
        best.append(-max(scores)[1])
    return best


@pytest.mark.parametrize("stride", [None, 7, 30])
def test_a_600_word_sentence_gets_600_predictions_at_length_32(tok, stride):
    words = [["john", "smiths"][i % 2] for i in range(600)]  # 1 or 2 pieces per word: windows cut words
    labels = np.arange(600) % 5
    pieces = tokenize_words(tok, [["sings"], words, ["paris"]])
    aligned = align_words(pieces, [[0], labels, [4]], sequence_length=32, window_stride=stride)
    assert (aligned.window_lengths <= 32).all()
    long_windows = np.flatnonzero(aligned.window_sentence_ids == 1)
    assert len(long_windows) >= 30  # 900 pieces, 30 per window

    # A fake model whose "logits" are the packed token ids: each word must read its own first piece.
    def predict_batch(features):
        return tf.cast(features["token_ids"], tf.float32)[..., None]

    values = predict_words(predict_batch, aligned, tok, batch_size=4)[:, 0].astype(int)
    first_pieces = [row[0] for sentence in pieces.to_list() for row in sentence]
    assert len(values) == 602 and values.tolist() == first_pieces
    assert [len(row) for row in aligned.per_sentence(values)] == [1, 600, 1]

    # Every word is labelled exactly once, in the window it is read from.
    label_rows, pick_rows = aligned.labels.to_list(), aligned.pick_positions.to_list()
    labelled = [lab for row in label_rows for lab in row if lab != IGNORE_INDEX]
    assert sorted(labelled) == sorted([0, 4] + labels.tolist())
    for window, (row, picks) in enumerate(zip(label_rows, pick_rows)):
        assert [p - 1 for p in picks] == [i for i, lab in enumerate(row) if lab != IGNORE_INDEX], window

    # ... and that window is the one where the word has the most context.
    if stride is not None:
        one_piece = align_words(tokenize_words(tok, [["john"] * 600]), sequence_length=32, window_stride=stride)
        starts = list(range(0, 600 - 30 + stride, stride))[: len(one_piece)]
        chosen = np.repeat(np.arange(len(one_piece)), one_piece.pick_words.row_lengths().numpy())
        order = np.argsort(one_piece.pick_words.flat_values.numpy())
        assert chosen[order].tolist() == best_windows_by_brute_force(600, starts, 30)


def test_the_sequence_length_covers_the_longest_sentence(tok):
    pieces = tokenize_words(tok, [["john"] * 3, ["smiths"] * 10])
    assert longest_sequence_length(pieces, max_length=512) == 24  # 20 pieces + 2, rounded up to 8
    assert longest_sequence_length(pieces, max_length=16) == 16


def batches(dataset):
    return [(f, l) for f, l in dataset]


@pytest.mark.parametrize("padding", ["grouped", "dynamic", "bucket", "fixed"])
def test_batches_hold_packed_windows_and_aligned_labels(tok, padding):
    rng = np.random.default_rng(0)
    sentences = [["john", "smiths", "sings"] * rng.integers(1, 8) for _ in range(37)]
    labels = [rng.integers(0, 3, len(words)) for words in sentences]
    aligned = align_words(tokenize_words(tok, sentences), labels, sequence_length=40)
    dataset = windows_dataset(aligned, tok, batch_size=8, padding=padding, shuffle=True, seed=1)
    out = batches(dataset)
    assert len(out) == int(dataset.cardinality()) == num_batches(aligned, 8) == 5
    seen = []
    for features, batch_labels in out:
        token_ids, labels_ = features["token_ids"].numpy(), batch_labels.numpy()
        assert token_ids.shape == labels_.shape == features["padding_mask"].shape
        if padding == "fixed":
            assert token_ids.shape[1] == 40
        if padding in ("grouped", "dynamic"):  # padded to the longest window of the batch, no more
            assert features["padding_mask"].numpy().sum(axis=1).max() == token_ids.shape[1]
        for row, row_labels in zip(token_ids, labels_):
            first = np.isin(row, ids("john", "smith", "sings"))  # the first pieces of this vocabulary's words
            assert ((row_labels != IGNORE_INDEX) == first).all()
            assert row[0] == tok.cls_token_id and (row_labels[row == tok.pad_token_id] == IGNORE_INDEX).all()
            seen.append(tuple(row_labels[first]))
    assert sorted(seen) == sorted(tuple(lab) for lab in labels)  # every sentence exactly once per epoch


def test_grouped_batches_pad_far_less_than_random_ones(tok):
    rng = np.random.default_rng(0)
    sentences = [["john"] * int(n) for n in rng.integers(1, 60, 160)]
    aligned = align_words(tokenize_words(tok, sentences), [np.zeros(len(s), int) for s in sentences],
                          sequence_length=64)

    def padding_share(padding):
        total = real = 0
        for features, _ in windows_dataset(aligned, tok, batch_size=16, padding=padding, shuffle=True):
            total += features["padding_mask"].shape[0] * features["padding_mask"].shape[1]
            real += int(features["padding_mask"].numpy().sum())
        return total / real - 1

    assert padding_share("grouped") < 0.1 < 0.5 < padding_share("dynamic")


def test_dataset_options_are_checked(tok):
    aligned = align_words(tokenize_words(tok, [["john"]]), sequence_length=8)
    with pytest.raises(ConfigError, match="no labels"):
        windows_dataset(aligned, tok, batch_size=2)
    with pytest.raises(ConfigError, match="unknown padding"):
        windows_dataset(aligned, tok, batch_size=2, padding="ragged", with_labels=False)
    features = next(iter(windows_dataset(aligned, tok, batch_size=2, with_labels=False)))
    assert features["token_ids"].numpy().tolist() == [[tok.cls_token_id] + ids("john") + [tok.sep_token_id]]


def test_matches_transformers_is_split_into_words(minilm_path):
    """The ids and first-piece labels transformers' fast tokenizer gives pre-split words."""
    transformers = pytest.importorskip("transformers")
    hf = transformers.AutoTokenizer.from_pretrained(minilm_path)
    ours = Tokenizer.from_pretrained(minilm_path)
    sentences = [
        ["SOCCER", "-", "JAPAN", "GET", "LUCKY", "WIN", ",", "CHINA", "IN", "SURPRISE", "DEFEAT", "."],
        ["Nadim", "Ladki"], ["AL-AIN", ",", "United", "Arab", "Emirates", "1996-12-06"],
        ["São", "Paulo", "'s", "Müller", "scored", "3,000", "points", "(", "U.S.", ")", "don't"],
        ["\u200b", "naïve", "café", "東京", "x" * 120],
    ]
    labels = [np.arange(len(s)) % 7 for s in sentences]
    aligned = align_words(tokenize_words(ours, sentences), labels, sequence_length=128)
    for i, words in enumerate(sentences):
        encoded = hf(words, is_split_into_words=True)
        expected, previous = [], None
        for word in encoded.word_ids():
            expected.append(IGNORE_INDEX if word is None or word == previous else int(labels[i][word]))
            previous = word
        packed = [ours.cls_token_id] + aligned.piece_ids[i].numpy().tolist() + [ours.sep_token_id]
        if "\u200b" in words:  # transformers gives this word no piece (so no label); we give it [UNK]
            assert packed[1] == ours.unk_token_id
            packed = packed[:1] + packed[2:]
            ours_labels = [IGNORE_INDEX] + aligned.labels[i].numpy().tolist()[1:] + [IGNORE_INDEX]
        else:
            ours_labels = [IGNORE_INDEX] + aligned.labels[i].numpy().tolist() + [IGNORE_INDEX]
        assert packed == encoded["input_ids"], words
        assert ours_labels == expected, words
