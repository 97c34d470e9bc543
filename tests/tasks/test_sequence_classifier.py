"""SequenceClassifier: single sentence and pairs, multi-label, regression; save/load; labels."""
import keras
import keras_hub
import numpy as np
import pytest

from ptft_keras.errors import ConfigError, DataError
from ptft_keras.models.backbone import Backbone
from ptft_keras.tasks import SequenceClassifier
from ptft_keras.training.optimizer import AdamW, make_optimizer

SIZES = dict(vocabulary_size=64, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32, max_sequence_length=16)


def pair_features(n=8, length=10, seed=0):
    """Sentence pairs: [CLS] a [SEP] b [SEP] with segment ids 0 / 1."""
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(4, 64, (n, length)).astype("int32")
    token_ids[:, 0], token_ids[:, 4], token_ids[:, -1] = 2, 3, 3
    segment_ids = np.zeros((n, length), "int32")
    segment_ids[:, 5:] = 1
    return {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": np.ones((n, length), "int32")}


def fit_losses(model, x, y, steps=20, learning_rate=1e-2):
    model.compile(optimizer=make_optimizer(learning_rate), jit_compile=False)
    return model.fit(x, y, batch_size=len(y), epochs=steps, verbose=0).history


@pytest.mark.parametrize(
    "backbone_cls, kwargs, labels",
    [
        (keras_hub.models.BertBackbone, dict(num_labels=3), np.array([0, 1, 2, 0, 1, 2, 0, 1])),
        (keras_hub.models.DistilBertBackbone, dict(num_labels=3, problem_type="multi_label_classification",
                                                   pooling="mean", hidden_dims=[16]),
         np.eye(3, dtype="float32")[[0, 1, 2, 0, 1, 2, 0, 1]] + np.eye(3, dtype="float32")[[1, 2, 0, 0, 0, 0, 2, 2]]),
        (keras_hub.models.BertBackbone, dict(num_labels=1, problem_type="regression", pooling="cls"),
         np.linspace(-1.0, 1.0, 8).astype("float32")),
    ],
    ids=["single-label-pairs", "multi-label", "regression"],
)
def test_shapes_and_loss_decreases_on_a_tiny_overfit_set(backbone_cls, kwargs, labels):
    keras.utils.set_random_seed(1)
    model = SequenceClassifier(backbone_cls(**SIZES), **kwargs)
    x = pair_features()
    assert tuple(model(x).shape) == (8, kwargs["num_labels"])
    history = fit_losses(model, x, np.minimum(labels, 1.0) if labels.ndim == 2 else labels)
    assert history["loss"][-1] < 0.6 * history["loss"][0], history["loss"]


def test_default_losses_and_metrics_match_the_problem():
    backbone = keras_hub.models.BertBackbone(**SIZES)
    single = SequenceClassifier(backbone, num_labels=2)
    assert single.default_loss().get_config()["from_logits"] and single.pooling == "pooled"
    multi = SequenceClassifier(backbone, num_labels=2, problem_type="multi_label_classification")
    assert isinstance(multi.default_loss(), keras.losses.BinaryCrossentropy)
    assert multi.default_loss().get_config()["from_logits"]
    regression = SequenceClassifier(backbone, num_labels=1, problem_type="regression", pooling="mean")
    assert isinstance(regression.default_loss(), keras.losses.MeanSquaredError)
    assert not regression.backbone.pooled_dense.trainable  # unused pooler: frozen, no empty gradients
    with pytest.raises(ConfigError, match="unknown problem_type"):
        SequenceClassifier(backbone, num_labels=2, problem_type="ranking")
    with pytest.raises(ConfigError, match="needs num_labels or label_names"):
        SequenceClassifier(backbone)


def test_save_load_round_trip_with_optimizer_state(tmp_path):
    keras.utils.set_random_seed(2)
    backbone = Backbone.from_size(None, **SIZES)  # ptft_keras's own backbone class
    model = SequenceClassifier(backbone, label_names=["neg", "neu", "pos"], hidden_dims=[8], activation="relu")
    x = pair_features()
    fit_losses(model, x, np.array([0, 1, 2, 0, 1, 2, 0, 1]), steps=2)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(loaded) is SequenceClassifier and type(loaded.backbone) is type(backbone)
    assert loaded.get_config() == model.get_config() and loaded.label_names == ["neg", "neu", "pos"]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert isinstance(loaded.optimizer, AdamW)
    for mine, theirs in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(mine), keras.ops.convert_to_numpy(theirs))
    assert loaded.get_compile_config() == model.get_compile_config()


def test_encode_labels_single_and_multi_label():
    backbone = keras_hub.models.BertBackbone(**SIZES)
    single = SequenceClassifier(backbone, label_names=["neg", "pos"])
    assert single.encode_labels(["pos", "neg"]).tolist() == [1, 0]
    with pytest.raises(DataError, match="'neutral' .* was not seen in training"):
        single.encode_labels(["pos", "neutral"])
    multi = SequenceClassifier(backbone, label_names=["a", "b", "c"], problem_type="multi_label_classification")
    assert multi.encode_labels([["a", "c"], []]).tolist() == [[1, 0, 1], [0, 0, 0]]
