"""The HF <-> Keras weight table: names and shapes equal transformers', both directions agree, bad tensors."""
import torch  # noqa: F401  (reference side first; see tests/conftest.py)
import transformers
from ptft_keras.testing.reference import tiny_hf_config

import numpy as np
import pytest

from ptft_keras.errors import CheckpointError
from ptft_keras.models.backbone import Backbone
from ptft_keras.models.hf_convert import export_hf_weights, load_hf_weights, weight_table


@pytest.fixture(scope="module", params=["bert", "distilbert"])
def pair(request):
    """(our backbone, transformers base model) built from the same tiny config."""
    config = tiny_hf_config(request.param)
    return Backbone.from_hf_config(config.to_dict()), transformers.AutoModel.from_config(config)


def test_exported_names_and_shapes_are_transformers_state_dict(pair):
    ours, reference = pair
    exported = export_hf_weights(ours)
    expected = {name: tuple(value.shape) for name, value in reference.state_dict().items()}
    assert {name: value.shape for name, value in exported.items()} == expected


def test_table_covers_every_variable_once(pair):
    ours, _ = pair
    variables = [row.variable for row in weight_table(ours)]
    assert len({id(v) for v in variables}) == len(variables) == len(ours.weights)


def test_export_then_load_restores_every_variable(pair):
    ours, _ = pair
    fresh = Backbone.from_hf_config(ours.hf_config())
    load_hf_weights(fresh, export_hf_weights(ours))
    for a, b in zip(ours.weights, fresh.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_head_prefix_and_gamma_beta_names_are_accepted(pair):
    ours, _ = pair
    prefix = f"{ours.model_type}."
    tensors = {}
    for name, value in export_hf_weights(ours).items():
        if "LayerNorm" in name:  # TF-era BERT naming
            name = name.replace(".weight", ".gamma").replace(".bias", ".beta")
        tensors[prefix + name] = value
    tensors["cls.predictions.bias"] = np.zeros(3, "float32")  # head tensors are ignored
    fresh = Backbone.from_hf_config(ours.hf_config())
    load_hf_weights(fresh, tensors)
    np.testing.assert_array_equal(fresh.embeddings_layer_norm.gamma.numpy(), ours.embeddings_layer_norm.gamma.numpy())
    np.testing.assert_array_equal(fresh.transformer_layers[-1]._feedforward_layer_norm.beta.numpy(),
                                  ours.transformer_layers[-1]._feedforward_layer_norm.beta.numpy())


def test_missing_tensor_is_named(pair):
    ours, _ = pair
    tensors = export_hf_weights(ours)
    missing = next(name for name in tensors if "layer.1" in name and name.endswith("bias"))
    del tensors[missing]
    with pytest.raises(CheckpointError, match="is missing") as error:
        load_hf_weights(Backbone.from_hf_config(ours.hf_config()), tensors, path="ckpt/model.safetensors")
    assert error.value.field == missing and error.value.path == "ckpt/model.safetensors"


def test_shape_mismatch_between_config_and_weights_is_explained(pair):
    ours, _ = pair
    wider = {**ours.hf_config(), **({"hidden_size": 128} if ours.model_type == "bert" else {"dim": 128})}
    with pytest.raises(CheckpointError, match=r"has shape \(512, 64\) but config.json implies \(512, 128\)"):
        load_hf_weights(Backbone.from_hf_config(wider), export_hf_weights(ours), path="x")


def test_not_a_bert_checkpoint(pair):
    ours, _ = pair
    with pytest.raises(CheckpointError, match="not a BERT-family checkpoint"):
        load_hf_weights(ours, {"transformer.h.0.attn.c_attn.weight": np.zeros((2, 2), "float32")})


def test_missing_pooler_only_warns_and_loads_the_rest():
    source = Backbone.from_size("tiny", vocabulary_size=64, max_sequence_length=16)
    tensors = {name: value for name, value in export_hf_weights(source).items() if not name.startswith("pooler.")}
    target = Backbone.from_hf_config(source.hf_config())
    with pytest.warns(UserWarning, match="pooler.dense.weight.*random"):
        load_hf_weights(target, tensors)
    np.testing.assert_array_equal(target.token_embedding.embeddings.numpy(), source.token_embedding.embeddings.numpy())
