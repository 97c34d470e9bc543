"""HF config.json <-> backbone arguments: both directions, defaults, pass-through fields, refusals."""
import transformers

import pytest

from ptft_keras.errors import CheckpointError
from ptft_keras.models.hf_config import backbone_kwargs, hf_config_from_kwargs


@pytest.mark.parametrize("model_type", ["bert", "distilbert"])
def test_transformers_default_config_round_trips(model_type):
    original = transformers.AutoConfig.for_model(model_type, pad_token_id=3, id2label={0: "neg", 1: "pos"}).to_dict()
    got_type, kwargs = backbone_kwargs(original)
    written = hf_config_from_kwargs(got_type, kwargs)
    assert got_type == model_type
    assert written["architectures"] == [{"bert": "BertModel", "distilbert": "DistilBertModel"}[model_type]]
    # transformers reads back exactly what it wrote, extras (pad_token_id, labels) included.
    reread = transformers.AutoConfig.for_model(**written).to_dict()
    for field in ("transformers_version", "architectures", "dtype", "_name_or_path"):
        original.pop(field, None), reread.pop(field, None)
    assert reread == original


def test_bert_fields_map_to_backbone_arguments():
    model_type, kwargs = backbone_kwargs({
        "model_type": "bert", "vocab_size": 99, "num_hidden_layers": 3, "num_attention_heads": 2,
        "hidden_size": 32, "intermediate_size": 48, "hidden_dropout_prob": 0.2, "max_position_embeddings": 17,
        "type_vocab_size": 4, "hidden_act": "relu", "layer_norm_eps": 1e-5, "initializer_range": 0.5,
    })
    assert kwargs == {
        "vocabulary_size": 99, "num_layers": 3, "num_heads": 2, "hidden_dim": 32, "intermediate_dim": 48,
        "dropout": 0.2, "max_sequence_length": 17, "num_segments": 4, "hidden_act": "relu",
        "layer_norm_epsilon": 1e-5, "extra_hf_config": {"initializer_range": 0.5},
    }


def test_missing_fields_take_transformers_defaults():
    _, kwargs = backbone_kwargs({"model_type": "bert"})
    defaults = transformers.BertConfig()
    assert (kwargs["num_layers"], kwargs["hidden_dim"], kwargs["hidden_act"], kwargs["layer_norm_epsilon"]) == (
        defaults.num_hidden_layers, defaults.hidden_size, defaults.hidden_act, defaults.layer_norm_eps)
    _, kwargs = backbone_kwargs({"model_type": "distilbert"})
    defaults = transformers.DistilBertConfig()
    assert (kwargs["num_layers"], kwargs["intermediate_dim"], kwargs["hidden_act"]) == (
        defaults.n_layers, defaults.hidden_dim, defaults.activation)


@pytest.mark.parametrize("model_type", ["roberta", "gpt2", None])
def test_unsupported_model_type_names_file_and_field(model_type):
    config = {} if model_type is None else {"model_type": model_type}
    with pytest.raises(CheckpointError, match="unsupported model_type") as error:
        backbone_kwargs(config, path="ckpt/config.json")
    assert error.value.field == "model_type" and str(error.value).startswith("ckpt/config.json")


@pytest.mark.parametrize(
    "config, field",
    [
        ({"model_type": "bert", "position_embedding_type": "relative_key"}, "position_embedding_type"),
        ({"model_type": "bert", "is_decoder": True}, "is_decoder"),
        ({"model_type": "bert", "hidden_act": "quick_gelu"}, "hidden_act"),
        ({"model_type": "distilbert", "activation": "mish"}, "activation"),
        ({"model_type": "bert", "hidden_size": 100, "num_attention_heads": 3}, "num_attention_heads"),
        ({"model_type": "distilbert", "dim": 100, "n_heads": 3}, "n_heads"),
    ],
)
def test_unrepresentable_settings_name_the_field(config, field):
    with pytest.raises(CheckpointError) as error:
        backbone_kwargs(config, path="c.json")
    assert error.value.field == field


def test_file_level_fields_are_not_carried():
    _, kwargs = backbone_kwargs({"model_type": "bert", "_name_or_path": "x", "architectures": ["BertForMaskedLM"],
                                 "transformers_version": "4.8.2", "torch_dtype": "float16", "pad_token_id": 1})
    assert kwargs["extra_hf_config"] == {"pad_token_id": 1}
    written = hf_config_from_kwargs("bert", kwargs)
    assert written["architectures"] == ["BertModel"] and "torch_dtype" not in written
    assert written["attention_probs_dropout_prob"] == written["hidden_dropout_prob"] == 0.1
