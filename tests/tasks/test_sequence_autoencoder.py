"""SequenceAutoencoder: reconstruction loss falls on a toy corpus; padding weighs nothing; denoising; config."""
import doctest

import keras
import numpy as np
import pytest

import ptft_keras.tasks.sequence_autoencoder
from ptft_keras.data.pipeline import make_finetune_dataset
from ptft_keras.data.tokenizer import Tokenizer
from ptft_keras.errors import ConfigError
from ptft_keras.models.bilstm import BiLSTMEncoder
from ptft_keras.tasks.sequence_autoencoder import SequenceAutoencoder

WORDS = ["the", "a", "cat", "dog", "sat", "ran", "on", "mat", "rug", "fast"]
VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS


def toy_texts(n, seed=0):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, rng.integers(2, 7))) for _ in range(n)]


def test_docstring_examples():
    result = doctest.testmod(ptft_keras.tasks.sequence_autoencoder,
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("token_dropout", [0.0, 0.2], ids=["plain", "denoising"])
def test_loss_falls_on_a_toy_corpus(token_dropout):
    keras.utils.set_random_seed(0)
    tokenizer = Tokenizer.from_vocabulary(VOCABULARY)
    rows = [{"text": text} for text in toy_texts(64)]
    dataset = make_finetune_dataset(rows, tokenizer, batch_size=16, sequence_length=10, shuffle=True, repeat=True)
    encoder = BiLSTMEncoder(vocabulary_size=tokenizer.vocab_size, embedding_dim=16, lstm_units=16, dropout=0.0)
    model = SequenceAutoencoder(encoder, token_dropout=token_dropout, noise_token_id=tokenizer.mask_token_id, seed=1)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit(dataset, steps_per_epoch=10, epochs=4, verbose=0).history
    losses, accuracy = history["loss"], history["reconstruction_accuracy"]
    assert losses[-1] < 0.85 * losses[0] and accuracy[-1] > accuracy[0], history
    assert model.encoder is encoder


def test_padding_has_no_weight_in_the_loss():
    keras.utils.set_random_seed(0)
    model = SequenceAutoencoder(BiLSTMEncoder(vocabulary_size=15, embedding_dim=8, lstm_units=4, dropout=0.0),
                                dropout=0.0)
    short = {"token_ids": np.array([[2, 7, 8, 3]]), "padding_mask": np.ones((1, 4), "int32")}
    padded = {"token_ids": np.array([[2, 7, 8, 3, 0, 0, 0]]), "padding_mask": np.array([[1, 1, 1, 1, 0, 0, 0]])}
    loss_short = model.compute_loss(short, y_pred=model(short))
    loss_padded = model.compute_loss(padded, y_pred=model(padded))
    np.testing.assert_allclose(float(loss_short), float(loss_padded), rtol=1e-5)


def test_token_dropout_hits_only_real_tokens_after_cls():
    model = SequenceAutoencoder(BiLSTMEncoder(vocabulary_size=15, embedding_dim=8, lstm_units=4),
                                token_dropout=0.5, noise_token_id=4, seed=0)
    token_ids = np.tile(np.array([[2, 7, 8, 9, 10, 11, 3, 0, 0]], "int32"), (64, 1))
    noisy = np.asarray(model.drop_tokens(token_ids, (token_ids > 0).astype("int32")))
    assert np.all(noisy[:, 0] == 2) and np.all(noisy[:, 7:] == 0)
    changed = noisy[:, 1:7] != token_ids[:, 1:7]
    assert np.all(noisy[:, 1:7][changed] == 4) and 0.3 < changed.mean() < 0.7
    with pytest.raises(ConfigError, match="noise_token_id"):
        SequenceAutoencoder(BiLSTMEncoder(vocabulary_size=15), token_dropout=0.1)


@pytest.mark.parametrize("tie_embeddings", [True, False])
def test_config_round_trip(tie_embeddings):
    model = SequenceAutoencoder(BiLSTMEncoder(vocabulary_size=15, embedding_dim=8, lstm_units=4), decoder_units=6,
                                token_dropout=0.1, noise_token_id=4, tie_embeddings=tie_embeddings)
    restored = SequenceAutoencoder.from_config(model.get_config())
    assert restored.decoder_units == 6 and restored.noise_token_id == 4 and restored.tie_embeddings == tie_embeddings
    assert len(restored.weights) == len(model.weights)
    restored.set_weights(model.get_weights())
    x = {"token_ids": np.array([[2, 7, 8, 3]]), "padding_mask": np.ones((1, 4), "int32")}
    np.testing.assert_allclose(restored(x), model(x), atol=1e-6)


def test_save_and_load_keep_weights_and_optimizer(tmp_path):
    model = SequenceAutoencoder(BiLSTMEncoder(vocabulary_size=15, embedding_dim=8, lstm_units=4))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    x = {"token_ids": np.array([[2, 7, 8, 3]]), "padding_mask": np.ones((1, 4), "int32")}
    model.fit(x, epochs=1, verbose=0)
    model.save(tmp_path / "autoencoder.keras")
    restored = keras.saving.load_model(tmp_path / "autoencoder.keras")
    np.testing.assert_allclose(restored(x), model(x), atol=1e-6)
    assert int(restored.optimizer.iterations) == 1
    restored.fit(x, epochs=1, verbose=0)
