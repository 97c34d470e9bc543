"""Token classification (NER, POS): one prediction per word piece, trained on the first piece of each word.

Labels follow transformers' convention: each word's label sits on its first sub-token; the other
sub-tokens, [CLS], [SEP] and padding carry `IGNORE_INDEX` (-100), skipped by the loss and the
metrics. `ptft_keras.data.word_alignment` builds such labels from words and maps predictions back
to one tag per word for entity-level scoring (`ptft_keras.training.metrics.entity_f1`).
"""
from __future__ import annotations

from collections.abc import Sequence

import keras

from ptft_keras.errors import ConfigError
from ptft_keras.tasks.heads import IGNORE_INDEX, ClassificationHead, encode_labels, resolve_labels, run_backbone
from ptft_keras.tasks.task import TaskModel
from ptft_keras.training.metrics import MaskedAccuracy


@keras.saving.register_keras_serializable(package="ptft_keras")
class TokenClassifier(TaskModel):
    """A backbone and a dense head on every token: ``[batch, seq, num_labels]`` logits.

    Example:
        >>> import numpy as np, keras_hub
        >>> backbone = keras_hub.models.DistilBertBackbone(vocabulary_size=50, num_layers=1, num_heads=2,
        ...     hidden_dim=8, intermediate_dim=16, max_sequence_length=16)
        >>> model = TokenClassifier(backbone, label_names=["O", "B-PER", "I-PER"])
        >>> features = {"token_ids": np.ones((2, 6), "int32"), "padding_mask": np.ones((2, 6), "int32")}
        >>> tuple(model(features).shape)
        (2, 6, 3)
        >>> model.compile()     # cross-entropy and accuracy that skip label -100
    """

    def __init__(
        self,
        backbone,
        num_labels: int | None = None,
        label_names: Sequence[str] | None = None,
        hidden_dims: Sequence[int] = (),
        activation: str = "gelu",
        dropout: float = 0.1,
        **kwargs,
    ):
        super().__init__(backbone, **kwargs)
        self.num_labels, self.label_names = resolve_labels(num_labels, label_names, "TokenClassifier")
        self.head = ClassificationHead(
            self.num_labels, hidden_dims, activation, dropout, dtype=backbone.dtype_policy, name="token_head"
        )
        self.head.build((None, None, backbone.hidden_dim))
        self._finish_construction()

    def call(self, features, training=False):
        sequence_output, _ = run_backbone(self.backbone, features, training=training)
        return self.head(sequence_output, training=training)

    def default_loss(self):
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=IGNORE_INDEX)

    def default_metrics(self):
        return [MaskedAccuracy(name="accuracy")]

    def encode_labels(self, tags):
        """Tag names (or ids, -100 kept) to ids; `DataError` for a tag the model was not trained on."""
        if self.label_names is None:
            raise ConfigError("this TokenClassifier was built without label_names")
        return encode_labels(tags, self.label_names, field="tag")

    def task_config(self):
        return {
            "num_labels": self.num_labels,
            "label_names": self.label_names,
            "hidden_dims": self.head.hidden_dims,
            "activation": self.head.activation,
            "dropout": self.head.dropout,
        }
