"""Every docstring example in ptft_keras.models (and the reference helpers) runs and prints what it shows."""
import torch  # noqa: F401  (reference side first; see tests/conftest.py)

import doctest
import importlib

import pytest

MODULES = [
    "ptft_keras.models.activations",
    "ptft_keras.models.sizes",
    "ptft_keras.models.hf_checkpoint",
    "ptft_keras.models.hf_config",
    "ptft_keras.models.hf_convert",
    "ptft_keras.models.locate",
    "ptft_keras.models.default_checkpoint",
    "ptft_keras.models.backbone",
    "ptft_keras.testing.reference",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no docstring example"
    assert result.failed == 0
