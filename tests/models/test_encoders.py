"""The bring-your-own-encoder contract (a 1D-CNN encoder through every task piece) and `load_encoder`."""
import doctest

import keras
import numpy as np
import pytest
from keras import ops

import ptft_keras.models.encoders
from ptft_keras.errors import CheckpointError, ConfigError
from ptft_keras.models.backbone import Backbone, BertBackbone
from ptft_keras.models.bilstm import BiLSTMEncoder
from ptft_keras.models.encoders import is_classic, load_encoder
from ptft_keras.tasks import SequenceClassifier, TokenClassifier
from ptft_keras.training.freezing import FreezeSchedule, FreezeThenUnfreeze, layer_groups
from ptft_keras.training.optimizer import make_optimizer


# The example of docs/classic_encoders.md, as written there.
@keras.saving.register_keras_serializable(package="my_project")
class CNNEncoder(keras.Model):
    def __init__(self, vocabulary_size, hidden_dim=64, kernel_size=3, **kwargs):
        token_ids = keras.Input((None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input((None,), dtype="int32", name="padding_mask")
        x = keras.layers.Embedding(vocabulary_size, hidden_dim, name="token_embedding")(token_ids)
        x = keras.layers.Conv1D(hidden_dim, kernel_size, padding="same", activation="relu", name="conv")(x)
        x = x * ops.expand_dims(ops.cast(padding_mask, x.dtype), -1)  # zero the padded positions
        super().__init__(inputs={"token_ids": token_ids, "padding_mask": padding_mask},
                         outputs={"sequence_output": x}, **kwargs)
        self.vocabulary_size, self.hidden_dim, self.kernel_size = vocabulary_size, hidden_dim, kernel_size

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "vocabulary_size": self.vocabulary_size,
                "hidden_dim": self.hidden_dim, "kernel_size": self.kernel_size}


def toy_batch(n=16, length=8, seed=0):
    """Class 1 texts contain token 7; padding varies; segment_ids as a BERT tokenizer gives them."""
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(8, 30, (n, length)).astype("int32")
    lengths = rng.integers(3, length + 1, n)
    padding_mask = (np.arange(length)[None, :] < lengths[:, None]).astype("int32")
    labels = np.arange(n) % 2
    token_ids[labels == 1, 1] = 7
    token_ids[:, 0] = 2
    token_ids = token_ids * padding_mask
    return {"token_ids": token_ids, "segment_ids": np.zeros_like(token_ids), "padding_mask": padding_mask}, labels


def test_docstring_examples():
    result = doctest.testmod(ptft_keras.models.encoders, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_custom_cnn_encoder_fits_freezes_and_round_trips(tmp_path):
    keras.utils.set_random_seed(0)
    x, y = toy_batch()
    model = SequenceClassifier(CNNEncoder(vocabulary_size=30, hidden_dim=16), num_labels=2)
    assert model.pooling == "mean"  # no pooled output and no [CLS] attention: the masked mean
    groups = layer_groups(model)
    assert [[layer.name for layer in group] for group in groups] == [["classifier_head"], ["token_embedding", "conv"]]

    model.compile(optimizer=make_optimizer(1e-2), jit_compile=False)
    callback = FreezeThenUnfreeze(FreezeSchedule(head_only=1))
    history = model.fit(x, y, batch_size=8, epochs=3, callbacks=[callback], verbose=0)
    assert callback.unfreeze_steps == [2] and callback.trainable_groups == 2
    assert np.isfinite(history.history["loss"]).all()

    path = tmp_path / "cnn.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored.backbone) is CNNEncoder and restored.backbone.kernel_size == 3
    np.testing.assert_allclose(restored.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_custom_cnn_encoder_tags_tokens():
    x, _ = toy_batch()
    model = TokenClassifier(CNNEncoder(vocabulary_size=30, hidden_dim=16), label_names=["O", "B", "I"])
    assert tuple(model(x).shape) == (16, 8, 3)


def test_load_encoder_fresh_bilstm_and_is_classic(tmp_path):
    encoder = load_encoder("bilstm", vocabulary_size=40, embedding_dim=8, lstm_units=4, num_layers=2)
    assert isinstance(encoder, BiLSTMEncoder) and encoder.num_layers == 2 and encoder.vocabulary_size == 40
    assert is_classic("bilstm") and not is_classic("tiny") and not is_classic(tmp_path)
    with pytest.raises(ConfigError, match="vocabulary_size"):
        load_encoder("bilstm")


def test_load_encoder_reads_saved_bilstm_and_bert_directories(tmp_path):
    encoder = BiLSTMEncoder(vocabulary_size=40, embedding_dim=8, lstm_units=4)
    encoder.save_pretrained(tmp_path / "bilstm")
    restored = load_encoder(tmp_path / "bilstm", vocabulary_size=40)
    assert isinstance(restored, BiLSTMEncoder)
    for a, b in zip(encoder.get_weights(), restored.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ConfigError, match="40 embedding rows"):
        load_encoder(tmp_path / "bilstm", vocabulary_size=41)
    with pytest.raises(ConfigError, match="only apply to a fresh encoder"):
        load_encoder(tmp_path / "bilstm", lstm_units=8)

    bert = Backbone.from_size(None, vocabulary_size=40, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16,
                              max_sequence_length=16)
    bert.save_pretrained(tmp_path / "bert")
    assert isinstance(load_encoder(tmp_path / "bert"), BertBackbone)
    with pytest.raises(CheckpointError, match="not a BiLSTMEncoder directory"):
        BiLSTMEncoder.from_pretrained(tmp_path / "bert")


def test_parse_encoder_options_types_and_errors():
    from ptft_keras.models.encoders import parse_encoder_options

    assert parse_encoder_options(" embedding_dim=300, num_layers=2,dropout=0,pooling=last ") == {
        "embedding_dim": 300, "num_layers": 2, "dropout": 0.0, "pooling": "last"}
    assert parse_encoder_options(None) == parse_encoder_options("") == {}
    with pytest.raises(ConfigError, match="unknown option 'units' of bilstm; valid: embedding_dim, lstm_units"):
        parse_encoder_options("units=3")
    with pytest.raises(ConfigError, match="'lstm_units' is not key=value"):
        parse_encoder_options("lstm_units")
    with pytest.raises(ConfigError, match="lstm_units='wide' is not an int"):
        parse_encoder_options("lstm_units=wide")
    with pytest.raises(ConfigError, match="apply to a fresh 'bilstm' encoder"):
        parse_encoder_options("lstm_units=8", "bert_tiny_en_uncased")
