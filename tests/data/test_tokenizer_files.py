"""Tokenizer files from a Hub id: offline, or with no route to the Hub, the local cache only, at once."""
import time

import huggingface_hub
import pytest

from ptft_keras.data import tokenizer_files
from ptft_keras.errors import CheckpointError


@pytest.mark.parametrize("variable", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_an_uncached_hub_id_offline_fails_at_once_saying_what_to_do(monkeypatch, variable):
    monkeypatch.setenv(variable, "1")
    start = time.monotonic()
    with pytest.raises(CheckpointError, match=f"cannot be asked .*OFFLINE.* pass its directory") as error:
        tokenizer_files.resolve_directory("someone/not-cached-anywhere")
    assert time.monotonic() - start < 5 and error.value.path == "someone/not-cached-anywhere"


def test_an_unreachable_hub_is_not_retried(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(tokenizer_files, "hub_unreachable_reason", lambda: "cannot reach https://huggingface.co (test)")
    asked = []

    def cached_only(repo_id, local_files_only=False, **kwargs):
        asked.append(local_files_only)
        return str(tmp_path)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", cached_only)
    assert tokenizer_files.resolve_directory("org/model") == tmp_path and asked == [True]
