"""What a from_pretrained argument names: local dirs and files, keras-hub presets, Hub ids (no network used)."""
import doctest
import json
import socket
import time

import huggingface_hub
import huggingface_hub.constants
import pytest

from ptft_keras.errors import CheckpointError
from ptft_keras import hub
from ptft_keras.models import locate
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


def online(monkeypatch):
    """No offline switch set (the test session sets HF_HUB_OFFLINE=1)."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def no_network(monkeypatch):
    """Any use of the network fails the test; returns the record of Hub calls, which must be cache-only."""
    calls = []

    def forbidden(*args, **kwargs):
        raise AssertionError(f"the network was used: {args}")

    def cache_only(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        assert kwargs == {"local_files_only": True}, kwargs
        raise FileNotFoundError("not in the cache")  # what a cache miss raises does not matter

    monkeypatch.setattr(socket, "create_connection", forbidden)
    monkeypatch.setattr(socket.socket, "connect", forbidden)
    monkeypatch.setattr(huggingface_hub, "list_repo_files", forbidden)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", cache_only)
    return calls


@pytest.mark.parametrize("flag", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_offline_flag_fails_at_once_saying_what_to_do(monkeypatch, no_network, flag):
    online(monkeypatch)
    monkeypatch.setenv(flag, "1")
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: pytest.fail("name lookup while offline"))
    start = time.monotonic()
    with pytest.raises(CheckpointError) as error:
        locate_checkpoint("someone/some-model")
    assert time.monotonic() - start < 1
    message = str(error.value)
    assert "HF_HUB_OFFLINE is set" in message and "local directory" in message and "unset HF_HUB_OFFLINE" in message
    assert error.value.path == "someone/some-model"
    assert no_network == [("someone/some-model", {"local_files_only": True})]


def test_unreachable_hub_fails_fast_saying_what_to_do(monkeypatch, no_network):
    """No name resolution (the usual offline laptop): seconds, not the Hub client's minute of retries."""
    online(monkeypatch)

    def no_dns(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    start = time.monotonic()
    with pytest.raises(CheckpointError) as error:
        locate_checkpoint("someone/some-model")
    assert time.monotonic() - start < 2
    message = str(error.value)
    assert "cannot reach https://huggingface.co" in message and "Name or service not known" in message
    assert "Connect to the network" in message and "HF_HUB_OFFLINE=1" in message and "local directory" in message
    assert no_network == [("someone/some-model", {"local_files_only": True})]  # the cache was tried first


def test_a_hanging_name_lookup_is_cut_short(monkeypatch, no_network):
    online(monkeypatch)
    monkeypatch.setattr(hub, "HUB_CONNECT_TIMEOUT_S", 0.3)  # the hub checks live in ptft_keras.hub
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: time.sleep(3))
    start = time.monotonic()
    with pytest.raises(CheckpointError, match="did not resolve within 0.3 s"):
        locate_checkpoint("someone/some-model")
    assert time.monotonic() - start < 1.5


def test_unreachable_hub_still_uses_a_cached_copy(monkeypatch, tmp_path):
    online(monkeypatch)
    monkeypatch.setattr(locate, "hub_unreachable_reason", lambda: "cannot reach https://huggingface.co (test)")
    monkeypatch.setattr(huggingface_hub, "list_repo_files", lambda repo_id: pytest.fail("network used"))
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, local_files_only: str(tmp_path))
    assert locate_checkpoint("org/model") == CheckpointLocation("hf_dir", tmp_path)


def test_a_proxy_is_not_second_guessed(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: pytest.fail("probed past the proxy"))
    assert locate.hub_unreachable_reason() is None


def test_docstring_examples(monkeypatch):
    for name in ("HF_ENDPOINT", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):  # the example's endpoint
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "https://huggingface.co")
    result = doctest.testmod(locate, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


@pytest.fixture
def online_hub(monkeypatch, tmp_path):
    """A fake Hub: `files` lists the repository; downloads record their allow_patterns."""
    online(monkeypatch)
    monkeypatch.setattr(locate, "hub_unreachable_reason", lambda: None)
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
