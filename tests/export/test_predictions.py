"""Task outputs from logits: names, dtypes, shapes and values per task; label checks."""
import numpy as np
import pytest
import tensorflow as tf

from ptft_keras.errors import ConfigError
from ptft_keras.export.predictions import check_task, task_outputs

LOGITS = np.array([[2.0, -1.0, 0.5], [-3.0, 0.0, 4.0]], np.float32)


def test_classification_outputs_follow_softmax_and_argmax():
    out = task_outputs("classification", tf.constant(LOGITS), label_names=["a", "b", "c"])
    assert sorted(out) == ["label", "label_id", "logits", "probabilities"]
    assert out["label"].numpy().tolist() == [b"a", b"c"]
    assert out["label_id"].dtype == tf.int32 and out["label_id"].numpy().tolist() == [0, 2]
    expected = np.exp(LOGITS) / np.exp(LOGITS).sum(-1, keepdims=True)
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, rtol=1e-6)


def test_multilabel_outputs_are_multi_hot_at_the_threshold():
    out = task_outputs("multilabel", tf.constant(LOGITS), label_names=["a", "b", "c"])
    np.testing.assert_allclose(out["probabilities"].numpy(), 1 / (1 + np.exp(-LOGITS)), rtol=1e-6)
    assert out["labels"].numpy().tolist() == [[1, 0, 1], [0, 1, 1]]  # sigmoid(0) = 0.5 counts
    strict = task_outputs("multilabel", tf.constant(LOGITS), label_names=["a", "b", "c"], threshold=0.9)
    assert strict["labels"].numpy().tolist() == [[0, 0, 0], [0, 0, 1]]


def test_regression_squeezes_a_single_target():
    out = task_outputs("regression", tf.constant([[0.25], [3.5]]))
    assert list(out) == ["score"] and out["score"].numpy().tolist() == [0.25, 3.5]
    assert task_outputs("regression", tf.constant(LOGITS))["score"].shape == (2, 3)


@pytest.mark.parametrize(
    "task, names, outputs, message",
    [
        ("ner", ["a"], 1, "cannot be exported"),
        ("classification", None, 2, "needs label_names"),
        ("classification", ["a", "b", "c"], 2, "has 2 outputs but 3 label names"),
        ("multilabel", ["a", "a"], 2, "unique"),
        ("classification", ["a", "b\nc"], 2, "newline"),
    ],
)
def test_check_task_names_the_problem(task, names, outputs, message):
    with pytest.raises(ConfigError, match=message):
        check_task(task, names, outputs)


def test_check_task_accepts_matching_labels_and_unlabelled_regression():
    check_task("classification", ["neg", "pos"], 2)
    check_task("regression", None, 1)
