"""What the task models share: calling any backbone, pooling, the dense head, label encoding.

A backbone here is any keras-hub style encoder taking ``{"token_ids", "padding_mask"
[, "segment_ids"]}``; BERT returns ``{"sequence_output", "pooled_output"}``, DistilBERT a plain
tensor. `run_backbone` hides that difference so every task works on either.

Example:
    >>> import numpy as np, keras_hub
    >>> backbone = keras_hub.models.DistilBertBackbone(
    ...     vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16,
    ...     max_sequence_length=16)
    >>> features = {"token_ids": np.ones((2, 5), "int32"), "padding_mask": np.ones((2, 5), "int32"),
    ...             "segment_ids": np.zeros((2, 5), "int32")}   # ignored: DistilBERT has no segments
    >>> sequence_output, pooled_output = run_backbone(backbone, features)
    >>> tuple(sequence_output.shape), pooled_output is None
    ((2, 5, 8), True)
    >>> tuple(pool("mean", sequence_output, features["padding_mask"]).shape)
    (2, 8)
"""
from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from ptft_keras.errors import ConfigError, DataError
from ptft_keras.training.metrics import IGNORE_INDEX  # label id the losses and metrics skip

POOLINGS = ("cls", "pooled", "mean")


def backbone_input_names(backbone) -> list[str]:
    """The feature names `backbone` takes, e.g. ``["token_ids", "segment_ids", "padding_mask"]``."""
    inputs = backbone.input
    if not isinstance(inputs, dict):
        raise ConfigError(f"backbone {backbone.name!r} must take a dict of features (a keras-hub backbone)")
    return list(inputs)


def has_pooled_output(backbone) -> bool:
    """Whether `backbone` returns a BERT-style ``pooled_output``."""
    outputs = backbone.output
    return isinstance(outputs, dict) and "pooled_output" in outputs


def backbone_inputs(backbone, features: dict) -> dict:
    """Pick the features `backbone` takes (int32); zero `segment_ids` when the data has none."""
    for name in ("token_ids", "padding_mask"):
        if name not in features:
            raise DataError(
                f"the features have no {name!r} (got {sorted(features)}); tokenize with "
                "ptft_keras.data, which yields token_ids/segment_ids/padding_mask",
                field=name,
            )
    picked = {}
    for name in backbone_input_names(backbone):
        if name in features:
            picked[name] = ops.cast(features[name], "int32")
        elif name == "segment_ids":
            picked[name] = ops.zeros_like(ops.cast(features["token_ids"], "int32"))
        else:
            raise DataError(f"backbone {backbone.name!r} needs the feature {name!r}", field=name)
    return picked


def run_backbone(backbone, features: dict, training=False):
    """Call `backbone` on `features`; return ``(sequence_output, pooled_output or None)``."""
    outputs = backbone(backbone_inputs(backbone, features), training=training)
    if isinstance(outputs, dict):
        return outputs["sequence_output"], outputs.get("pooled_output")
    return outputs, None


def resolve_pooling(pooling: str, backbone) -> str:
    """``"auto"`` is the pooling the checkpoint was trained with when it says (`Backbone.sentence_pooling`,
    e.g. ``"mean"`` for the sentence-transformers all-MiniLM-L6-v2), else ``"pooled"`` when the encoder has a
    pooled output (BERT, as transformers' BertForSequenceClassification; `BiLSTMEncoder`), ``"cls"`` on other
    transformers, else ``"mean"``."""
    if pooling == "auto":
        if getattr(backbone, "sentence_pooling", None) in ("mean", "cls"):
            return backbone.sentence_pooling
        if has_pooled_output(backbone):
            return "pooled"
        return "cls" if hasattr(backbone, "transformer_layers") else "mean"
    if pooling not in POOLINGS:
        raise ConfigError(f"unknown pooling {pooling!r}; choose one of auto, {', '.join(POOLINGS)}")
    if pooling == "pooled" and not has_pooled_output(backbone):
        raise ConfigError(
            f"pooling='pooled' needs a BERT pooled_output, which backbone {backbone.name!r} does not have; "
            "use pooling='cls' or 'mean'"
        )
    return pooling


def pool(pooling: str, sequence_output, padding_mask, pooled_output=None):
    """One vector per sequence: the [CLS] vector, BERT's pooled output, or the masked mean."""
    if pooling == "cls":
        return sequence_output[:, 0, :]
    if pooling == "pooled":
        return pooled_output
    mask = ops.expand_dims(ops.cast(padding_mask, sequence_output.dtype), -1)
    total = ops.sum(sequence_output * mask, axis=1)
    return total / ops.maximum(ops.sum(mask, axis=1), 1.0)


@keras.saving.register_keras_serializable(package="ptft_keras")
class ClassificationHead(keras.layers.Layer):
    """Dropout, then optional hidden Dense layers (each followed by dropout), then `num_outputs` logits.

    Works on ``[batch, hidden]`` (sequence tasks) and ``[batch, seq, hidden]`` (token tasks).
    Kernels start as BERT's (truncated normal, stddev 0.02).

    Example:
        >>> head = ClassificationHead(3, hidden_dims=[16], activation="gelu", dropout=0.1)
        >>> tuple(head(np.zeros((4, 8), "float32")).shape)
        (4, 3)
    """

    def __init__(self, num_outputs: int, hidden_dims: Sequence[int] = (), activation="gelu", dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        if num_outputs < 1:
            raise ConfigError(f"a head needs at least one output, got num_outputs={num_outputs}")
        self.num_outputs = int(num_outputs)
        self.hidden_dims = [int(d) for d in hidden_dims]
        self.activation = activation if isinstance(activation, str) else keras.activations.serialize(activation)
        self.dropout = float(dropout)
        dtype = self.dtype_policy
        self.dropouts = [keras.layers.Dropout(self.dropout, dtype=dtype) for _ in range(len(self.hidden_dims) + 1)]
        self.hidden = [
            keras.layers.Dense(d, activation, kernel_initializer=_bert_init(), dtype=dtype, name=f"hidden_{i}")
            for i, d in enumerate(self.hidden_dims)
        ]
        self.logits = keras.layers.Dense(self.num_outputs, kernel_initializer=_bert_init(), dtype=dtype, name="logits")

    def build(self, input_shape):
        shape = tuple(input_shape)
        for dense in self.hidden:
            dense.build(shape)
            shape = shape[:-1] + (dense.units,)
        self.logits.build(shape)

    def call(self, x, training=False):
        x = self.dropouts[0](x, training=training)
        for dense, dropout in zip(self.hidden, self.dropouts[1:]):
            x = dropout(dense(x), training=training)
        return self.logits(x)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (self.num_outputs,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_outputs": self.num_outputs,
                "hidden_dims": self.hidden_dims,
                "activation": self.activation,
                "dropout": self.dropout,
            }
        )
        return config


def resolve_labels(num_labels: int | None, label_names: Sequence[str] | None, owner: str):
    """``(num_labels, label_names)`` checked against each other; either may be omitted.

    Example:
        >>> resolve_labels(None, ["neg", "pos"], "SequenceClassifier")
        (2, ['neg', 'pos'])
    """
    if num_labels is None:
        if label_names is None:
            raise ConfigError(f"{owner} needs num_labels or label_names")
        num_labels = len(label_names)
    if label_names is not None and len(label_names) != num_labels:
        raise ConfigError(f"{owner}: {len(label_names)} label_names for num_labels={num_labels}")
    return int(num_labels), None if label_names is None else list(label_names)


def _bert_init():
    return keras.initializers.TruncatedNormal(stddev=0.02)


def encode_labels(labels, label_names: Sequence[str], *, field: str = "label", keep=(IGNORE_INDEX,)) -> np.ndarray:
    """Map label strings (or ids) to int32 ids of `label_names`; unknown labels raise `DataError`.

    Ids in `keep` (the ignore index) pass through, so already aligned token labels can be checked.

    Example:
        >>> encode_labels(["neg", "pos", "pos"], ["neg", "pos"]).tolist()
        [0, 1, 1]
    """
    index = {name: i for i, name in enumerate(label_names)}
    flat = np.asarray(labels, dtype=object).reshape(-1)
    ids = np.empty(flat.shape, np.int32)
    for i, label in enumerate(flat):
        if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
            if label in keep or 0 <= label < len(label_names):
                ids[i] = label
                continue
        elif label in index:
            ids[i] = index[label]
            continue
        shown = ", ".join(map(str, list(label_names)[:20])) + (" ..." if len(label_names) > 20 else "")
        raise DataError(
            f"label {label!r} (example {i + 1}) was not seen in training; the model knows: {shown}. "
            "Fix the label, or fine-tune again with it in the label set.",
            field=field,
        )
    return ids.reshape(np.shape(labels))
