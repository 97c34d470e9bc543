"""Knowledge distillation inside `model.fit`: soft-target losses, packed targets, and a student classifier.

A student learns from a teacher's logits (soft targets) and, where a row has one, from its label:

    loss_i = alpha * CE(label_i, s_i) + (1 - alpha) * soft(t_i, s_i)     labelled rows
    loss_i = soft(t_i, s_i)                                               rows without a label (-1)

with `s` the student's and `t` the teacher's logits, and `soft` one of

* ``"kl"`` (Hinton et al., 2015): ``T^2 * KL(softmax(t / T) || softmax(s / T))``; the ``T^2`` keeps its
  gradients on the scale of the hard-label loss whatever the temperature;
* ``"mse"`` (Tang et al., 2019): the mean squared difference of the logits (no temperature).

The teacher's logits are computed once per example (`ptft_keras.jobs.teacher_outputs` caches them on
disk) and travel with the labels as one float array, `pack_targets(labels, teacher_logits)`: column 0 the
label id (-1: none), then the logits. `DistillationLoss` and `HardLabelAccuracy` read that array, and plain
label ids too (a validation set), so any task model with logits out distils with `compile` + `fit`:

Example:
    >>> import numpy as np, keras
    >>> from ptft_keras.models.backbone import Backbone
    >>> from ptft_keras.tasks.sequence_classifier import SequenceClassifier
    >>> keras.utils.set_random_seed(0)
    >>> student = SequenceClassifier(Backbone.from_size("tiny", vocabulary_size=50), label_names=["neg", "pos"])
    >>> features = {"token_ids": np.random.randint(1, 50, (8, 6)), "segment_ids": np.zeros((8, 6), "int32"),
    ...             "padding_mask": np.ones((8, 6), "int32")}
    >>> teacher_logits = np.random.randn(8, 2).astype("float32")    # teacher.predict(features), once
    >>> labels = [1, 0, 1, -1, -1, -1, -1, -1]                      # -1: an unlabelled transfer row
    >>> student.compile(loss=DistillationLoss(temperature=2.0, alpha=0.5), metrics=[HardLabelAccuracy()])
    >>> history = student.fit(features, pack_targets(labels, teacher_logits), batch_size=4, epochs=2, verbose=0)
    >>> sorted(history.history)
    ['accuracy', 'loss']

`DistillationStudent` is a `SequenceClassifier` whose default loss and metric are these, for the
fine-tuning skeleton (`ptft distill`); it predicts, saves and exports as any `SequenceClassifier`.
"""
from __future__ import annotations

import keras
import numpy as np

from ptft_keras.errors import ConfigError
from ptft_keras.tasks.sequence_classifier import SequenceClassifier

SOFT_LOSSES = ("kl", "mse")
#: the label id of a row without a label (teacher-labelled transfer text)
UNLABELLED = -1


def check_distillation(temperature: float, alpha: float, soft_loss: str) -> None:
    """Raise ConfigError for a temperature <= 0, an alpha outside [0, 1] or an unknown soft loss."""
    if soft_loss not in SOFT_LOSSES:
        raise ConfigError(f"soft_loss: unknown {soft_loss!r}; use one of {', '.join(SOFT_LOSSES)}")
    if not temperature > 0:
        raise ConfigError(f"temperature: {temperature} must be > 0 (1: the teacher's own probabilities; 2-4 soften "
                          "them)")
    if not 0 <= alpha <= 1:
        raise ConfigError(f"alpha: {alpha} is the weight of the hard labels and must be in [0, 1] (0: soft targets "
                          "only)")


def soft_target_loss(teacher_logits, student_logits, *, temperature: float = 1.0, soft_loss: str = "kl"):
    """Per-example soft-target loss of `student_logits` against `teacher_logits` (`[batch, classes]`).

    Example:
        >>> loss = soft_target_loss(np.array([[2.0, 0.0]]), np.array([[0.0, 0.0]]), temperature=2.0)
        >>> import math; p = math.exp(1.0) / (math.exp(1.0) + 1.0)   # the teacher's softened probability of class 0
        >>> round(float(loss[0]), 4), round(4 * (p * math.log(2 * p) + (1 - p) * math.log(2 * (1 - p))), 4)
        (0.4438, 0.4438)
    """
    teacher_logits = keras.ops.cast(teacher_logits, "float32")
    student_logits = keras.ops.cast(student_logits, "float32")
    if soft_loss == "mse":
        return keras.ops.mean(keras.ops.square(student_logits - teacher_logits), axis=-1)
    if soft_loss != "kl":
        raise ConfigError(f"soft_loss: unknown {soft_loss!r}; use one of {', '.join(SOFT_LOSSES)}")
    teacher_log_p = keras.ops.log_softmax(teacher_logits / temperature, axis=-1)
    student_log_p = keras.ops.log_softmax(student_logits / temperature, axis=-1)
    kl = keras.ops.sum(keras.ops.exp(teacher_log_p) * (teacher_log_p - student_log_p), axis=-1)
    return (temperature ** 2) * kl


def pack_targets(labels, teacher_logits) -> np.ndarray:
    """One float32 row per example: the label id (`UNLABELLED` = -1 where none), then the teacher's logits.

    Example:
        >>> pack_targets([1, -1], np.array([[0.5, 1.5], [2.0, -1.0]]))
        array([[ 1. ,  0.5,  1.5],
               [-1. ,  2. , -1. ]], dtype=float32)
    """
    teacher_logits = np.asarray(teacher_logits, np.float32)
    labels = np.asarray(labels, np.float32).reshape(-1, 1)
    if teacher_logits.ndim != 2 or len(labels) != len(teacher_logits):
        raise ConfigError(f"pack_targets needs one label per row of teacher logits [rows, classes]; got "
                          f"{len(labels)} labels and logits of shape {teacher_logits.shape}")
    return np.concatenate([labels, teacher_logits], axis=1)


def unpack_targets(y_true, num_classes: int):
    """`(label ids, teacher logits or None)` of packed targets, or of plain label ids (`[batch]` or `[batch, 1]`)."""
    if len(y_true.shape) == 2 and y_true.shape[-1] == num_classes + 1:
        return keras.ops.cast(y_true[:, 0], "int32"), y_true[:, 1:]
    return keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32"), None


@keras.saving.register_keras_serializable(package="ptft_keras")
class DistillationLoss(keras.losses.Loss):
    """Hard labels (weight `alpha`) mixed with soft targets, per example (see the module docstring).

    `y_true` is `pack_targets(labels, teacher_logits)`, or plain label ids (then it is the cross-entropy,
    e.g. on a validation set); `y_pred` the student's logits.

    Example:
        >>> loss = DistillationLoss(temperature=1.0, alpha=0.0)
        >>> round(float(loss(pack_targets([-1], [[0.0, 0.0]]), np.array([[0.0, 0.0]]))), 6)
        0.0
    """

    def __init__(self, temperature: float = 2.0, alpha: float = 0.5, soft_loss: str = "kl", name="distillation",
                 **kwargs):
        check_distillation(temperature, alpha, soft_loss)
        super().__init__(name=name, **kwargs)
        self.temperature, self.alpha, self.soft_loss = float(temperature), float(alpha), soft_loss

    def call(self, y_true, y_pred):
        labels, teacher_logits = unpack_targets(y_true, y_pred.shape[-1])
        labelled = labels >= 0
        hard = keras.ops.sparse_categorical_crossentropy(keras.ops.maximum(labels, 0), y_pred, from_logits=True)
        hard = keras.ops.where(labelled, hard, 0.0)
        if teacher_logits is None:
            return hard
        soft = soft_target_loss(teacher_logits, y_pred, temperature=self.temperature, soft_loss=self.soft_loss)
        return keras.ops.where(labelled, self.alpha * hard + (1.0 - self.alpha) * soft, soft)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature, "alpha": self.alpha,
                "soft_loss": self.soft_loss}


@keras.saving.register_keras_serializable(package="ptft_keras")
class HardLabelAccuracy(keras.metrics.SparseCategoricalAccuracy):
    """Accuracy on the rows that have a label, from packed targets (`pack_targets`) or plain label ids.

    Example:
        >>> metric = HardLabelAccuracy()
        >>> metric.update_state(pack_targets([1, 0, -1], np.zeros((3, 2))), np.array([[0, 1], [0, 1], [1, 0]]))
        >>> float(metric.result())
        0.5
    """

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = keras.ops.convert_to_tensor(y_true, "float32")
        labels, _ = unpack_targets(y_true, y_pred.shape[-1])
        labelled = keras.ops.cast(labels >= 0, "float32")
        if sample_weight is not None:
            labelled = labelled * keras.ops.reshape(keras.ops.cast(sample_weight, "float32"), (-1,))
        return super().update_state(keras.ops.maximum(labels, 0), y_pred, sample_weight=labelled)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


@keras.saving.register_keras_serializable(package="ptft_keras")
class DistillationStudent(SequenceClassifier):
    """A single-label `SequenceClassifier` that `compile()`s with `DistillationLoss` and `HardLabelAccuracy`.

    Args:
        backbone, label_names, num_labels, pooling, hidden_dims, activation, dropout: as `SequenceClassifier`.
        temperature, alpha, soft_loss: the `DistillationLoss` (only training reads them).

    Example:
        >>> from ptft_keras.models.backbone import Backbone
        >>> student = DistillationStudent(Backbone.from_size("tiny", vocabulary_size=50), label_names=["a", "b"],
        ...                               temperature=4.0, alpha=0.0)
        >>> student.compile(); student.loss.temperature, student.problem_type
        (4.0, 'single_label_classification')
    """

    def __init__(self, backbone, temperature: float = 2.0, alpha: float = 0.5, soft_loss: str = "kl", **kwargs):
        kwargs.pop("problem_type", None)
        check_distillation(temperature, alpha, soft_loss)
        super().__init__(backbone, problem_type="single_label_classification", **kwargs)
        self.temperature, self.alpha, self.soft_loss = float(temperature), float(alpha), soft_loss

    def default_loss(self):
        return DistillationLoss(temperature=self.temperature, alpha=self.alpha, soft_loss=self.soft_loss)

    def default_metrics(self):
        return [HardLabelAccuracy()]

    def task_config(self):
        config = super().task_config()
        config.pop("problem_type")
        return {**config, "temperature": self.temperature, "alpha": self.alpha, "soft_loss": self.soft_loss}
