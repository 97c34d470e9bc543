"""Read and write Hugging Face checkpoint directories: `config.json` plus one weights file.

Reading returns every tensor under its PyTorch name and layout (`[out, in]` linear weights), whatever
the file: `model.safetensors` (or a sharded `model.safetensors.index.json`), a TF `tf_model.h5`
(names and kernels converted the way transformers' TF->PT loader does), or a pickled
`pytorch_model.bin`, read only when the caller passes `allow_pickle=True`. Writing is atomic:
everything is written into a temporary sibling directory first, so a failure leaves nothing
half-written.

Example:
    >>> import tempfile, numpy as np
    >>> from ptft_keras.models.hf_checkpoint import read_hf_checkpoint, write_hf_checkpoint
    >>> d = write_hf_checkpoint(tempfile.mkdtemp() + "/ckpt", {"model_type": "bert"},
    ...                         {"pooler.dense.bias": np.zeros(4, "float32")})
    >>> config, tensors = read_hf_checkpoint(d)
    >>> config["model_type"], tensors["pooler.dense.bias"].shape
    ('bert', (4,))
"""
from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import tempfile
from pathlib import Path

import ml_dtypes  # noqa: F401  (registers bfloat16 with numpy, so bf16 safetensors load)
import numpy as np
import safetensors.numpy

from ptft_keras.errors import CheckpointError

CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX_FILE = "model.safetensors.index.json"
TF_H5_FILE = "tf_model.h5"
PICKLE_FILE = "pytorch_model.bin"
SENTENCE_MODULES_FILE = "modules.json"  # sentence-transformers' list of modules (Transformer, Pooling, ...)
# Preference order when a directory holds several weight files (as transformers does).
WEIGHT_FILES = (SAFETENSORS_FILE, SAFETENSORS_INDEX_FILE, TF_H5_FILE, PICKLE_FILE)


def read_hf_config(path) -> dict:
    """The parsed `config.json` of the checkpoint directory `path`.

    Example:
        >>> from ptft_keras.models.default_checkpoint import default_checkpoint_path
        >>> read_hf_config(default_checkpoint_path())["model_type"]
        'bert'
    """
    config_path = _checkpoint_dir(path) / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(
            f"missing {CONFIG_FILE}: a Hugging Face checkpoint directory needs one "
            "(transformers' and ptft_keras' save_pretrained write it)",
            path=config_path,
        )
    config = _read_json(config_path)
    if not isinstance(config, dict):
        raise CheckpointError("expected a JSON object of model settings", path=config_path)
    return config


def read_hf_checkpoint(path, allow_pickle: bool = False) -> tuple[dict, dict[str, np.ndarray]]:
    """`(config, tensors)` of the HF checkpoint directory `path`: all tensors, PyTorch names and layout.

    Head tensors (`cls.predictions.*`, `vocab_projector.*`, ...) are included. A pickled
    `pytorch_model.bin` is refused unless `allow_pickle=True`, because unpickling can run
    arbitrary code.

    Example:
        >>> from ptft_keras.models.default_checkpoint import default_checkpoint_path
        >>> config, tensors = read_hf_checkpoint(default_checkpoint_path())
        >>> tensors["embeddings.word_embeddings.weight"].shape
        (30522, 384)
    """
    config = read_hf_config(path)
    return config, read_hf_tensors(path, allow_pickle=allow_pickle)


def read_hf_tensors(path, allow_pickle: bool = False) -> dict[str, np.ndarray]:
    """All tensors of the weights file in checkpoint directory `path` (see `read_hf_checkpoint`)."""
    return read_weights_file(find_weights_file(path, allow_pickle=allow_pickle))


def read_weights_file(weights_path) -> dict[str, np.ndarray]:
    """All tensors of one weights file found by `find_weights_file`, PyTorch names and layout."""
    weights_path = Path(weights_path)
    readers = {
        SAFETENSORS_FILE: _read_safetensors,
        SAFETENSORS_INDEX_FILE: _read_safetensors_index,
        TF_H5_FILE: _read_tf_h5,
        PICKLE_FILE: _read_pickle,
    }
    try:
        return readers[weights_path.name](weights_path)
    except CheckpointError:
        raise
    except Exception as error:  # each library reports corruption with its own exception type
        raise CheckpointError(
            f"cannot read weights ({type(error).__name__}: {error}); the file is corrupt or "
            "truncated: download or save the checkpoint again",
            path=weights_path,
        ) from error


def find_weights_file(path, allow_pickle: bool = False) -> Path:
    """The weights file `read_hf_tensors` would read in directory `path`; CheckpointError if none is usable.

    Example:
        >>> from ptft_keras.models.default_checkpoint import default_checkpoint_path
        >>> find_weights_file(default_checkpoint_path()).name
        'model.safetensors'
    """
    directory = _checkpoint_dir(path)
    for name in WEIGHT_FILES:
        candidate = directory / name
        if not candidate.is_file():
            continue
        if name == PICKLE_FILE and not allow_pickle:
            raise pickle_refusal(candidate)
        return candidate
    raise CheckpointError(
        f"no weights file: expected one of {', '.join(WEIGHT_FILES)}", path=directory
    )


def pickle_refusal(path) -> CheckpointError:
    """The error for a pickled `pytorch_model.bin` read without `allow_pickle=True`: why, and what to do."""
    return CheckpointError(
        "refusing to read a pickled PyTorch checkpoint: unpickling a file can execute arbitrary "
        "code. If you trust its source, pass --allow-pickle (CLI) or allow_pickle=True (Python); better, "
        "convert it once to model.safetensors (transformers: AutoModel.from_pretrained(dir).save_pretrained(dir))",
        path=path,
    )


def read_sentence_pooling(path) -> str | None:
    """``"mean"`` or ``"cls"``: the pooling a sentence-transformers checkpoint directory was trained with
    (its `modules.json` and Pooling module config), else None. A hint: unreadable files give None.

    Example:
        >>> from ptft_keras.models.default_checkpoint import default_checkpoint_path
        >>> read_sentence_pooling(default_checkpoint_path())  # all-MiniLM-L6-v2 was trained on mean pooling
        'mean'
    """
    directory = Path(path)
    try:
        modules = json.loads((directory / SENTENCE_MODULES_FILE).read_text(encoding="utf-8"))
        pooling = next(m for m in modules if str(m.get("type", "")).endswith(".Pooling"))
        config = json.loads((directory / pooling.get("path", "") / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError, AttributeError, StopIteration):
        return None
    modes = [mode for mode, key in (("mean", "pooling_mode_mean_tokens"), ("cls", "pooling_mode_cls_token"),
                                    ("max", "pooling_mode_max_tokens"),
                                    ("mean_sqrt_len", "pooling_mode_mean_sqrt_len_tokens")) if config.get(key)]
    return modes[0] if len(modes) == 1 and modes[0] in ("mean", "cls") else None


def write_hf_checkpoint(directory, config: dict, tensors: dict[str, np.ndarray], write_extra=None) -> Path:
    """Write `config.json` and `model.safetensors` (plus whatever `write_extra(tmp_dir)` writes) atomically.

    Files are written into a temporary sibling directory, then moved into `directory` (renamed
    when it does not exist yet, else file by file, replacing same-named files and keeping others).
    Returns `directory` as a Path.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise CheckpointError("cannot save a checkpoint here: it is a file, not a directory", path=directory)
    staging = None
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".partial", dir=directory.parent))
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        safetensors.numpy.save_file(
            {name: np.ascontiguousarray(value) for name, value in tensors.items()},
            str(staging / SAFETENSORS_FILE),
            metadata={"format": "pt"},  # transformers refuses safetensors files without it
        )
        if write_extra is not None:
            write_extra(staging)
        _move_into_place(staging, directory)
    except OSError as error:
        raise CheckpointError(f"cannot save the checkpoint: {error}", path=directory) from error
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return directory


def _move_into_place(staging: Path, directory: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes it private; give it a normal directory's mode
    if not directory.exists():
        os.replace(staging, directory)
        return
    for entry in staging.iterdir():
        target = directory / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(entry, target)


def _checkpoint_dir(path) -> Path:
    directory = Path(path)
    if not directory.exists():
        raise CheckpointError("no such checkpoint directory", path=directory)
    if not directory.is_dir():
        raise CheckpointError(
            "expected a checkpoint directory (holding config.json and the weights), got a file",
            path=directory,
        )
    return directory


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise CheckpointError(
            f"not valid JSON: {error.msg} (column {error.colno})", path=path, line=error.lineno
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise CheckpointError(f"cannot read: {error}", path=path) from None


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    return safetensors.numpy.load_file(str(path))


def _read_safetensors_index(path: Path) -> dict[str, np.ndarray]:
    index = _read_json(path)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict):
        raise CheckpointError(
            "expected a 'weight_map' object naming each tensor's shard", path=path, field="weight_map"
        )
    tensors = {}
    for shard_name in sorted(set(weight_map.values())):
        shard = path.parent / shard_name
        if not shard.is_file():
            raise CheckpointError(f"shard {shard_name!r} listed in {path.name} is missing", path=shard)
        tensors.update(_read_safetensors(shard))
    return tensors


def _read_pickle(path: Path) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError:
        raise CheckpointError(
            "reading pytorch_model.bin needs torch (pip install torch), or convert it to model.safetensors",
            path=path,
        ) from None
    # weights_only keeps torch's restricted unpickler as a second line of defence.
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"torch's weights-only loader refused this pickle ({str(error).splitlines()[0]}); it holds "
            "more than tensors. Convert it to model.safetensors where you trust it",
            path=path,
        ) from None
    return {
        name: (value.float() if value.dtype == torch.bfloat16 else value).numpy()
        for name, value in state_dict.items()
        if isinstance(value, torch.Tensor)
    }


def _read_tf_h5(path: Path) -> dict[str, np.ndarray]:
    import h5py

    tensors = {}
    with h5py.File(path, "r") as h5:
        layer_names = _h5_string_list(h5, "layer_names")
        if layer_names is None:
            raise CheckpointError(
                "not a Keras/transformers TF weights file (no 'layer_names' attribute)", path=path
            )
        for layer_name in layer_names:
            group = h5[layer_name]
            for weight_name in _h5_string_list(group, "weight_names") or []:
                name, transpose = tf_to_pt_name(weight_name)
                value = np.asarray(group[weight_name])
                tensors[name] = np.ascontiguousarray(value.T) if transpose else value
    return tensors


def _h5_string_list(group, name: str) -> list[str] | None:
    """A Keras-2 HDF5 string-list attribute, which is split into `name0`, `name1`, ... when large."""
    if name in group.attrs:
        chunks = [group.attrs[name]]
    elif f"{name}0" in group.attrs:
        chunks = []
        while f"{name}{len(chunks)}" in group.attrs:
            chunks.append(group.attrs[f"{name}{len(chunks)}"])
    else:
        return None
    return [item.decode("utf8") if isinstance(item, bytes) else str(item) for chunk in chunks for item in chunk]


def tf_to_pt_name(tf_name: str) -> tuple[str, bool]:
    """`(pytorch_name, transpose)` for a transformers TF weight name (as transformers' TF->PT loader maps it).

    Example:
        >>> tf_to_pt_name("tf_bert_model/bert/encoder/layer_._0/attention/self/query/kernel:0")
        ('bert.encoder.layer.0.attention.self.query.weight', True)
        >>> tf_to_pt_name("tf_bert_for_masked_lm/mlm___cls/predictions/transform/LayerNorm/gamma:0")
        ('cls.predictions.transform.LayerNorm.weight', False)
    """
    name = tf_name.replace(":0", "")
    name = re.sub(r"/[^/]*___([^/]*)/", r"/\1/", name)  # "mlm___cls" scopes -> "cls"
    name = name.replace("_._", "/")  # "layer_._0" -> "layer/0"
    parts = re.sub(r"//+", "/", name).split("/")[1:]  # drop the model's own scope ("tf_bert_model")
    leaf = parts[-1]
    parts[-1] = {"kernel": "weight", "gamma": "weight", "embeddings": "weight", "beta": "bias"}.get(leaf, leaf)
    return ".".join(parts), leaf == "kernel"
