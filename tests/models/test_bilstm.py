"""BiLSTMEncoder: padding masked, poolings, config and directory round trips, tasks and freezing on top."""
import doctest
import json

import keras
import numpy as np
import pytest

import ptft_keras.models.bilstm
from ptft_keras.data.tokenizer import Tokenizer
from ptft_keras.errors import CheckpointError, ConfigError
from ptft_keras.models.bilstm import POOLINGS, BiLSTMEncoder
from ptft_keras.tasks import SequenceClassifier, TokenClassifier
from ptft_keras.tasks.masked_lm import MaskedLM
from ptft_keras.training.freezing import FreezeSchedule, FreezeThenUnfreeze, layer_groups, layerwise_lr_multipliers
from ptft_keras.training.optimizer import make_optimizer

SIZES = dict(vocabulary_size=30, embedding_dim=8, lstm_units=4, num_layers=2)


def test_docstring_examples():
    result = doctest.testmod(ptft_keras.models.bilstm, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("pooling", POOLINGS)
def test_padding_changes_nothing_on_real_tokens(pooling):
    keras.utils.set_random_seed(0)
    encoder = BiLSTMEncoder(**SIZES, pooling=pooling)
    token_ids = np.array([[2, 11, 12, 13, 3], [2, 14, 3, 0, 0]], "int32")
    mask = (token_ids > 0).astype("int32")
    padded = encoder({"token_ids": np.pad(token_ids, [(0, 0), (0, 4)]), "padding_mask": np.pad(mask, [(0, 0), (0, 4)])})
    for row, length in enumerate([5, 3]):
        alone = encoder({"token_ids": token_ids[row:row + 1, :length], "padding_mask": mask[row:row + 1, :length]})
        np.testing.assert_allclose(padded["sequence_output"][row, :length], alone["sequence_output"][0], atol=1e-6)
        np.testing.assert_allclose(padded["pooled_output"][row], alone["pooled_output"][0], atol=1e-6)
        assert np.all(np.asarray(padded["sequence_output"][row, length:]) == 0)


@pytest.mark.parametrize("pooling", POOLINGS)
def test_a_row_of_padding_only_gives_zeros(pooling):
    encoder = BiLSTMEncoder(**SIZES, pooling=pooling)
    outputs = encoder({"token_ids": np.array([[2, 5, 3], [0, 0, 0]]), "padding_mask": np.array([[1, 1, 1], [0, 0, 0]])})
    assert np.all(np.asarray(outputs["sequence_output"][1]) == 0) and np.all(np.asarray(outputs["pooled_output"][1]) == 0)


def test_shapes_attributes_and_bad_arguments():
    encoder = BiLSTMEncoder(**SIZES, dtype="mixed_bfloat16")
    outputs = encoder({"token_ids": np.ones((3, 6), "int32"), "padding_mask": np.ones((3, 6), "int32")})
    assert tuple(outputs["sequence_output"].shape) == (3, 6, 8) and tuple(outputs["pooled_output"].shape) == (3, 8)
    assert outputs["sequence_output"].dtype == "bfloat16" and encoder.token_embedding.embeddings.dtype == "float32"
    assert (encoder.hidden_dim, encoder.num_layers, encoder.model_type) == (8, 2, "bilstm")
    assert encoder.max_sequence_length >= 100_000
    for layer in encoder.lstm_layers:  # cuDNN-compatible: no recurrent dropout, default activations
        assert layer.forward_layer.recurrent_dropout == 0 and layer.forward_layer.activation is keras.activations.tanh
    with pytest.raises(ConfigError, match="pooling"):
        BiLSTMEncoder(**SIZES, pooling="cls")
    with pytest.raises(ConfigError, match="lstm_units"):
        BiLSTMEncoder(vocabulary_size=30, lstm_units=0)


def test_config_round_trip():
    encoder = BiLSTMEncoder(**SIZES, pooling="last", dropout=0.2)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(encoder))
    assert type(restored) is BiLSTMEncoder and restored.get_config() == {**encoder.get_config(), "name": restored.name}


def test_save_pretrained_writes_a_directory_from_pretrained_reads(tmp_path):
    tokenizer = Tokenizer.from_vocabulary(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat"])
    encoder = BiLSTMEncoder(**{**SIZES, "vocabulary_size": tokenizer.vocab_size}, pooling="mean")
    directory = encoder.save_pretrained(tmp_path / "backbone", tokenizer=tokenizer)
    assert {"config.json", "model.safetensors", "vocab.txt"} <= {p.name for p in directory.iterdir()}
    assert not list(directory.glob("*.bin")) and not list(directory.glob("*.pkl"))
    config = json.loads((directory / "config.json").read_text())
    assert config["model_type"] == "bilstm" and config["lstm_units"] == 4
    restored = BiLSTMEncoder.from_pretrained(directory)
    x = {"token_ids": np.array([[2, 5, 6, 3]]), "padding_mask": np.ones((1, 4), "int32")}
    np.testing.assert_allclose(restored(x)["pooled_output"], encoder(x)["pooled_output"], atol=1e-6)
    assert Tokenizer.from_pretrained(directory).vocabulary == tokenizer.vocabulary

    config["lstm_units"] = 6
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="shape"):
        BiLSTMEncoder.from_pretrained(directory)


def test_sequence_classifier_freezes_layer_by_layer_and_saves(tmp_path):
    keras.utils.set_random_seed(0)
    model = SequenceClassifier(BiLSTMEncoder(**SIZES), num_labels=2)
    assert model.pooling == "pooled"
    names = [[layer.name for layer in group] for group in layer_groups(model)]
    assert names == [["classifier_head"], ["bilstm_1"], ["bilstm_0"], ["token_embedding"]]
    multipliers = layerwise_lr_multipliers(model, 0.5)
    assert multipliers["token_embedding/embeddings"] == 0.125
    assert multipliers["bilstm_1/forward_lstm_1/lstm_cell/kernel"] == 0.5

    rng = np.random.default_rng(0)
    x = {"token_ids": rng.integers(5, 30, (8, 6)).astype("int32"), "padding_mask": np.ones((8, 6), "int32")}
    y = np.arange(8) % 2
    model.compile(optimizer=make_optimizer(1e-2), jit_compile=False)
    callback = FreezeThenUnfreeze(FreezeSchedule(head_only=1, unfreeze="gradual", every=1))
    model.fit(x, y, batch_size=4, epochs=3, callbacks=[callback], verbose=0)
    assert callback.unfreeze_steps == [2, 4] and callback.trainable_groups == 3

    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    assert type(restored.backbone) is BiLSTMEncoder
    np.testing.assert_allclose(restored.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_token_classifier_and_masked_lm_take_it():
    encoder = BiLSTMEncoder(**SIZES)
    x = {"token_ids": np.ones((2, 5), "int32"), "padding_mask": np.ones((2, 5), "int32")}
    assert tuple(TokenClassifier(encoder, num_labels=3)(x).shape) == (2, 5, 3)
    mlm = MaskedLM(encoder)  # tied to the ReversibleEmbedding
    outputs = mlm({**x, "mask_positions": np.array([[1, 2]] * 2, "int32")})
    assert tuple(outputs["mlm"].shape) == (2, 2, 30)
