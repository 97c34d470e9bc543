"""The weight mapping between Hugging Face tensors and our backbones' Keras variables.

`weight_table(backbone)` lists, once, which HF tensor feeds which Keras variable and how its layout
differs; loading (`load_hf_weights`) and saving (`export_hf_weights`) both walk that table, so the
two directions cannot drift apart. Tensors may carry a head model's prefix (`bert.`, `distilbert.`)
and TF-era LayerNorm names (`gamma`/`beta`); both are accepted on load, bare `BertModel` /
`DistilBertModel` names are written.

Example:
    >>> from ptft_keras.models.backbone import Backbone
    >>> from ptft_keras.models.hf_convert import export_hf_weights, load_hf_weights
    >>> a = Backbone.from_size("tiny", vocabulary_size=100)
    >>> b = Backbone.from_size("tiny", vocabulary_size=100)
    >>> tensors = export_hf_weights(a)
    >>> tensors["encoder.layer.0.attention.self.query.weight"].shape
    (128, 128)
    >>> load_hf_weights(b, {"bert." + name: value for name, value in tensors.items()})
    >>> bool((b.token_embedding.embeddings.numpy() == a.token_embedding.embeddings.numpy()).all())
    True
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import keras
import numpy as np

from ptft_keras.errors import CheckpointError


@dataclass(frozen=True)
class _Layout:
    """How an HF tensor's layout relates to a Keras variable's: maybe transposed, then reshaped."""

    transposed: bool
    hf_shape: Callable[[tuple], tuple]  # Keras variable shape -> HF tensor shape


COPY = _Layout(False, tuple)
LINEAR = _Layout(True, lambda s: (s[1], s[0]))  # torch Linear [out, in] <-> Dense kernel [in, out]
HEADS_IN = _Layout(True, lambda s: (s[1] * s[2], s[0]))  # q/k/v: EinsumDense kernel [in, heads, head_dim]
HEADS_OUT = _Layout(True, lambda s: (s[2], s[0] * s[1]))  # attention output: [heads, head_dim, out]
HEADS_BIAS = _Layout(False, lambda s: (s[0] * s[1],))  # q/k/v bias: [heads, head_dim]


@dataclass(frozen=True)
class WeightRow:
    """One HF tensor name (without prefix), the Keras variable it fills, and the layout between them."""

    hf_name: str
    variable: keras.Variable
    layout: _Layout
    optional: bool = False  # head checkpoints (BertForMaskedLM) have no pooler

    @property
    def hf_shape(self) -> tuple:
        return tuple(self.layout.hf_shape(tuple(self.variable.shape)))

    def to_keras(self, tensor: np.ndarray) -> np.ndarray:
        value = tensor.T if self.layout.transposed else tensor
        return value.reshape(tuple(self.variable.shape))

    def to_hf(self, value: np.ndarray) -> np.ndarray:
        if self.layout.transposed:
            return np.ascontiguousarray(value.reshape(self.hf_shape[::-1]).T)
        return value.reshape(self.hf_shape)


# Sub-names of one encoder layer's weights, by role, in each HF model family.
_ENCODER_NAMES = {
    "bert": {
        "layer": "encoder.layer.{}.",
        "query": "attention.self.query", "key": "attention.self.key", "value": "attention.self.value",
        "attention_output": "attention.output.dense", "attention_norm": "attention.output.LayerNorm",
        "intermediate": "intermediate.dense", "output": "output.dense", "output_norm": "output.LayerNorm",
    },
    "distilbert": {
        "layer": "transformer.layer.{}.",
        "query": "attention.q_lin", "key": "attention.k_lin", "value": "attention.v_lin",
        "attention_output": "attention.out_lin", "attention_norm": "sa_layer_norm",
        "intermediate": "ffn.lin1", "output": "ffn.lin2", "output_norm": "output_layer_norm",
    },
}


def weight_table(backbone) -> list[WeightRow]:
    """Every backbone variable with its HF tensor name (bare `BertModel`/`DistilBertModel` naming).

    Example:
        >>> from ptft_keras.models.backbone import Backbone
        >>> row = weight_table(Backbone.from_size("tiny", vocabulary_size=100))[3]
        >>> row.hf_name, tuple(row.variable.shape), row.hf_shape
        ('embeddings.LayerNorm.weight', (128,), (128,))
    """
    model_type = backbone.model_type
    if model_type == "bert":
        rows = [
            WeightRow("embeddings.word_embeddings.weight", backbone.token_embedding.embeddings, COPY),
            WeightRow("embeddings.position_embeddings.weight",
                      backbone.position_embedding.position_embeddings, COPY),
            WeightRow("embeddings.token_type_embeddings.weight", backbone.segment_embedding.embeddings, COPY),
        ]
    else:
        rows = [
            WeightRow("embeddings.word_embeddings.weight", backbone.embeddings.token_embedding.embeddings, COPY),
            WeightRow("embeddings.position_embeddings.weight",
                      backbone.embeddings.position_embedding.position_embeddings, COPY),
        ]
    rows += _layer_norm_rows("embeddings.LayerNorm", backbone.embeddings_layer_norm)
    names = _ENCODER_NAMES[model_type]
    for index, layer in enumerate(backbone.transformer_layers):
        prefix = names["layer"].format(index)
        attention = layer._self_attention_layer
        rows += _dense_rows(prefix + names["query"], attention.query_dense, HEADS_IN, HEADS_BIAS)
        rows += _dense_rows(prefix + names["key"], attention.key_dense, HEADS_IN, HEADS_BIAS)
        rows += _dense_rows(prefix + names["value"], attention.value_dense, HEADS_IN, HEADS_BIAS)
        rows += _dense_rows(prefix + names["attention_output"], attention.output_dense, HEADS_OUT, COPY)
        rows += _layer_norm_rows(prefix + names["attention_norm"], layer._self_attention_layer_norm)
        rows += _dense_rows(prefix + names["intermediate"], layer._feedforward_intermediate_dense)
        rows += _dense_rows(prefix + names["output"], layer._feedforward_output_dense)
        rows += _layer_norm_rows(prefix + names["output_norm"], layer._feedforward_layer_norm)
    if model_type == "bert":
        rows += _dense_rows("pooler.dense", backbone.pooled_dense, optional=True)
    return rows


def _dense_rows(name, dense, kernel_layout=LINEAR, bias_layout=COPY, optional=False):
    return [
        WeightRow(f"{name}.weight", dense.kernel, kernel_layout, optional),
        WeightRow(f"{name}.bias", dense.bias, bias_layout, optional),
    ]


def _layer_norm_rows(name, layer_norm):
    return [WeightRow(f"{name}.weight", layer_norm.gamma, COPY), WeightRow(f"{name}.bias", layer_norm.beta, COPY)]


def export_hf_weights(backbone) -> dict[str, np.ndarray]:
    """The backbone's weights as HF tensors (`BertModel` / `DistilBertModel` names, PyTorch layout)."""
    return {row.hf_name: row.to_hf(row.variable.numpy()) for row in weight_table(backbone)}


def load_hf_weights(backbone, tensors: dict[str, np.ndarray], path=None) -> None:
    """Assign HF `tensors` (bare or `bert.`/`distilbert.`-prefixed names) to the backbone's variables.

    Raises CheckpointError naming `path` and the tensor when one is missing or its shape disagrees
    with the config. A missing pooler only warns: masked-LM checkpoints do not have one.
    """
    prefix = _name_prefix(tensors, path)
    missing_optional = []
    for row in weight_table(backbone):
        name, tensor = _lookup(tensors, prefix, row.hf_name)
        if tensor is None:
            if row.optional:
                missing_optional.append(prefix + row.hf_name)
                continue
            raise CheckpointError(
                f"weight tensor {prefix + row.hf_name!r} is missing; the file is incomplete or is not "
                f"a {backbone.model_type} checkpoint matching its config.json",
                path=path,
                field=prefix + row.hf_name,
            )
        if tuple(tensor.shape) != row.hf_shape:
            raise CheckpointError(
                f"weight tensor {name!r} has shape {tuple(tensor.shape)} but config.json implies "
                f"{row.hf_shape}: config and weights disagree (check hidden_size, vocab_size, "
                "intermediate_size, max_position_embeddings)",
                path=path,
                field=name,
            )
        row.variable.assign(row.to_keras(np.asarray(tensor)).astype(row.variable.dtype))
    if missing_optional:
        warnings.warn(
            f"{path or 'checkpoint'}: no {', '.join(missing_optional)}; the pooler (pooled_output) "
            "keeps its random initialisation: fine-tune before relying on it",
            stacklevel=2,
        )


def _name_prefix(tensors, path) -> str:
    """The head model's prefix ("", "bert.", "distilbert.", ...), found from the word embeddings' name."""
    anchor = "embeddings.word_embeddings.weight"
    candidates = sorted((name[: -len(anchor)] for name in tensors if name.endswith(anchor)), key=len)
    if not candidates:
        raise CheckpointError(
            f"no {anchor!r} tensor: this is not a BERT-family checkpoint, or the file is incomplete",
            path=path,
            field=anchor,
        )
    return candidates[0]


def _lookup(tensors, prefix, hf_name):
    name = prefix + hf_name
    if name in tensors:
        return name, tensors[name]
    # TF-era BERT checkpoints name LayerNorm parameters gamma/beta.
    for new, old in ((".weight", ".gamma"), (".bias", ".beta")):
        if name.endswith(new) and name[: -len(new)] + old in tensors:
            return name[: -len(new)] + old, tensors[name[: -len(new)] + old]
    return name, None

