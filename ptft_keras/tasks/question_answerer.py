"""Extractive question answering: a start and an end logit for every token.

Features come from `qa_features.QAFeaturizer` (question + a window of the context, long contexts
split with a stride); labels are ``{"start_positions", "end_positions"}`` token indices (0, the
[CLS] token, when the answer is not in the window). The loss is the mean of the start and end
cross-entropies, as in transformers' BertForQuestionAnswering. `qa_features.best_answers` turns
the logits back into answer strings of the original contexts.
"""
from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from ptft_keras.tasks.heads import ClassificationHead, run_backbone
from ptft_keras.tasks.task import TaskModel

#: Label names (transformers' convention) -> the model output they supervise.
LABEL_TO_OUTPUT = {"start_positions": "start_logits", "end_positions": "end_logits"}


@keras.saving.register_keras_serializable(package="ptft_keras")
class QuestionAnswerer(TaskModel):
    """A backbone and a 2-unit dense layer on every token, split into start and end logits.

    Example:
        >>> import numpy as np, keras_hub
        >>> backbone = keras_hub.models.BertBackbone(vocabulary_size=50, num_layers=1, num_heads=2,
        ...     hidden_dim=8, intermediate_dim=16, max_sequence_length=16)
        >>> model = QuestionAnswerer(backbone)
        >>> features = {"token_ids": np.ones((2, 6), "int32"), "padding_mask": np.ones((2, 6), "int32")}
        >>> {name: tuple(logits.shape) for name, logits in model(features).items()}
        {'start_logits': (2, 6), 'end_logits': (2, 6)}
    """

    def __init__(
        self, backbone, hidden_dims: Sequence[int] = (), activation: str = "gelu", dropout: float = 0.0, **kwargs
    ):
        super().__init__(backbone, **kwargs)
        self.head = ClassificationHead(
            2, hidden_dims, activation, dropout, dtype=backbone.dtype_policy, name="span_head"
        )
        self.head.build((None, None, backbone.hidden_dim))
        self._finish_construction()

    def call(self, features, training=False):
        sequence_output, _ = run_backbone(self.backbone, features, training=training)
        logits = self.head(sequence_output, training=training)
        start_logits, end_logits = ops.unstack(logits, num=2, axis=-1)
        return {"start_logits": start_logits, "end_logits": end_logits}

    def default_loss(self):
        return {name: keras.losses.SparseCategoricalCrossentropy(from_logits=True) for name in LABEL_TO_OUTPUT.values()}

    def default_loss_weights(self):
        return {name: 0.5 for name in LABEL_TO_OUTPUT.values()}

    def default_metrics(self):
        # Keras prefixes the output name: "start_logits_accuracy", "end_logits_accuracy".
        return {name: [keras.metrics.SparseCategoricalAccuracy(name="accuracy")] for name in LABEL_TO_OUTPUT.values()}

    # Labels may use transformers' names; Keras matches label keys to output names.
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return super().compute_loss(x, _by_output(y), y_pred, sample_weight, training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return super().compute_metrics(x, _by_output(y), y_pred, sample_weight)

    def task_config(self):
        return {"hidden_dims": self.head.hidden_dims, "activation": self.head.activation, "dropout": self.head.dropout}


def _by_output(y):
    if isinstance(y, dict):
        return {LABEL_TO_OUTPUT.get(name, name): value for name, value in y.items()}
    return y
