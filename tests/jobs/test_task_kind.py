"""`jobs.task_kind` and `jobs.token_kind`: their docstring examples run and print what they show."""
import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["ptft_keras.jobs.task_kind", "ptft_keras.jobs.token_kind"])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
