"""BERT and DistilBERT backbones: keras-hub's, with Hugging Face numerics, loading and saving.

`BertBackbone` and `DistilBertBackbone` subclass keras-hub's classes and keep their layers and
attributes (`transformer_layers`, `token_embedding`, `num_layers`, `hidden_dim`, ...). On top:

* the feed-forward activation follows HF's `hidden_act` (keras-hub hard-codes the tanh GELU for
  BERT; HF BERT uses the exact erf GELU) and BERT's layer-norm epsilon follows `layer_norm_eps`,
  so outputs match transformers to ~1e-6 in float32;
* self-attention skips the transposed copy of its scores that Keras' einsum makes (`models.attention`);
* both return a dict: `{"sequence_output"}` (and `"pooled_output"` for BERT);
* `Backbone.from_pretrained` reads HF checkpoints (safetensors, TF h5, opt-in pickle), Hub ids,
  keras-hub presets and our own `.keras` files; `save_pretrained` writes a directory that
  `transformers.AutoModel.from_pretrained` loads without missing or unexpected keys.

Example:
    >>> import numpy as np
    >>> from ptft_keras.models.backbone import Backbone
    >>> backbone = Backbone.from_size("tiny", vocabulary_size=1000)
    >>> outputs = backbone({"token_ids": np.array([[2, 7, 9, 0]]), "segment_ids": np.zeros((1, 4), "int32"),
    ...                     "padding_mask": np.array([[1, 1, 1, 0]])})
    >>> tuple(outputs["sequence_output"].shape), tuple(outputs["pooled_output"].shape)
    ((1, 4, 128), (1, 128))
"""
from __future__ import annotations

import keras
from keras.src.models.functional import Functional
from keras_hub.src.models.backbone import Backbone as _KerasHubBackbone
from keras_hub.src.models.bert.bert_backbone import BertBackbone as _KerasHubBertBackbone
from keras_hub.src.models.distil_bert.distil_bert_backbone import DistilBertBackbone as _KerasHubDistilBertBackbone

from ptft_keras.errors import CheckpointError, ConfigError
from ptft_keras.models.activations import keras_activation
from ptft_keras.models.attention import use_fast_attention
from ptft_keras.models.hf_checkpoint import (
    CONFIG_FILE,
    find_weights_file,
    read_hf_config,
    read_sentence_pooling,
    read_weights_file,
    write_hf_checkpoint,
)
from ptft_keras.models.hf_config import backbone_kwargs, hf_config_from_kwargs
from ptft_keras.models.hf_convert import export_hf_weights, load_hf_weights
from ptft_keras.models.locate import error_summary, locate_checkpoint
from ptft_keras.models.sizes import size_config


class Backbone(_KerasHubBackbone, Functional):
    """Base class of our backbones, and the entry point that picks the right one.

    Subclasses list their keras-hub class first (`class BertBackbone(keras_hub BertBackbone,
    Backbone)`), which puts this class between keras-hub's model class and keras-hub's `Backbone`
    in the MRO: keras-hub's constructor then calls our `__init__`, where a bare output tensor is
    wrapped into `{"sequence_output": ...}` before the functional model is built. `Functional` is
    named as a base because Keras otherwise splices it into the hierarchy on first use, walking
    the bases recursively, which fails on this diamond ("inheritance cycle").

    Example:
        >>> from ptft_keras.models.backbone import Backbone
        >>> from ptft_keras.models.default_checkpoint import default_checkpoint_path
        >>> backbone = Backbone.from_pretrained(default_checkpoint_path())
        >>> type(backbone).__name__, backbone.num_layers, backbone.hidden_dim
        ('BertBackbone', 6, 384)
    """

    model_type: str | None = None
    # "mean" / "cls" when the checkpoint was trained for sentence embeddings with that pooling (a
    # sentence-transformers directory, `read_sentence_pooling`): the task heads' pooling "auto" follows it.
    sentence_pooling: str | None = None

    def __init__(self, *args, **kwargs):
        outputs = kwargs.get("outputs")
        if outputs is not None and not isinstance(outputs, dict):
            kwargs["outputs"] = {"sequence_output": outputs}
        super().__init__(*args, **kwargs)

    # --- constructors -------------------------------------------------------------------------

    @classmethod
    def from_size(cls, size: str | None = "tiny", model_type: str | None = None, vocabulary_size: int = 30522,
                  **overrides):
        """A randomly initialised backbone of a named size (see `sizes.NAMED_SIZES`), any field overridable.

        `model_type` defaults to the class's own ("bert" when called on `Backbone`); `size=None`
        takes every dimension from `overrides`.

        Example:
            >>> Backbone.from_size("tiny", model_type="distilbert", vocabulary_size=500, num_layers=3).num_layers
            3
        """
        model_type = model_type or cls.model_type or "bert"
        if model_type not in BACKBONE_CLASSES:
            raise ConfigError(f"unknown model_type {model_type!r}; use one of {list(BACKBONE_CLASSES)}")
        backbone_cls = BACKBONE_CLASSES[model_type]
        if not issubclass(backbone_cls, cls):
            raise ConfigError(f"{cls.__name__}.from_size cannot build a {model_type!r} backbone")
        kwargs = size_config(size) if size is not None else {}
        return backbone_cls(vocabulary_size=vocabulary_size, **{**kwargs, **overrides})

    @classmethod
    def from_hf_config(cls, config: dict, dtype=None):
        """A randomly initialised backbone described by a Hugging Face config dict.

        Example:
            >>> Backbone.from_hf_config({"model_type": "bert", "num_hidden_layers": 2, "hidden_size": 64,
            ...                          "num_attention_heads": 2, "intermediate_size": 128}).hidden_dim
            64
        """
        return cls._from_hf_config(config, dtype=dtype, path=None)

    @classmethod
    def from_pretrained(cls, path_or_id, *, allow_pickle: bool = False, load_weights: bool = True, dtype=None):
        """Load a backbone from a checkpoint directory, a `.keras` file, a Hub id or a keras-hub preset.

        Args:
            path_or_id: an HF directory (config.json + model.safetensors | tf_model.h5 |
                pytorch_model.bin), e.g. one written by `save_pretrained`; a `.keras` file from
                `backbone.save(...)`; a Hugging Face Hub id (downloaded when online); or a keras-hub
                preset name / directory (`bert_base_en_uncased`, needs network the first time).
            allow_pickle: read a pickled `pytorch_model.bin`. Off by default: unpickling can run
                arbitrary code. Prefer converting such checkpoints to safetensors.
            load_weights: False gives the architecture with random weights.
            dtype: a Keras dtype policy name ("float32", "bfloat16", "mixed_bfloat16").

        Example:
            >>> from ptft_keras.models.default_checkpoint import default_checkpoint_path
            >>> Backbone.from_pretrained(default_checkpoint_path(), load_weights=False).model_type
            'bert'
        """
        location = locate_checkpoint(path_or_id, allow_pickle=allow_pickle)
        if location.kind == "keras_file":
            backbone = _load_keras_file(location.path, dtype)
        elif location.kind == "keras_hub_preset":
            backbone = _from_keras_hub(location.path, load_weights, dtype)
        else:
            config_path = location.path / CONFIG_FILE
            backbone = cls._from_hf_config(read_hf_config(location.path), dtype=dtype, path=config_path)
            if load_weights:
                weights_path = find_weights_file(location.path, allow_pickle=allow_pickle)
                load_hf_weights(backbone, read_weights_file(weights_path), path=weights_path)
            backbone.sentence_pooling = read_sentence_pooling(location.path)
            return backbone
        _check_is(cls, backbone, location.path)
        return backbone

    @classmethod
    def _from_hf_config(cls, config, dtype, path):
        model_type, kwargs = backbone_kwargs(config, path=path)
        backbone_cls = BACKBONE_CLASSES[model_type]
        if not issubclass(backbone_cls, cls):
            raise CheckpointError(
                f"this is a {model_type} checkpoint; load it with Backbone.from_pretrained "
                f"or {backbone_cls.__name__}.from_pretrained",
                path=path,
                field="model_type",
            )
        return backbone_cls(**kwargs, dtype=dtype)

    # --- Hugging Face export ------------------------------------------------------------------

    def hf_config(self) -> dict:
        """The Hugging Face `config.json` contents `save_pretrained` writes.

        Example:
            >>> Backbone.from_size("tiny", vocabulary_size=100).hf_config()["hidden_size"]
            128
        """
        return hf_config_from_kwargs(self.model_type, self.get_config())

    def save_pretrained(self, directory, tokenizer=None):
        """Write an HF checkpoint (`config.json`, `model.safetensors`; tokenizer files if given), atomically.

        `transformers.AutoModel.from_pretrained(directory)` loads it as a `BertModel` /
        `DistilBertModel`, as does `Backbone.from_pretrained(directory)`. Returns the directory.

        Example:
            >>> import tempfile
            >>> backbone = Backbone.from_size("tiny", vocabulary_size=100)
            >>> directory = backbone.save_pretrained(tempfile.mkdtemp() + "/tiny")
            >>> sorted(p.name for p in directory.iterdir())
            ['config.json', 'model.safetensors']
        """
        write_extra = None if tokenizer is None else tokenizer.save_pretrained
        return write_hf_checkpoint(directory, self.hf_config(), export_hf_weights(self), write_extra=write_extra)

    # --- shared by the subclasses -------------------------------------------------------------

    def _use_hf_numerics(self, hidden_act: str, extra_hf_config, layer_norm_epsilon=None,
                         sentence_pooling=None) -> None:
        """Apply HF's activation (and epsilon) to the already-built keras-hub layers; remember HF fields
        and the checkpoint's sentence pooling.

        Also gives every self-attention layer `use_fast_attention`'s score computation (same outputs).
        """
        activation = keras_activation(hidden_act)
        for layer in self.transformer_layers:
            use_fast_attention(layer._self_attention_layer)
            layer.activation = activation
            layer._feedforward_intermediate_dense.activation = activation
            if layer_norm_epsilon is not None:
                layer.layer_norm_epsilon = layer_norm_epsilon
                layer._self_attention_layer_norm.epsilon = layer_norm_epsilon
                layer._feedforward_layer_norm.epsilon = layer_norm_epsilon
        if layer_norm_epsilon is not None:
            self.embeddings_layer_norm.epsilon = layer_norm_epsilon
        self.hidden_act = hidden_act
        self._extra_hf_config = dict(extra_hf_config or {})
        self.sentence_pooling = sentence_pooling

    def get_config(self):
        config = super().get_config()
        config.update({"hidden_act": self.hidden_act, "extra_hf_config": dict(self._extra_hf_config),
                       "sentence_pooling": self.sentence_pooling})
        return config


@keras.saving.register_keras_serializable(package="ptft_keras")
class BertBackbone(_KerasHubBertBackbone, Backbone):
    """keras-hub's BERT encoder with HF numerics (`hidden_act`, `layer_norm_epsilon`) and HF I/O.

    Args are keras-hub's `BertBackbone` args plus:
        hidden_act: HF activation name of the feed-forward layers ("gelu" = exact erf GELU,
            "gelu_new" = tanh approximation, "relu", "silu").
        layer_norm_epsilon: epsilon of every layer norm (HF `layer_norm_eps`).
        extra_hf_config: HF config.json fields carried through unchanged by `save_pretrained`.
        sentence_pooling: "mean" or "cls" when the checkpoint was trained for sentence embeddings with
            that pooling (`from_pretrained` reads it from a sentence-transformers directory); the task
            heads' ``pooling="auto"`` then uses it.

    Example:
        >>> import numpy as np
        >>> backbone = BertBackbone(vocabulary_size=100, num_layers=2, num_heads=2, hidden_dim=64,
        ...                         intermediate_dim=128, hidden_act="gelu")
        >>> out = backbone({"token_ids": np.array([[5, 6, 0]]), "segment_ids": np.array([[0, 0, 0]]),
        ...                 "padding_mask": np.array([[1, 1, 0]])})
        >>> sorted(out)
        ['pooled_output', 'sequence_output']
    """

    model_type = "bert"

    def __init__(self, vocabulary_size, num_layers, num_heads, hidden_dim, intermediate_dim, dropout=0.1,
                 max_sequence_length=512, num_segments=2, hidden_act="gelu", layer_norm_epsilon=1e-12,
                 extra_hf_config=None, sentence_pooling=None, dtype=None, **kwargs):
        keras_activation(hidden_act)  # fail on an unknown name before building anything
        super().__init__(
            vocabulary_size=vocabulary_size, num_layers=num_layers, num_heads=num_heads, hidden_dim=hidden_dim,
            intermediate_dim=intermediate_dim, dropout=dropout, max_sequence_length=max_sequence_length,
            num_segments=num_segments, dtype=dtype, **kwargs,
        )
        self._use_hf_numerics(hidden_act, extra_hf_config, layer_norm_epsilon, sentence_pooling)
        self.layer_norm_epsilon = layer_norm_epsilon

    def get_config(self):
        config = super().get_config()
        config["layer_norm_epsilon"] = self.layer_norm_epsilon
        return config


@keras.saving.register_keras_serializable(package="ptft_keras")
class DistilBertBackbone(_KerasHubDistilBertBackbone, Backbone):
    """keras-hub's DistilBERT encoder returning `{"sequence_output"}`, with HF `activation` and HF I/O.

    Args are keras-hub's `DistilBertBackbone` args plus `hidden_act` (HF `activation`) and
    `extra_hf_config`, as for `BertBackbone`. Layer-norm epsilon is 1e-12, as HF hard-codes it.

    Example:
        >>> import numpy as np
        >>> backbone = DistilBertBackbone(vocabulary_size=100, num_layers=2, num_heads=2, hidden_dim=64,
        ...                               intermediate_dim=128)
        >>> out = backbone({"token_ids": np.array([[5, 6, 0]]), "padding_mask": np.array([[1, 1, 0]])})
        >>> list(out), tuple(out["sequence_output"].shape)
        (['sequence_output'], (1, 3, 64))
    """

    model_type = "distilbert"

    def __init__(self, vocabulary_size, num_layers, num_heads, hidden_dim, intermediate_dim, dropout=0.1,
                 max_sequence_length=512, hidden_act="gelu", extra_hf_config=None, sentence_pooling=None, dtype=None,
                 **kwargs):
        keras_activation(hidden_act)
        super().__init__(
            vocabulary_size=vocabulary_size, num_layers=num_layers, num_heads=num_heads, hidden_dim=hidden_dim,
            intermediate_dim=intermediate_dim, dropout=dropout, max_sequence_length=max_sequence_length,
            dtype=dtype, **kwargs,
        )
        self._use_hf_numerics(hidden_act, extra_hf_config, sentence_pooling=sentence_pooling)


BACKBONE_CLASSES = {"bert": BertBackbone, "distilbert": DistilBertBackbone}

# keras-hub class -> (our class, the HF activation keras-hub's class computes)
_FROM_KERAS_HUB = {
    _KerasHubBertBackbone: (BertBackbone, "gelu_new"),
    _KerasHubDistilBertBackbone: (DistilBertBackbone, "gelu"),
}


def _check_is(cls, backbone, path) -> None:
    if not isinstance(backbone, cls):
        raise CheckpointError(
            f"holds a {type(backbone).__name__}, not a {cls.__name__}; load it with Backbone.from_pretrained",
            path=path,
        )


def _rebuilt(backbone_cls, config: dict, weights: list, dtype):
    """A `backbone_cls` from a Keras config and weight list, optionally in another dtype."""
    if dtype is not None:
        config = {**config, "dtype": dtype}
    backbone = backbone_cls.from_config(config)
    backbone.set_weights(weights)
    return backbone


def _with_dtype(backbone, dtype):
    """`backbone` itself, or a copy with its weights in `dtype`."""
    if dtype is None:
        return backbone
    return _rebuilt(type(backbone), backbone.get_config(), backbone.get_weights(), dtype)


def _load_keras_file(path, dtype):
    try:
        model = keras.saving.load_model(path)
    except Exception as error:  # Keras raises ValueError, OSError, zipfile errors, ... for bad files
        raise CheckpointError(f"cannot load the .keras file ({error_summary(error)})", path=path) from None
    backbone = model if isinstance(model, Backbone) else getattr(model, "backbone", None)
    if not isinstance(backbone, Backbone):
        raise CheckpointError(
            f"holds a {type(model).__name__} without a ptft_keras backbone; save the backbone itself "
            "(backbone.save(path)) or its HF checkpoint (backbone.save_pretrained(dir))",
            path=path,
        )
    return _with_dtype(backbone, dtype)


def _from_keras_hub(preset: str, load_weights: bool, dtype):
    try:
        source = _KerasHubBackbone.from_preset(preset, load_weights=load_weights)
    except Exception as error:  # network, Kaggle auth, and bad-preset errors
        raise CheckpointError(
            f"cannot load the keras-hub preset ({error_summary(error)}); "
            "named presets are downloaded from Kaggle and need network the first time",
            path=preset,
        ) from None
    if isinstance(source, Backbone):
        return _with_dtype(source, dtype)
    if type(source) not in _FROM_KERAS_HUB:
        raise CheckpointError(
            f"the keras-hub preset is a {type(source).__name__}; only BERT and DistilBERT backbones are supported",
            path=preset,
        )
    backbone_cls, hidden_act = _FROM_KERAS_HUB[type(source)]
    config = {**source.get_config(), "hidden_act": hidden_act}
    return _rebuilt(backbone_cls, config, source.get_weights(), dtype)
