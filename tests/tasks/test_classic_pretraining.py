"""Classic pretraining objectives for a BiLSTMEncoder: autoencoder, word2vec, masked-LM."""
import doctest
import math

import keras
import numpy as np
import pytest

import ptft_keras.tasks.classic_pretraining
from ptft_keras.data.pipeline import make_finetune_dataset, make_pretraining_dataset
from ptft_keras.data.tokenizer import Tokenizer
from ptft_keras.errors import ConfigError
from ptft_keras.models.bilstm import BiLSTMEncoder
from ptft_keras.tasks.masked_lm import MaskedLM
from ptft_keras.tasks.classic_pretraining import build_bilstm, pretrain_autoencoder, pretrain_word2vec

WORDS = ["the", "a", "cat", "dog", "sat", "ran", "on", "mat", "rug", "fast"]
VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + ["stock", "unseen"]


def toy_texts(n, seed=0):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, rng.integers(2, 7))) for _ in range(n)]


@pytest.fixture
def tokenizer():
    return Tokenizer.from_vocabulary(VOCABULARY)


def test_docstring_examples():
    result = doctest.testmod(ptft_keras.tasks.classic_pretraining,
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_build_bilstm_fits_the_tokenizer(tokenizer):
    encoder = build_bilstm(tokenizer, embedding_dim=8, lstm_units=4, num_layers=2)
    assert isinstance(encoder, BiLSTMEncoder) and encoder.vocabulary_size == tokenizer.vocab_size


def test_pretrain_autoencoder_lowers_the_heldout_loss(tokenizer):
    keras.utils.set_random_seed(0)
    encoder = build_bilstm(tokenizer, embedding_dim=16, lstm_units=16, dropout=0.0)
    before = keras.ops.convert_to_numpy(encoder.token_embedding.embeddings).copy()
    train = make_finetune_dataset([{"text": t} for t in toy_texts(64)], tokenizer, batch_size=16, sequence_length=10,
                                  shuffle=True)
    heldout = make_finetune_dataset([{"text": t} for t in toy_texts(16, seed=1)], tokenizer, batch_size=16,
                                    sequence_length=10)
    result = pretrain_autoencoder(encoder, train, steps=40, heldout=heldout, learning_rate=1e-2, verbose=0,
                                  token_dropout=0.1, noise_token_id=tokenizer.mask_token_id, seed=0)
    assert result["objective"] == "autoencoder" and result["steps"] == 40
    assert result["loss"] < 0.85 * result["initial_loss"], result
    assert 0 < result["reconstruction_accuracy"] <= 1 and math.isfinite(result["train_loss"])
    assert not np.allclose(keras.ops.convert_to_numpy(encoder.token_embedding.embeddings), before)
    with pytest.raises(ConfigError, match="steps"):
        pretrain_autoencoder(encoder, train, steps=0)


def test_pretrain_word2vec_fills_the_embedding_and_reports_heldout_loss(tokenizer):
    encoder = build_bilstm(tokenizer, embedding_dim=8, lstm_units=4)
    before = keras.ops.convert_to_numpy(encoder.token_embedding.embeddings).copy()
    result = pretrain_word2vec(encoder, tokenizer, toy_texts(200), heldout_texts=toy_texts(20, seed=1), window=2,
                               epochs=10, seed=0)
    assert result["objective"] == "word2vec" and result["vocabulary_size"] == len(VOCABULARY)
    assert result["found"] == len(WORDS) and result["pairs"] > 0
    assert result["loss"] < (1 + 5) * math.log(2)
    after = keras.ops.convert_to_numpy(encoder.token_embedding.embeddings)
    changed = ~np.all(after == before, axis=1)
    assert changed.sum() == len(WORDS) and not changed[VOCABULARY.index("unseen")]
    again = build_bilstm(tokenizer, embedding_dim=8, lstm_units=4)
    assert pretrain_word2vec(again, tokenizer, toy_texts(200), heldout_texts=toy_texts(20, seed=1), window=2,
                             epochs=10, seed=0) == result
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(again.token_embedding.embeddings)[changed],
                                  after[changed])
    assert pretrain_word2vec(again, tokenizer, toy_texts(50), epochs=1)["loss"] is None


def test_masked_lm_trains_a_bilstm_on_pretraining_batches(tokenizer):
    keras.utils.set_random_seed(0)
    encoder = build_bilstm(tokenizer, embedding_dim=16, lstm_units=8, dropout=0.0)
    dataset = make_pretraining_dataset(toy_texts(64), tokenizer, batch_size=8, sequence_length=16,
                                       max_predictions_per_seq=4, repeat=True)
    model = MaskedLM(encoder)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit(dataset, steps_per_epoch=5, epochs=2, verbose=0).history
    assert history["mlm_loss"][-1] < history["mlm_loss"][0], history
