"""Sequence classification and regression: one prediction per text or text pair.

`problem_type` picks the loss, as in transformers:

* ``"single_label_classification"``: softmax over `num_labels` classes, sparse cross-entropy.
* ``"multi_label_classification"``: one sigmoid per label, binary cross-entropy on 0/1 vectors.
* ``"regression"`` (STS-B style): `num_labels` real outputs (usually 1), mean squared error.

Sentence pairs need nothing special: the tokenizer's `segment_ids` tell BERT which is which.
"""
from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from ptft_keras.errors import ConfigError
from ptft_keras.tasks.heads import (
    ClassificationHead,
    encode_labels,
    pool,
    resolve_labels,
    resolve_pooling,
    run_backbone,
)
from ptft_keras.tasks.task import TaskModel

PROBLEM_TYPES = ("single_label_classification", "multi_label_classification", "regression")


@keras.saving.register_keras_serializable(package="ptft_keras")
class SequenceClassifier(TaskModel):
    """A backbone, a pooling of its output, and a dense head giving `num_labels` logits.

    Args:
        backbone: a BERT or DistilBERT backbone (keras-hub style).
        num_labels: number of outputs; taken from `label_names` when omitted.
        label_names: optional class names (index = label id), kept for `encode_labels` and export.
        problem_type: see the module docstring.
        pooling: ``"auto"``, ``"cls"``, ``"pooled"`` (BERT's pooler) or ``"mean"`` (masked mean).
        hidden_dims, activation, dropout: the head (`ClassificationHead`).

    Example:
        >>> import numpy as np, keras_hub
        >>> backbone = keras_hub.models.BertBackbone(vocabulary_size=50, num_layers=1, num_heads=2,
        ...     hidden_dim=8, intermediate_dim=16, max_sequence_length=16)
        >>> model = SequenceClassifier(backbone, label_names=["neg", "pos"])
        >>> features = {"token_ids": np.ones((2, 6), "int32"), "padding_mask": np.ones((2, 6), "int32")}
        >>> tuple(model(features).shape)
        (2, 2)
        >>> model.compile()     # AdamW + warmup, sparse cross-entropy from logits, accuracy
        >>> model.encode_labels(["pos", "neg"]).tolist()
        [1, 0]
    """

    def __init__(
        self,
        backbone,
        num_labels: int | None = None,
        label_names: Sequence[str] | None = None,
        problem_type: str = "single_label_classification",
        pooling: str = "auto",
        hidden_dims: Sequence[int] = (),
        activation: str = "gelu",
        dropout: float = 0.1,
        **kwargs,
    ):
        super().__init__(backbone, **kwargs)
        if problem_type not in PROBLEM_TYPES:
            raise ConfigError(f"unknown problem_type {problem_type!r}; choose one of {', '.join(PROBLEM_TYPES)}")
        self.num_labels, self.label_names = resolve_labels(num_labels, label_names, "SequenceClassifier")
        self.problem_type = problem_type
        self.pooling = resolve_pooling(pooling, backbone)
        self.head = ClassificationHead(
            self.num_labels, hidden_dims, activation, dropout, dtype=backbone.dtype_policy, name="classifier_head"
        )
        self.head.build((None, backbone.hidden_dim))
        self._finish_construction()

    def call(self, features, training=False):
        sequence_output, pooled_output = run_backbone(self.backbone, features, training=training)
        pooled = pool(self.pooling, sequence_output, features["padding_mask"], pooled_output)
        return self.head(pooled, training=training)

    @property
    def unused_backbone_layers(self):
        return [] if self.pooling == "pooled" else super().unused_backbone_layers

    def default_loss(self):
        if self.problem_type == "single_label_classification":
            return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if self.problem_type == "multi_label_classification":
            return keras.losses.BinaryCrossentropy(from_logits=True)
        return keras.losses.MeanSquaredError()

    def default_metrics(self):
        if self.problem_type == "single_label_classification":
            return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        if self.problem_type == "multi_label_classification":
            return [keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)]  # logits: 0 is p = 0.5
        return [keras.metrics.MeanAbsoluteError(name="mae")]

    def encode_labels(self, labels):
        """Label names (or ids) to ids, or to multi-hot rows for multi-label problems (one list of
        names per example); `DataError` for a label the model was not trained on."""
        if self.label_names is None:
            raise ConfigError("this SequenceClassifier was built without label_names")
        if self.problem_type != "multi_label_classification":
            return encode_labels(labels, self.label_names)
        multi_hot = np.zeros((len(labels), self.num_labels), np.float32)
        for row, names in enumerate(labels):
            multi_hot[row, encode_labels(list(names), self.label_names)] = 1.0
        return multi_hot

    def task_config(self):
        return {
            "num_labels": self.num_labels,
            "label_names": self.label_names,
            "problem_type": self.problem_type,
            "pooling": self.pooling,
            "hidden_dims": self.head.hidden_dims,
            "activation": self.head.activation,
            "dropout": self.head.dropout,
        }
