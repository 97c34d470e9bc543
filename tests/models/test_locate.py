"""What a from_pretrained argument names: local dirs and files, keras-hub presets, Hub ids (no network used)."""
import json

import huggingface_hub
import pytest

from ptft_keras.errors import CheckpointError
from ptft_keras.models.locate import CheckpointLocation, locate_checkpoint


def test_local_kinds(tmp_path):
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (tmp_path / "preset").mkdir()
    (tmp_path / "preset" / "config.json").write_text(json.dumps({"class_name": "BertBackbone", "config": {}}))
    (tmp_path / "model.keras").write_bytes(b"zip")
    assert locate_checkpoint(tmp_path / "hf") == CheckpointLocation("hf_dir", tmp_path / "hf")
    preset, keras_file = str(tmp_path / "preset"), tmp_path / "model.keras"
    assert locate_checkpoint(preset) == CheckpointLocation("keras_hub_preset", preset)
    assert locate_checkpoint(keras_file) == CheckpointLocation("keras_file", keras_file)


def test_other_local_file_is_refused(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="expected a checkpoint directory"):
        locate_checkpoint(tmp_path / "model.safetensors")


@pytest.mark.parametrize(
    "name", ["bert_tiny_en_uncased", "distil_bert_base_en_uncased", "kaggle://keras/bert/keras/x"]
)
def test_keras_hub_preset_names(name):
    assert locate_checkpoint(name) == CheckpointLocation("keras_hub_preset", name)


@pytest.mark.parametrize("name", ["missing/dir/model.keras", "not a model id", "/abs/path/that/does/not/exist"])
def test_neither_path_nor_hub_id(name):
    with pytest.raises(CheckpointError, match="no such file or directory"):
        locate_checkpoint(name)


def test_offline_hub_id_uses_only_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    calls = []

    def snapshot_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        return str(tmp_path)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    assert locate_checkpoint("hf://org/model") == CheckpointLocation("hf_dir", tmp_path)
    assert calls == [("org/model", {"local_files_only": True})]


def test_offline_cache_miss_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE is set.*hf download ptft-tests/absent") as error:
        locate_checkpoint("ptft-tests/absent")
    assert error.value.path == "ptft-tests/absent"


@pytest.fixture
def online_hub(monkeypatch, tmp_path):
    """A fake Hub: `files` lists the repository; downloads record their allow_patterns."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    hub = {"files": [], "patterns": None}
    monkeypatch.setattr(huggingface_hub, "list_repo_files", lambda repo_id: hub["files"])

    def snapshot_download(repo_id, allow_patterns):
        hub["patterns"] = allow_patterns
        return str(tmp_path)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return hub


def test_online_download_fetches_one_weights_file_safetensors_first(online_hub):
    online_hub["files"] = ["config.json", "vocab.txt", "model.safetensors", "tf_model.h5", "pytorch_model.bin"]
    locate_checkpoint("org/model")
    assert "model.safetensors" in online_hub["patterns"] and "config.json" in online_hub["patterns"]
    assert "tf_model.h5" not in online_hub["patterns"] and "pytorch_model.bin" not in online_hub["patterns"]


def test_online_pickle_only_repository_needs_allow_pickle(online_hub):
    online_hub["files"] = ["config.json", "pytorch_model.bin"]
    with pytest.raises(CheckpointError, match="arbitrary code"):
        locate_checkpoint("org/model")
    assert online_hub["patterns"] is None  # refused before downloading anything
    locate_checkpoint("org/model", allow_pickle=True)
    assert "pytorch_model.bin" in online_hub["patterns"]


def test_online_network_failure_is_a_checkpoint_error(monkeypatch, online_hub):
    def unreachable(repo_id):
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(huggingface_hub, "list_repo_files", unreachable)
    with pytest.raises(CheckpointError, match="ConnectionError: Name or service not known"):
        locate_checkpoint("org/model")
