"""Backbone plumbing, pooling, the dense head and label encoding."""
import keras
import keras_hub
import numpy as np
import pytest

from ptft_keras.errors import ConfigError, DataError
from ptft_keras.models.backbone import DistilBertBackbone
from ptft_keras.tasks.heads import ClassificationHead, encode_labels, pool, resolve_pooling, run_backbone

SIZES = dict(vocabulary_size=40, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16, max_sequence_length=16)
FEATURES = {
    "token_ids": np.array([[2, 5, 7, 3, 0], [2, 9, 3, 0, 0]], "int32"),
    "padding_mask": np.array([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]], "int32"),
}


def test_run_backbone_on_dict_and_tensor_outputs():
    bert = keras_hub.models.BertBackbone(**SIZES)
    sequence, pooled = run_backbone(bert, FEATURES)
    assert tuple(sequence.shape) == (2, 5, 8) and tuple(pooled.shape) == (2, 8)
    for distil in (keras_hub.models.DistilBertBackbone(**SIZES), DistilBertBackbone(**SIZES)):  # tensor / dict
        sequence, pooled = run_backbone(distil, {**FEATURES, "segment_ids": np.zeros((2, 5), "int32")})
        assert tuple(sequence.shape) == (2, 5, 8) and pooled is None


def test_missing_segment_ids_are_zeros_for_bert():
    bert = keras_hub.models.BertBackbone(**SIZES)
    implicit, _ = run_backbone(bert, FEATURES)
    explicit, _ = run_backbone(bert, {**FEATURES, "segment_ids": np.zeros((2, 5), "int32")})
    other, _ = run_backbone(bert, {**FEATURES, "segment_ids": np.ones((2, 5), "int32")})
    np.testing.assert_array_equal(implicit, explicit)
    assert not np.allclose(implicit, other)


def test_missing_token_ids_is_a_data_error():
    with pytest.raises(DataError, match="no 'token_ids'"):
        run_backbone(keras_hub.models.BertBackbone(**SIZES), {"padding_mask": FEATURES["padding_mask"]})


def test_pooling_by_hand():
    sequence = np.array([[[1.0, 2.0], [3.0, 4.0], [50.0, 60.0]]], "float32")
    mask = np.array([[1, 1, 0]])
    np.testing.assert_allclose(pool("mean", sequence, mask), [[2.0, 3.0]])  # padding excluded
    np.testing.assert_allclose(pool("cls", sequence, mask), [[1.0, 2.0]])
    pooled = np.array([[7.0, 8.0]], "float32")
    np.testing.assert_allclose(pool("pooled", sequence, mask, pooled), pooled)


def test_resolve_pooling():
    bert, distil = keras_hub.models.BertBackbone(**SIZES), keras_hub.models.DistilBertBackbone(**SIZES)
    assert resolve_pooling("auto", bert) == "pooled" and resolve_pooling("auto", distil) == "cls"
    assert resolve_pooling("mean", distil) == "mean"
    with pytest.raises(ConfigError, match="use pooling='cls' or 'mean'"):
        resolve_pooling("pooled", distil)
    with pytest.raises(ConfigError, match="unknown pooling 'max'"):
        resolve_pooling("max", bert)


def test_auto_pooling_follows_the_checkpoints_sentence_pooling():
    from ptft_keras.models.backbone import Backbone

    backbone = Backbone.from_size("tiny", vocabulary_size=50)
    assert resolve_pooling("auto", backbone) == "pooled"
    backbone.sentence_pooling = "mean"
    assert resolve_pooling("auto", backbone) == "mean"
    assert resolve_pooling("pooled", backbone) == "pooled"  # an explicit choice wins
    backbone.sentence_pooling = "cls"
    assert resolve_pooling("auto", backbone) == "cls"


def test_head_layers_shapes_and_config():
    head = ClassificationHead(3, hidden_dims=[8, 4], activation="relu", dropout=0.2, name="h")
    assert tuple(head(np.zeros((2, 6), "float32")).shape) == (2, 3)
    assert tuple(head(np.zeros((2, 5, 6), "float32")).shape) == (2, 5, 3)  # per token
    assert [tuple(w.shape) for w in head.weights] == [(6, 8), (8,), (8, 4), (4,), (4, 3), (3,)]
    clone = ClassificationHead.from_config(head.get_config())
    assert clone.get_config() == head.get_config()
    # dropout is active in training only
    x = np.ones((64, 6), "float32")
    np.testing.assert_array_equal(head(x, training=False), head(x, training=False))
    assert not np.array_equal(head(x, training=True), head(x, training=False))
    with pytest.raises(ConfigError):
        ClassificationHead(0)


def test_encode_labels_rejects_labels_unseen_in_training():
    assert encode_labels([["B-PER", "O"], ["O", "O"]], ["O", "B-PER"]).tolist() == [[1, 0], [0, 0]]
    assert encode_labels([1, -100, 0], ["no", "yes"]).tolist() == [1, -100, 0]  # ids and the ignore index pass
    unseen = r"label 'maybe' \(example 3\) was not seen in training; the model knows: no, yes"
    with pytest.raises(DataError, match=unseen):
        encode_labels(["yes", "no", "maybe"], ["no", "yes"])
    with pytest.raises(DataError, match="label 2 "):
        encode_labels([2], ["no", "yes"])


def test_head_variables_have_distinct_paths_inside_a_model():
    head = ClassificationHead(2, hidden_dims=[4], name="classifier_head")
    head.build((None, 8))
    assert len({v.path for v in head.weights}) == len(head.weights)
    assert all(v.path.startswith("classifier_head/") for v in head.weights)
    assert keras.saving.get_registered_name(ClassificationHead) == "ptft_keras>ClassificationHead"
