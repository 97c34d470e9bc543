"""Word vectors: the three file formats, the embedding matrix for our vocabulary, word2vec training."""
import doctest
import math

import keras
import numpy as np
import pytest

import ptft_keras.models.word_vectors
from ptft_keras.errors import ConfigError, DataError
from ptft_keras.models.bilstm import BiLSTMEncoder
from ptft_keras.models.word_vectors import (
    embedding_matrix,
    heldout_word2vec_loss,
    read_word_vectors,
    set_embeddings,
    train_word2vec,
)

VECTORS = {"the": [0.1, 0.2, 0.3], "Cat": [1.0, 2.0, 3.0], "sat": [-1.0, 0.5, 0.0]}
VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "##s", "mat"]


def write_text(path, header: bool, extra_lines=()):
    lines = [f"{word} {' '.join(map(str, vector))}" for word, vector in VECTORS.items()] + list(extra_lines)
    if header:
        lines.insert(0, f"{len(lines)} 3")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def check(vectors, words=VECTORS):
    assert set(vectors) == set(words)
    for word in words:
        np.testing.assert_allclose(vectors[word], VECTORS[word], rtol=1e-6)
        assert vectors[word].dtype == np.float32


def test_docstring_examples():
    result = doctest.testmod(ptft_keras.models.word_vectors, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_reads_word2vec_text_glove_and_word2vec_binary(tmp_path):
    from gensim.models import KeyedVectors

    check(read_word_vectors(write_text(tmp_path / "w2v.txt", header=True)))
    check(read_word_vectors(write_text(tmp_path / "w2v.vec", header=True), format="word2vec_text"))
    check(read_word_vectors(write_text(tmp_path / "glove.txt", header=False)))
    keyed = KeyedVectors(3)
    keyed.add_vectors(list(VECTORS), np.array(list(VECTORS.values()), "float32"))
    keyed.save_word2vec_format(str(tmp_path / "w2v.bin"), binary=True)
    check(read_word_vectors(tmp_path / "w2v.bin"))
    check(read_word_vectors(tmp_path / "w2v.bin", words=["cat"], limit=2), words=["Cat"])


def test_glove_words_with_spaces_filtering_and_limit(tmp_path):
    path = write_text(tmp_path / "glove.txt", header=False, extra_lines=["at home 0.5 0.5 0.5"])
    vectors = read_word_vectors(path, format="glove")
    np.testing.assert_allclose(vectors["at home"], [0.5, 0.5, 0.5])
    check(read_word_vectors(path, words=["cat", "the"]), words=["Cat", "the"])  # any case is kept
    assert list(read_word_vectors(path, limit=2)) == ["the", "Cat"]


def test_bad_files_say_where(tmp_path):
    with pytest.raises(DataError, match="no such word-vector file"):
        read_word_vectors(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("the 0.1 0.2\ncat 0.1 oops\n")
    with pytest.raises(DataError, match="line 2.*not a number"):
        read_word_vectors(bad)
    with pytest.raises(ConfigError, match="format"):
        read_word_vectors(bad, format="fasttext")
    (tmp_path / "bad.bin").write_bytes(b"\x00\x01garbage")
    with pytest.raises(DataError, match="word2vec binary"):
        read_word_vectors(tmp_path / "bad.bin")


def test_embedding_matrix_and_encoder_rows(tmp_path):
    vectors = read_word_vectors(write_text(tmp_path / "glove.txt", header=False), words=VOCABULARY)
    base = np.full((len(VOCABULARY), 3), 9.0, "float32")
    matrix, found = embedding_matrix(VOCABULARY, vectors, base)
    assert found == 2  # "the" and "cat" (from "Cat"); "##s" and "mat" keep their rows
    np.testing.assert_allclose(matrix[6], VECTORS["Cat"])
    np.testing.assert_array_equal(matrix[[0, 7, 8]], base[[0, 7, 8]])

    encoder = BiLSTMEncoder(vocabulary_size=len(VOCABULARY), embedding_dim=3, lstm_units=2)
    before = keras.ops.convert_to_numpy(encoder.token_embedding.embeddings)
    assert set_embeddings(encoder, VOCABULARY, vectors) == 2
    after = keras.ops.convert_to_numpy(encoder.token_embedding.embeddings)
    np.testing.assert_allclose(after[5], VECTORS["the"])
    np.testing.assert_array_equal(after[[0, 1, 7, 8]], before[[0, 1, 7, 8]])
    with pytest.raises(ConfigError, match="embedding_dim=3"):
        set_embeddings(BiLSTMEncoder(vocabulary_size=len(VOCABULARY), embedding_dim=4, lstm_units=2), VOCABULARY,
                       vectors)


def toy_sentences(n, seed):
    """Two topics that never mix: word2vec should learn which words go together."""
    rng = np.random.default_rng(seed)
    topics = [["cat", "dog", "pet", "fur", "paw"], ["stock", "bond", "bank", "loan", "cash"]]
    return [list(rng.choice(topics[i % 2], 6)) for i in range(n)]


@pytest.mark.parametrize("skip_gram", [True, False], ids=["skip-gram", "cbow"])
def test_word2vec_is_reproducible_and_lowers_heldout_loss(skip_gram):
    sentences = toy_sentences(200, seed=0)
    settings = dict(vector_size=8, skip_gram=skip_gram, window=2, epochs=20, sample=0, seed=3)  # no downsampling:
    model, again = train_word2vec(sentences, **settings), train_word2vec(sentences, **settings)  # 10 frequent words
    np.testing.assert_array_equal(model.wv.vectors, again.wv.vectors)
    heldout = heldout_word2vec_loss(model, toy_sentences(20, seed=1))
    untrained = (1 + model.negative) * math.log(2)
    assert heldout["pairs"] > 0 and heldout["loss"] < 0.8 * untrained, heldout
    assert model.wv.similarity("cat", "dog") > model.wv.similarity("cat", "bank")


def test_word2vec_errors():
    with pytest.raises(DataError, match="empty"):
        train_word2vec([[], []])
    with pytest.raises(DataError, match="min_count"):
        train_word2vec([["a", "b"]], min_count=5)
    model = train_word2vec([["a", "b", "c"]] * 10, vector_size=4, epochs=1)
    with pytest.raises(DataError, match="held-out"):
        heldout_word2vec_loss(model, [["x", "y"]])
