"""Decide what a `from_pretrained` argument names, fetching Hugging Face Hub checkpoints when needed.

A string or path is, in this order: a local HF checkpoint directory, a keras-hub preset directory
or a `.keras` file; a keras-hub preset name (`bert_tiny_en_uncased`, `kaggle://...`); else a
Hugging Face Hub id (`sentence-transformers/all-MiniLM-L6-v2`, or `hf://...`), downloaded into the
HF cache. Offline (`HF_HUB_OFFLINE=1`) a Hub id is looked up in the cache only, and a miss fails
at once with a CheckpointError instead of waiting on the network. Without the flag, the Hub is
first checked to be reachable within `HUB_CONNECT_TIMEOUT_S` (name lookup and connection; the
Hub client would retry for about a minute): if it is not, a cached copy is used, or the error
says what to do (connect, set HF_HUB_OFFLINE=1, or pass a local directory).

Example:
    >>> from ptft_keras.models.default_checkpoint import default_checkpoint_path
    >>> from ptft_keras.models.locate import locate_checkpoint
    >>> locate_checkpoint(default_checkpoint_path()).kind
    'hf_dir'
    >>> locate_checkpoint("bert_tiny_en_uncased")
    CheckpointLocation(kind='keras_hub_preset', path='bert_tiny_en_uncased')
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ptft_keras import storage
from ptft_keras.errors import CheckpointError
from ptft_keras.hub import (  # noqa: F401 - re-exported: the hub checks every layer shares
    HUB_CONNECT_TIMEOUT_S,
    error_summary,
    hub_offline,
    hub_unreachable_reason,
)
from ptft_keras.models.hf_checkpoint import (
    CONFIG_FILE,
    PICKLE_FILE,
    SAFETENSORS_FILE,
    SAFETENSORS_INDEX_FILE,
    TF_H5_FILE,
    pickle_refusal,
)

TOKENIZER_FILES = ["vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json"]
_KERAS_HUB_SCHEMES = ("kaggle://", "modelscope://")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
# Seconds each for resolving the Hub's name and connecting to it before calling it unreachable.


@dataclass(frozen=True)
class CheckpointLocation:
    """What to load: `kind` is "hf_dir", "keras_file" or "keras_hub_preset"; `path` a Path or a preset name."""

    kind: str
    path: Path | str


def locate_checkpoint(path_or_id, allow_pickle: bool = False) -> CheckpointLocation:
    """Classify `path_or_id`, downloading a Hugging Face Hub id into the local cache when online (and a
    ``gs://`` path into `storage.CACHE_DIR`)."""
    path_or_id = storage.local_copy(path_or_id, "model")
    path = Path(os.fspath(path_or_id)).expanduser()
    if path.is_file():
        if path.suffix == ".keras":
            return CheckpointLocation("keras_file", path)
        raise CheckpointError(
            "expected a checkpoint directory (config.json + weights) or a .keras file", path=path
        )
    if path.is_dir():
        kind = "keras_hub_preset" if _is_keras_hub_preset_dir(path) else "hf_dir"
        return CheckpointLocation(kind, str(path) if kind == "keras_hub_preset" else path)
    name = str(path_or_id)
    # Preset names have no "/": a Hub id does not wait for keras-hub (and TensorFlow) to import.
    if name.startswith(_KERAS_HUB_SCHEMES) or ("/" not in name and name in _keras_hub_preset_names()):
        return CheckpointLocation("keras_hub_preset", name)
    repo_id = name.removeprefix("hf://")
    if name.endswith(".keras") or not _HUB_ID.match(repo_id):
        raise CheckpointError("no such file or directory (nor a Hugging Face Hub id)", path=name)
    return CheckpointLocation("hf_dir", download_from_hub(repo_id, allow_pickle=allow_pickle))


def download_from_hub(repo_id: str, allow_pickle: bool = False) -> Path:
    """The local snapshot directory of Hub repo `repo_id` (config, tokenizer files, one weights file).

    Fails within seconds with a CheckpointError when it cannot be had: offline (`HF_HUB_OFFLINE`)
    and not cached, or the Hub unreachable (`hub_unreachable_reason`) and not cached.
    """
    try:
        import huggingface_hub
    except ImportError:
        raise CheckpointError(
            "not a local path; fetching it from the Hugging Face Hub needs huggingface_hub "
            "(pip install huggingface_hub)",
            path=repo_id,
        ) from None
    offline = hub_offline()
    unreachable = None if offline else hub_unreachable_reason()
    try:
        if offline or unreachable:
            return Path(huggingface_hub.snapshot_download(repo_id, local_files_only=True))
        weights = _weight_patterns(set(huggingface_hub.list_repo_files(repo_id)), repo_id, allow_pickle)
        return Path(huggingface_hub.snapshot_download(
            repo_id, allow_patterns=[CONFIG_FILE, *TOKENIZER_FILES, *weights]
        ))
    except CheckpointError:
        raise
    except Exception as error:  # network, auth and not-found errors all end the same way for the user
        if offline:
            raise CheckpointError(
                "there is no such local file or directory, and HF_HUB_OFFLINE is set and it is not in the local "
                "Hugging Face cache. Pass a local directory holding config.json and model.safetensors, or unset "
                f"HF_HUB_OFFLINE with network to download it (or download it where there is network: "
                f"`hf download {repo_id} --local-dir DIR`)",
                path=repo_id,
            ) from None
        if unreachable:
            raise CheckpointError(
                f"there is no such local file or directory, and as a Hugging Face Hub id it cannot be fetched: "
                f"{unreachable}, and it is not in the local Hugging Face cache. Connect to the network (or set "
                "HTTPS_PROXY), or pass a local directory holding config.json and model.safetensors; set "
                "HF_HUB_OFFLINE=1 to use only the local cache without trying the network",
                path=repo_id,
            ) from None
        raise CheckpointError(
            f"not a local checkpoint, and it could not be fetched from the Hugging Face Hub ({error_summary(error)}). "
            "Pass a local directory holding config.json and model.safetensors, or download it "
            f"where there is network (`hf download {repo_id} --local-dir DIR`)",
            path=repo_id,
        ) from None


def _weight_patterns(files: set[str], repo_id: str, allow_pickle: bool) -> list[str]:
    """The one weights file to download, in the order read_hf_checkpoint prefers them."""
    if SAFETENSORS_FILE in files:
        return [SAFETENSORS_FILE]
    if SAFETENSORS_INDEX_FILE in files:
        return [SAFETENSORS_INDEX_FILE, "model-*.safetensors"]
    if TF_H5_FILE in files:
        return [TF_H5_FILE]
    if PICKLE_FILE in files:
        if not allow_pickle:
            raise pickle_refusal(f"{repo_id}/{PICKLE_FILE}")
        return [PICKLE_FILE]
    raise CheckpointError("the Hub repository has no weights file this library can read", path=repo_id)


def _is_keras_hub_preset_dir(path: Path) -> bool:
    """A keras-hub preset's config.json is a serialized Keras object, not an HF config."""
    try:
        config = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False  # a missing or bad config.json is reported by the HF reader, which names it
    return isinstance(config, dict) and "class_name" in config and "config" in config


def _keras_hub_preset_names() -> set[str]:
    from keras_hub.models import BertBackbone, DistilBertBackbone

    return set(BertBackbone.presets) | set(DistilBertBackbone.presets)
