"""Reading HF checkpoint directories in every weights format, the pickle refusal, bad files, atomic writes."""
import torch  # noqa: F401  (reference side first; see tests/conftest.py)
import transformers
from ptft_keras.testing.reference import random_hf_model, write_tf_h5

import json
import shutil

import numpy as np
import pytest

from ptft_keras.errors import CheckpointError
from ptft_keras.models.hf_checkpoint import (
    find_weights_file,
    read_hf_checkpoint,
    read_hf_config,
    read_sentence_pooling,
    tf_to_pt_name,
    write_hf_checkpoint,
)


@pytest.fixture(scope="module")
def pretraining_model():
    """A BertForPreTraining: `bert.`-prefixed encoder, pooler, and MLM/NSP head tensors."""
    return random_hf_model("bert", transformers.BertForPreTraining)


@pytest.fixture(scope="module")
def expected(pretraining_model):
    return {name: value.numpy() for name, value in pretraining_model.state_dict().items()}


@pytest.fixture(scope="module")
def safetensors_dir(tmp_path_factory, pretraining_model):
    directory = tmp_path_factory.mktemp("safetensors")
    pretraining_model.save_pretrained(directory)
    return directory


def assert_same_tensors(tensors, expected):
    assert tensors, "no tensors read"
    for name, value in tensors.items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)


def test_reads_config_and_every_tensor_including_heads(safetensors_dir, expected):
    config, tensors = read_hf_checkpoint(safetensors_dir)
    assert config["model_type"] == "bert" and config["hidden_size"] == 64
    assert {"bert.embeddings.word_embeddings.weight", "bert.pooler.dense.weight", "cls.predictions.bias",
            "cls.predictions.transform.dense.weight", "cls.seq_relationship.weight"} <= set(tensors)
    assert_same_tensors(tensors, expected)


def test_reads_sharded_safetensors(tmp_path, pretraining_model, expected):
    pretraining_model.save_pretrained(tmp_path, max_shard_size="50KB")
    assert (tmp_path / "model.safetensors.index.json").is_file() and not (tmp_path / "model.safetensors").exists()
    _, tensors = read_hf_checkpoint(tmp_path)
    assert_same_tensors(tensors, expected)
    assert "cls.predictions.bias" in tensors and "bert.encoder.layer.1.output.dense.weight" in tensors


def test_reads_tf_h5_into_pytorch_names_and_layout(tmp_path, safetensors_dir, expected):
    # transformers' TF layout: Dense kernels are [in, out], LayerNorm gamma/beta, "layer_._0" scopes.
    bert_tensors = {name: value for name, value in expected.items() if name.startswith("bert.")}
    write_tf_h5(tmp_path / "tf_model.h5", bert_tensors, model_scope="tf_bert_model")
    shutil.copy(safetensors_dir / "config.json", tmp_path)
    _, tensors = read_hf_checkpoint(tmp_path)
    assert set(tensors) == set(bert_tensors)
    assert_same_tensors(tensors, expected)


def test_tf_names_follow_transformers_conversion():
    assert tf_to_pt_name("tf_bert_model/bert/embeddings/position_embeddings/embeddings:0") == (
        "bert.embeddings.position_embeddings.weight", False)
    assert tf_to_pt_name("tf_distil_bert_model/distilbert/transformer/layer_._3/ffn/lin1/kernel:0") == (
        "distilbert.transformer.layer.3.ffn.lin1.weight", True)
    assert tf_to_pt_name("tf_bert_for_masked_lm/mlm___cls/predictions/bias:0") == ("cls.predictions.bias", False)


@pytest.fixture
def pickle_dir(tmp_path, pretraining_model):
    pretraining_model.config.save_pretrained(tmp_path)
    torch.save(pretraining_model.state_dict(), tmp_path / "pytorch_model.bin")
    return tmp_path


def test_pickle_is_refused_by_default_saying_why_and_how(pickle_dir):
    with pytest.raises(CheckpointError) as error:
        read_hf_checkpoint(pickle_dir)
    message = str(error.value)
    assert error.value.path.endswith("pytorch_model.bin")
    assert "arbitrary code" in message and "safetensors" in message
    assert "pass --allow-pickle (CLI) or allow_pickle=True (Python)" in message  # both ways to allow it


def test_pickle_is_read_when_allowed(pickle_dir, expected):
    _, tensors = read_hf_checkpoint(pickle_dir, allow_pickle=True)
    assert_same_tensors(tensors, expected)
    assert "cls.predictions.bias" in tensors


def test_safetensors_is_preferred_over_pickle(pickle_dir, safetensors_dir):
    shutil.copy(safetensors_dir / "model.safetensors", pickle_dir)
    assert find_weights_file(pickle_dir).name == "model.safetensors"


def test_bfloat16_safetensors_are_readable(tmp_path):
    random_hf_model("distilbert").to(torch.bfloat16).save_pretrained(tmp_path)
    _, tensors = read_hf_checkpoint(tmp_path)
    assert str(tensors["embeddings.word_embeddings.weight"].dtype) == "bfloat16"


def test_missing_config_names_the_file(tmp_path, safetensors_dir):
    shutil.copy(safetensors_dir / "model.safetensors", tmp_path)
    with pytest.raises(CheckpointError, match="missing config.json") as error:
        read_hf_checkpoint(tmp_path)
    assert error.value.path == str(tmp_path / "config.json")


def test_invalid_json_names_the_line(tmp_path):
    (tmp_path / "config.json").write_text('{\n  "model_type": "bert",\n  "hidden_size": 64,,\n}\n')
    with pytest.raises(CheckpointError, match="not valid JSON") as error:
        read_hf_config(tmp_path)
    assert error.value.line == 3 and error.value.path.endswith("config.json")


def test_no_weights_file_lists_what_was_expected(tmp_path, safetensors_dir):
    shutil.copy(safetensors_dir / "config.json", tmp_path)
    with pytest.raises(CheckpointError, match="no weights file.*model.safetensors.*tf_model.h5"):
        read_hf_checkpoint(tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_weights_file_names_it(tmp_path, safetensors_dir, damage):
    shutil.copy(safetensors_dir / "config.json", tmp_path)
    data = (safetensors_dir / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\x00" * 64)
    with pytest.raises(CheckpointError, match="corrupt or truncated") as error:
        read_hf_checkpoint(tmp_path)
    assert error.value.path.endswith("model.safetensors")


def test_missing_directory_and_file_instead_of_directory(tmp_path, safetensors_dir):
    with pytest.raises(CheckpointError, match="no such checkpoint directory"):
        read_hf_checkpoint(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="got a file"):
        read_hf_checkpoint(safetensors_dir / "model.safetensors")


def test_write_then_read_round_trip(tmp_path):
    tensors = {"a.weight": np.arange(6, dtype="float32").reshape(2, 3).T, "b": np.ones(2, "float32")}
    directory = write_hf_checkpoint(tmp_path / "out", {"model_type": "bert", "z": 1}, tensors)
    config, read = read_hf_checkpoint(directory)
    assert config == {"model_type": "bert", "z": 1}
    assert_same_tensors(read, tensors)


def test_failed_write_leaves_nothing_behind(tmp_path):
    def fail(_):
        raise RuntimeError("tokenizer failed")

    with pytest.raises(RuntimeError, match="tokenizer failed"):
        write_hf_checkpoint(tmp_path / "out", {"model_type": "bert"}, {"b": np.ones(2, "float32")}, write_extra=fail)
    assert list(tmp_path.iterdir()) == []


def test_writing_into_an_existing_directory_replaces_only_our_files(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "config.json").write_text("{}")
    (tmp_path / "out" / "notes.txt").write_text("keep me")
    write_hf_checkpoint(tmp_path / "out", {"model_type": "distilbert"}, {"b": np.ones(2, "float32")},
                        write_extra=lambda d: (d / "vocab.txt").write_text("[PAD]\n"))
    assert json.loads((tmp_path / "out" / "config.json").read_text()) == {"model_type": "distilbert"}
    assert (tmp_path / "out" / "notes.txt").read_text() == "keep me"
    assert (tmp_path / "out" / "vocab.txt").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_cannot_write_over_a_file(tmp_path):
    (tmp_path / "out").write_text("x")
    with pytest.raises(CheckpointError, match="not a directory"):
        write_hf_checkpoint(tmp_path / "out", {}, {})


class _TouchesAFile:
    """Unpickling this runs code: it creates `marker`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (type(self.marker).touch, (self.marker,))


def test_allowed_pickle_still_runs_no_code(tmp_path):
    marker = tmp_path / "code-ran"
    torch.save({"embeddings.word_embeddings.weight": _TouchesAFile(marker)}, tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(CheckpointError, match="weights-only loader refused"):
        read_hf_checkpoint(tmp_path, allow_pickle=True)
    assert not marker.exists()


def _sentence_transformers_dir(directory, **modes):
    (directory / "1_Pooling").mkdir(parents=True)
    (directory / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]))
    config = {"word_embedding_dimension": 8, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": False,
              "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}
    (directory / "1_Pooling" / "config.json").write_text(json.dumps({**config, **modes}))
    return directory


def test_sentence_pooling_is_read_from_a_sentence_transformers_directory(tmp_path):
    assert read_sentence_pooling(_sentence_transformers_dir(tmp_path / "m", pooling_mode_mean_tokens=True)) == "mean"
    assert read_sentence_pooling(_sentence_transformers_dir(tmp_path / "c", pooling_mode_cls_token=True)) == "cls"
    # max pooling has no head equivalent, several modes are concatenated: no hint
    assert read_sentence_pooling(_sentence_transformers_dir(tmp_path / "x", pooling_mode_max_tokens=True)) is None
    assert read_sentence_pooling(_sentence_transformers_dir(tmp_path / "2", pooling_mode_mean_tokens=True,
                                                            pooling_mode_cls_token=True)) is None
    assert read_sentence_pooling(tmp_path) is None  # a plain HF directory
    broken = _sentence_transformers_dir(tmp_path / "b", pooling_mode_mean_tokens=True)
    (broken / "modules.json").write_text("[{")
    assert read_sentence_pooling(broken) is None
