"""Backbones: exact parity with transformers, HF save/load round trips, named sizes, Keras config and saving."""
import torch  # noqa: F401  (reference side first; see tests/conftest.py)
import transformers
from ptft_keras.testing.reference import (
    load_reference_model,
    max_abs_diff,
    padded_batch,
    random_hf_model,
    reference_outputs,
    write_random_hf_checkpoint,
    write_tf_h5,
)

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import keras
import keras_hub
from keras.src.models.functional import Functional
import numpy as np
import pytest
import safetensors.numpy

from ptft_keras.errors import CheckpointError, ConfigError
from ptft_keras.models.backbone import Backbone, BertBackbone, DistilBertBackbone

TOLERANCE = 1e-4  # float32, padded batches, non-padded positions only
LENGTHS = [11, 6, 1]  # padded batch: one full row, one half, one [CLS]-only


def our_outputs(backbone, batch):
    inputs = {"token_ids": batch["token_ids"], "padding_mask": batch["padding_mask"]}
    if backbone.model_type == "bert":
        inputs["segment_ids"] = batch["segment_ids"]
    return {name: value.numpy() for name, value in backbone(inputs).items()}


def assert_parity(ours, reference, batch, tolerance=TOLERANCE):
    assert set(ours) == set(reference)
    diff = max_abs_diff(ours["sequence_output"], reference["sequence_output"], batch["padding_mask"])
    assert diff <= tolerance, f"sequence_output differs by {diff:.2e}"
    if "pooled_output" in reference:
        diff = max_abs_diff(ours["pooled_output"], reference["pooled_output"])
        assert diff <= tolerance, f"pooled_output differs by {diff:.2e}"


@pytest.fixture(scope="module")
def batch():
    return padded_batch(vocabulary_size=512, lengths=LENGTHS)


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory):
    """Tiny random checkpoints written by transformers' own save_pretrained."""
    return {
        model_type: write_random_hf_checkpoint(tmp_path_factory.mktemp(model_type), model_type)
        for model_type in ("bert", "distilbert")
    }


# --- parity with transformers -------------------------------------------------------------------


def test_all_minilm_l6_v2_matches_transformers(minilm_path):
    batch = padded_batch(vocabulary_size=30522, lengths=[16, 9, 3], seed=1)
    backbone = Backbone.from_pretrained(minilm_path)
    assert type(backbone) is BertBackbone and backbone.hidden_act == "gelu"
    assert_parity(our_outputs(backbone, batch), reference_outputs(minilm_path, batch), batch)


@pytest.mark.parametrize("model_type", ["bert", "distilbert"])
def test_random_checkpoint_matches_transformers(hf_dirs, batch, model_type):
    backbone = Backbone.from_pretrained(hf_dirs[model_type])
    assert backbone.model_type == model_type
    assert_parity(our_outputs(backbone, batch), reference_outputs(hf_dirs[model_type], batch), batch)


def test_parity_check_detects_keras_hubs_approximate_gelu(hf_dirs, batch):
    # keras-hub's BertBackbone computes the tanh GELU; against HF "gelu" that must fail the tolerance.
    config = {**json.loads((hf_dirs["bert"] / "config.json").read_text()), "hidden_act": "gelu_new"}
    approximate = Backbone.from_hf_config(config)
    approximate.set_weights(Backbone.from_pretrained(hf_dirs["bert"]).get_weights())
    ours = our_outputs(approximate, batch)["sequence_output"]
    reference = reference_outputs(hf_dirs["bert"], batch)["sequence_output"]
    assert max_abs_diff(ours, reference, batch["padding_mask"]) > TOLERANCE


@pytest.mark.parametrize("hidden_act", ["gelu_new", "relu"])
def test_hidden_act_and_layer_norm_eps_are_honoured(tmp_path, batch, hidden_act):
    directory = write_random_hf_checkpoint(tmp_path, "bert", hidden_act=hidden_act, layer_norm_eps=1e-5)
    backbone = Backbone.from_pretrained(directory)
    assert all(layer._self_attention_layer_norm.epsilon == 1e-5 for layer in backbone.transformer_layers)
    assert backbone.embeddings_layer_norm.epsilon == 1e-5
    assert_parity(our_outputs(backbone, batch), reference_outputs(directory, batch), batch)


@pytest.mark.parametrize(
    "model_type, model_class",
    [("bert", transformers.BertForPreTraining), ("distilbert", transformers.DistilBertForMaskedLM)],
)
def test_head_model_checkpoints_with_prefixed_names(tmp_path, batch, model_type, model_class):
    # `bert.` / `distilbert.` prefixes: keras-hub 0.32's DistilBERT loader needs the prefix, bare
    # DistilBertModel files fail there; here both load.
    model = random_hf_model(model_type, model_class)
    model.save_pretrained(tmp_path)
    backbone = Backbone.from_pretrained(tmp_path)
    base = getattr(model, model_type)
    assert_parity(our_outputs(backbone, batch), reference_outputs(base, batch), batch)


def test_tf_h5_checkpoint_matches_transformers(tmp_path, hf_dirs, batch):
    tensors = safetensors.numpy.load_file(str(hf_dirs["bert"] / "model.safetensors"))
    write_tf_h5(tmp_path / "tf_model.h5", {f"bert.{k}": v for k, v in tensors.items()}, "tf_bert_model")
    shutil.copy(hf_dirs["bert"] / "config.json", tmp_path)
    backbone = Backbone.from_pretrained(tmp_path)
    assert_parity(our_outputs(backbone, batch), reference_outputs(hf_dirs["bert"], batch), batch)


def test_pickle_checkpoint_needs_allow_pickle(tmp_path, batch):
    directory = write_random_hf_checkpoint(tmp_path, "distilbert", safe_serialization=False)
    with pytest.raises(CheckpointError, match="arbitrary code"):
        Backbone.from_pretrained(directory)
    backbone = Backbone.from_pretrained(directory, allow_pickle=True)
    reference = reference_outputs(random_hf_model("distilbert"), batch)  # same seed, same weights
    assert_parity(our_outputs(backbone, batch), reference, batch)


# --- saving in HF format ------------------------------------------------------------------------


@pytest.mark.parametrize("model_type", ["bert", "distilbert"])
def test_save_pretrained_loads_in_transformers_without_key_warnings(tmp_path, batch, model_type):
    backbone = Backbone.from_size("tiny", model_type=model_type, vocabulary_size=512, max_sequence_length=40,
                                  hidden_act="gelu_new", num_layers=1)
    # keras-hub initialises biases and norms to 0/1; make them random so their placement shows.
    rng = np.random.default_rng(0)
    for variable in backbone.weights:
        variable.assign(variable.numpy() + rng.normal(0, 0.2, variable.shape).astype("float32"))
    directory = backbone.save_pretrained(tmp_path / "saved")
    config = json.loads((directory / "config.json").read_text())
    assert config["model_type"] == model_type and config["architectures"] == [
        {"bert": "BertModel", "distilbert": "DistilBertModel"}[model_type]]
    assert config[{"bert": "hidden_act", "distilbert": "activation"}[model_type]] == "gelu_new"
    model, info = load_reference_model(directory)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    ours = our_outputs(backbone, batch)
    assert_parity(ours, reference_outputs(model, batch), batch)
    reloaded = Backbone.from_pretrained(directory)
    assert {**reloaded.get_config(), "name": None} == {**backbone.get_config(), "name": None}
    assert_parity(our_outputs(reloaded, batch), ours, batch, tolerance=0.0)


def test_hf_round_trip_keeps_unmodelled_config_fields(tmp_path, minilm_path):
    backbone = Backbone.from_pretrained(minilm_path, load_weights=False)
    directory = backbone.save_pretrained(tmp_path / "minilm")
    original = json.loads((Path(minilm_path) / "config.json").read_text())
    written = json.loads((directory / "config.json").read_text())
    for field in ("pad_token_id", "initializer_range", "use_cache", "position_embedding_type", "layer_norm_eps"):
        assert written[field] == original[field], field
    assert "_name_or_path" not in written and "transformers_version" not in written


def test_save_pretrained_also_saves_the_tokenizer(tmp_path):
    class Tokenizer:  # the tokenizer engineer's contract: save_pretrained(directory)
        def save_pretrained(self, directory):
            (directory / "vocab.txt").write_text("[PAD]\n[UNK]\n")

    backbone = Backbone.from_size("tiny", vocabulary_size=64)
    directory = backbone.save_pretrained(tmp_path / "out", tokenizer=Tokenizer())
    assert sorted(p.name for p in directory.iterdir()) == ["config.json", "model.safetensors", "vocab.txt"]


# --- sizes, outputs, Keras config ---------------------------------------------------------------


def expected_bert_parameters(vocab, hidden, layers, intermediate, positions=512, segments=2):
    embeddings = (vocab + positions + segments) * hidden + 2 * hidden
    attention = 4 * (hidden * hidden + hidden) + 2 * hidden
    feed_forward = hidden * intermediate + intermediate + intermediate * hidden + hidden + 2 * hidden
    return embeddings + layers * (attention + feed_forward) + hidden * hidden + hidden


@pytest.mark.parametrize("size, layers, hidden", [("tiny", 2, 128), ("mini", 4, 256)])
def test_named_sizes_build_the_right_shapes(size, layers, hidden):
    backbone = Backbone.from_size(size, vocabulary_size=1000)
    assert (backbone.num_layers, backbone.hidden_dim, backbone.num_heads, backbone.intermediate_dim) == (
        layers, hidden, hidden // 64, 4 * hidden)
    assert len(backbone.transformer_layers) == layers
    assert backbone.count_params() == expected_bert_parameters(1000, hidden, layers, 4 * hidden)
    reference = transformers.AutoModel.from_config(transformers.AutoConfig.for_model(**backbone.hf_config()))
    assert backbone.count_params() == reference.num_parameters()


def test_distilbert_outputs_a_dict_and_exposes_keras_hub_attributes():
    backbone = Backbone.from_size("tiny", model_type="distilbert", vocabulary_size=100)
    assert isinstance(backbone, DistilBertBackbone) and isinstance(backbone, keras_hub.models.DistilBertBackbone)
    outputs = backbone({"token_ids": np.array([[4, 5, 0]]), "padding_mask": np.array([[1, 1, 0]], "int32")})
    assert list(outputs) == ["sequence_output"] and tuple(outputs["sequence_output"].shape) == (1, 3, 128)
    assert isinstance(backbone.token_embedding, keras.layers.ReversibleEmbedding)
    assert backbone.token_embedding.embeddings.shape == (100, 128)


def test_bert_subclasses_keras_hub_and_exposes_its_attributes():
    backbone = BertBackbone.from_size("tiny", vocabulary_size=100)
    assert isinstance(backbone, keras_hub.models.BertBackbone) and isinstance(backbone, Backbone)
    assert isinstance(backbone.token_embedding, keras.layers.ReversibleEmbedding)
    assert backbone.model_type == "bert" and backbone.num_segments == 2


@pytest.mark.parametrize("model_type", ["bert", "distilbert"])
def test_keras_config_and_dot_keras_file_round_trip(tmp_path, batch, model_type):
    backbone = Backbone.from_size("tiny", model_type=model_type, vocabulary_size=512, max_sequence_length=40,
                                  hidden_act="relu", extra_hf_config={"pad_token_id": 1})
    clone = type(backbone).from_config(backbone.get_config())
    assert clone.get_config() == backbone.get_config()
    assert clone.transformer_layers[0]._feedforward_intermediate_dense.activation is keras.activations.relu
    path = tmp_path / "backbone.keras"
    backbone.save(path)
    loaded = Backbone.from_pretrained(path)
    assert type(loaded) is type(backbone) and loaded.hf_config() == backbone.hf_config()
    assert_parity(our_outputs(loaded, batch), our_outputs(backbone, batch), batch, tolerance=0.0)


def test_dtype_argument(hf_dirs, batch):
    backbone = Backbone.from_pretrained(hf_dirs["distilbert"], dtype="bfloat16")
    assert backbone.token_embedding.embeddings.dtype == "bfloat16"
    outputs = our_outputs(backbone, batch)
    assert_parity(outputs, reference_outputs(hf_dirs["distilbert"], batch), batch, tolerance=0.1)


def test_from_size_rejects_unknown_or_mismatched_types():
    with pytest.raises(ConfigError, match="roberta"):
        Backbone.from_size("tiny", model_type="roberta")
    with pytest.raises(ConfigError, match="cannot build a 'distilbert'"):
        BertBackbone.from_size("tiny", model_type="distilbert")
    with pytest.raises(ConfigError, match="hidden_act"):
        Backbone.from_size("tiny", hidden_act="quick_gelu")
    assert DistilBertBackbone.from_size("tiny", vocabulary_size=10).model_type == "distilbert"


# --- other sources ------------------------------------------------------------------------------


def test_keras_hub_preset_directory_is_converted_with_keras_hubs_numerics(tmp_path, batch):
    source = keras_hub.models.BertBackbone(vocabulary_size=512, num_layers=2, num_heads=2, hidden_dim=32,
                                           intermediate_dim=64, max_sequence_length=40)
    source.save_to_preset(str(tmp_path / "preset"))
    backbone = Backbone.from_pretrained(tmp_path / "preset")
    assert type(backbone) is BertBackbone and backbone.hidden_act == "gelu_new"
    assert_parity(our_outputs(backbone, batch), our_outputs_keras_hub(source, batch), batch, tolerance=1e-6)


def test_our_own_keras_hub_preset_directory(tmp_path, batch):
    backbone = Backbone.from_size("tiny", model_type="distilbert", vocabulary_size=512, max_sequence_length=40,
                                  hidden_act="relu")
    backbone.save_to_preset(str(tmp_path / "preset"))
    loaded = Backbone.from_pretrained(tmp_path / "preset")
    assert type(loaded) is DistilBertBackbone and loaded.hidden_act == "relu"
    assert_parity(our_outputs(loaded, batch), our_outputs(backbone, batch), batch, tolerance=0.0)


def our_outputs_keras_hub(source, batch):
    return {name: value.numpy() for name, value in source(batch).items()}


def test_keras_hub_preset_names_are_loaded_through_keras_hub(monkeypatch, batch):
    source = keras_hub.models.DistilBertBackbone(vocabulary_size=512, num_layers=1, num_heads=2, hidden_dim=32,
                                                 intermediate_dim=64, max_sequence_length=40)
    requested = []

    def fake_from_preset(preset, load_weights=True, **kwargs):  # stands in for the Kaggle download
        requested.append(preset)
        return source

    monkeypatch.setattr(keras_hub.models.Backbone, "from_preset", fake_from_preset)
    backbone = Backbone.from_pretrained("distil_bert_base_en_uncased")
    assert requested == ["distil_bert_base_en_uncased"] and type(backbone) is DistilBertBackbone
    inputs = {k: batch[k] for k in ("token_ids", "padding_mask")}
    np.testing.assert_allclose(backbone(inputs)["sequence_output"].numpy(), source(inputs).numpy(), atol=1e-6)


def test_keras_hub_preset_without_network_is_a_checkpoint_error(monkeypatch):
    def offline(preset, load_weights=True, **kwargs):
        raise ConnectionError("Failed to resolve 'api.kaggle.com'")

    monkeypatch.setattr(keras_hub.models.Backbone, "from_preset", offline)
    with pytest.raises(CheckpointError, match="bert_tiny_en_uncased.*need network"):
        Backbone.from_pretrained("bert_tiny_en_uncased")


def test_hub_id_offline_fails_fast_and_clearly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE is set.*not in the local Hugging Face cache"):
        Backbone.from_pretrained("ptft-keras-tests/no-such-model")
    assert time.monotonic() - start < 5


# --- bad inputs ---------------------------------------------------------------------------------


def _without_config(directory):
    (directory / "config.json").unlink()
    return "config.json"


def _model_type(model_type):
    def damage(directory):
        config = json.loads((directory / "config.json").read_text())
        (directory / "config.json").write_text(json.dumps({**config, "model_type": model_type}))
        return "config.json"
    return damage


def _wider_config(directory):
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "hidden_size": 128}))
    return "model.safetensors"


def _missing_tensor(directory):
    tensors = safetensors.numpy.load_file(str(directory / "model.safetensors"))
    del tensors["encoder.layer.1.attention.self.key.weight"]
    safetensors.numpy.save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
    return "model.safetensors"


def _corrupt(directory):
    data = (directory / "model.safetensors").read_bytes()
    (directory / "model.safetensors").write_bytes(data[:1000])
    return "model.safetensors"


@pytest.mark.parametrize(
    "damage, message",
    [
        (_without_config, "missing config.json"),
        (_model_type("roberta"), "unsupported model_type 'roberta'"),
        (_model_type("gpt2"), "unsupported model_type 'gpt2'"),
        (_wider_config, r"config and weights disagree"),
        (_missing_tensor, "'encoder.layer.1.attention.self.key.weight' is missing"),
        (_corrupt, "corrupt or truncated"),
    ],
)
def test_bad_checkpoints_raise_checkpoint_errors_naming_the_file(tmp_path, hf_dirs, damage, message):
    directory = tmp_path / "ckpt"
    shutil.copytree(hf_dirs["bert"], directory)
    bad_file = damage(directory)
    with pytest.raises(CheckpointError, match=message) as error:
        Backbone.from_pretrained(directory)
    assert error.value.path == str(directory / bad_file)


def test_subclass_refuses_the_other_model_type(hf_dirs):
    with pytest.raises(CheckpointError, match="distilbert checkpoint.*DistilBertBackbone.from_pretrained"):
        BertBackbone.from_pretrained(hf_dirs["distilbert"])


def test_keras_file_without_a_backbone(tmp_path):
    inputs = keras.Input((3,))
    keras.Model(inputs, keras.layers.Dense(2)(inputs)).save(tmp_path / "other.keras")
    with pytest.raises(CheckpointError, match="without a ptft_keras backbone"):
        Backbone.from_pretrained(tmp_path / "other.keras")


@pytest.mark.parametrize(
    "ours, keras_hubs",
    [(BertBackbone, keras_hub.models.BertBackbone), (DistilBertBackbone, keras_hub.models.DistilBertBackbone)],
)
def test_functional_comes_before_model_in_the_mro(ours, keras_hubs):
    # Keras splices `Functional` into a model class's bases on its first construction (from
    # Model.__init__), walking the bases recursively; our classes share keras-hub's base (a
    # diamond), which breaks that walk. With Functional first, Model.__init__ is never reached.
    mro = ours.__mro__
    assert mro.index(Functional) < mro.index(keras.Model)
    assert mro.index(keras_hubs) < mro.index(Backbone) < mro.index(keras_hub.models.Backbone)


@pytest.mark.slow
def test_our_backbone_can_be_the_first_model_a_process_builds():
    # The same, end to end: a fresh process whose first model is ours.
    script = "; ".join([
        "import keras_hub", "from ptft_keras.models.backbone import Backbone",
        "Backbone.from_size('tiny', vocabulary_size=10)",
        "Backbone.from_size('tiny', model_type='distilbert', vocabulary_size=10)",
        "keras_hub.models.BertBackbone(vocabulary_size=10, num_layers=1, num_heads=2, hidden_dim=8,"
        " intermediate_dim=16)",
        "print('ok')",
    ])
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]


def test_sentence_pooling_comes_from_the_checkpoint_and_survives_a_keras_file(tmp_path):
    from ptft_keras.models.default_checkpoint import default_checkpoint_path

    backbone = Backbone.from_pretrained(default_checkpoint_path(), load_weights=False)
    assert backbone.sentence_pooling == "mean"  # all-MiniLM-L6-v2's 1_Pooling: mean over tokens
    backbone.save(tmp_path / "b.keras")
    assert Backbone.from_pretrained(tmp_path / "b.keras").sentence_pooling == "mean"
    assert Backbone.from_size("tiny", vocabulary_size=50).sentence_pooling is None
