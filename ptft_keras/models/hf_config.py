"""Translate between a Hugging Face `config.json` and our backbone constructor arguments.

One table per model type maps HF field names to backbone arguments; both directions read it.
HF fields the backbone does not use (`pad_token_id`, `initializer_range`, `id2label`, ...) travel
through unchanged as `extra_hf_config`, so a load-then-save keeps them.

Example:
    >>> from ptft_keras.models.hf_config import backbone_kwargs, hf_config_from_kwargs
    >>> model_type, kwargs = backbone_kwargs({"model_type": "distilbert", "n_layers": 2, "dim": 128,
    ...                                       "n_heads": 2, "hidden_dim": 512})
    >>> model_type, kwargs["num_layers"], kwargs["intermediate_dim"], kwargs["hidden_act"]
    ('distilbert', 2, 512, 'gelu')
    >>> hf_config_from_kwargs(model_type, kwargs)["architectures"]
    ['DistilBertModel']
"""
from __future__ import annotations

from ptft_keras.errors import CheckpointError
from ptft_keras.models.activations import HF_ACTIVATIONS


class _HfSchema:
    """How one model type's config.json fields map onto backbone arguments."""

    def __init__(self, architecture, fields, defaults, mirrors, required):
        self.architecture = architecture
        self.fields = fields  # HF field -> backbone argument
        self.defaults = defaults  # transformers' defaults, for fields a config.json leaves out
        self.mirrors = mirrors  # HF field written with the value of a backbone argument
        self.required = required  # HF field -> the only value the backbone can represent


SCHEMAS = {
    "bert": _HfSchema(
        architecture="BertModel",
        fields={
            "vocab_size": "vocabulary_size",
            "num_hidden_layers": "num_layers",
            "num_attention_heads": "num_heads",
            "hidden_size": "hidden_dim",
            "intermediate_size": "intermediate_dim",
            "hidden_dropout_prob": "dropout",
            "max_position_embeddings": "max_sequence_length",
            "type_vocab_size": "num_segments",
            "hidden_act": "hidden_act",
            "layer_norm_eps": "layer_norm_epsilon",
        },
        defaults={
            "vocab_size": 30522, "num_hidden_layers": 12, "num_attention_heads": 12, "hidden_size": 768,
            "intermediate_size": 3072, "hidden_dropout_prob": 0.1, "max_position_embeddings": 512,
            "type_vocab_size": 2, "hidden_act": "gelu", "layer_norm_eps": 1e-12,
        },
        # keras-hub's encoder uses one dropout rate for attention probabilities and hidden states.
        mirrors={"attention_probs_dropout_prob": "dropout"},
        required={"position_embedding_type": "absolute", "is_decoder": False, "add_cross_attention": False},
    ),
    "distilbert": _HfSchema(
        architecture="DistilBertModel",
        fields={
            "vocab_size": "vocabulary_size",
            "n_layers": "num_layers",
            "n_heads": "num_heads",
            "dim": "hidden_dim",
            "hidden_dim": "intermediate_dim",
            "dropout": "dropout",
            "max_position_embeddings": "max_sequence_length",
            "activation": "hidden_act",
        },
        defaults={
            "vocab_size": 30522, "n_layers": 6, "n_heads": 12, "dim": 768, "hidden_dim": 3072,
            "dropout": 0.1, "max_position_embeddings": 512, "activation": "gelu",
        },
        mirrors={"attention_dropout": "dropout"},
        required={},
    ),
}

# Fields that describe the file rather than the model; we write our own or none.
_NOT_CARRIED = {"_name_or_path", "architectures", "model_type", "transformers_version", "torch_dtype", "dtype"}


def backbone_kwargs(hf_config: dict, path=None) -> tuple[str, dict]:
    """`(model_type, constructor kwargs)` for an HF config dict; CheckpointError naming `path` and the field.

    Missing fields take transformers' defaults, as transformers does when it reads the file.
    """
    model_type = hf_config.get("model_type")
    if model_type not in SCHEMAS:
        raise CheckpointError(
            f"unsupported model_type {model_type!r}: ptft_keras loads {' and '.join(SCHEMAS)} checkpoints"
            " (an encoder of another family needs its own backbone)",
            path=path,
            field="model_type",
        )
    schema = SCHEMAS[model_type]
    for field, supported in schema.required.items():
        if hf_config.get(field, supported) != supported:
            raise CheckpointError(
                f"{field}={hf_config[field]!r} is not supported; this backbone implements only {supported!r}",
                path=path,
                field=field,
            )
    values = {**schema.defaults, **{k: v for k, v in hf_config.items() if k in schema.fields}}
    kwargs = {argument: values[field] for field, argument in schema.fields.items()}
    activation_field = next(f for f, a in schema.fields.items() if a == "hidden_act")
    if kwargs["hidden_act"] not in HF_ACTIVATIONS:
        raise CheckpointError(
            f"unsupported activation {kwargs['hidden_act']!r}; supported: {sorted(HF_ACTIVATIONS)}",
            path=path,
            field=activation_field,
        )
    heads_field = next(f for f, a in schema.fields.items() if a == "num_heads")
    if kwargs["hidden_dim"] % kwargs["num_heads"]:
        raise CheckpointError(
            f"hidden size {kwargs['hidden_dim']} is not divisible by {kwargs['num_heads']} attention heads",
            path=path,
            field=heads_field,
        )
    kwargs["extra_hf_config"] = {
        k: v for k, v in hf_config.items()
        if k not in schema.fields and k not in schema.mirrors and k not in _NOT_CARRIED
    }
    return model_type, kwargs


def hf_config_from_kwargs(model_type: str, kwargs: dict) -> dict:
    """The HF `config.json` dict for a backbone of `model_type` built with constructor `kwargs`."""
    schema = SCHEMAS[model_type]
    config = dict(kwargs.get("extra_hf_config") or {})
    config.update({field: kwargs[argument] for field, argument in schema.fields.items()})
    config.update({field: kwargs[argument] for field, argument in schema.mirrors.items()})
    config["model_type"] = model_type
    config["architectures"] = [schema.architecture]
    return config
