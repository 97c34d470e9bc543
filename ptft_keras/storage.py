"""Paths on any file system TensorFlow opens: local files, ``gs://`` (built into TensorFlow), TensorFlow's
in-memory ``ram://`` (what the tests use in place of a bucket), and ``s3://`` / ``hdfs://`` with tensorflow-io.

Local paths take the plain `open`/`os` route (no TensorFlow import); a path with a scheme goes through
`tf.io.gfile`. A scheme TensorFlow has no file system for is a `ConfigError` naming the option, never a
local folder named ``gs:``.

Reading: `open_binary` (``.gz`` decompressed, seekable, buffered), `glob`, `isfile`, `isdir`, `getsize`.
Writing: `write_file` (one local file to any path), `local_copy` (a remote model directory or file fetched
into a local cache, for libraries that only read local files: safetensors, Keras archives, tf-text vocab).

Example:
    >>> is_remote("gs://bucket/runs/sst2"), is_remote("runs/sst2")
    (True, False)
    >>> import tensorflow as tf
    >>> with tf.io.gfile.GFile("ram://doc/corpus.txt", "wb") as f:
    ...     _ = f.write(b"one\\ntwo\\n")
    >>> with open_binary("ram://doc/corpus.txt") as stream:
    ...     stream.readline(), getsize("ram://doc/corpus.txt")
    (b'one\\n', 8)
"""
from __future__ import annotations

import glob as _glob
import gzip
import hashlib
import io
import os
import re
import shutil
import tempfile
from pathlib import Path

from ptft_keras.errors import ConfigError

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
#: where `local_copy` keeps remote checkpoints and model directories (one folder per remote path)
CACHE_DIR = Path(os.environ.get("PTFT_CACHE", Path.home() / ".cache" / "ptft_keras")) / "remote"
#: model-hub ids written as URLs: `local_copy` leaves them to the checkpoint loaders
HUB_SCHEMES = ("hf://", "kaggle://", "modelscope://")
_FETCHED: dict[str, Path] = {}  # remote path -> its local copy, fetched once per process


def is_remote(path) -> bool:
    """Whether `path` names a file system by scheme (``gs://...``) rather than a local path."""
    return bool(_SCHEME.match(os.fspath(path) if isinstance(path, os.PathLike) else str(path)))


def check_scheme(path, what: str = "output") -> None:
    """A ConfigError naming the option (`what`) when TensorFlow has no file system for `path`'s scheme."""
    if not is_remote(path):
        return
    import tensorflow as tf

    scheme = _SCHEME.match(str(path)).group(1)
    try:
        tf.io.gfile.exists(str(path))
    except tf.errors.UnimplementedError:
        hint = " (install tensorflow-io for s3:// and hdfs://; gs:// is built into TensorFlow)" if scheme != "gs" else ""
        raise ConfigError(f"{what}: TensorFlow cannot open {scheme}:// paths here{hint}; pass a local path or a "
                          "path on a supported file system") from None


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def isfile(path) -> bool:
    path = str(path)
    if not is_remote(path):
        return os.path.isfile(path)
    check_scheme(path, path)
    gfile = _gfile()
    return gfile.exists(path) and not gfile.isdir(path)


def isdir(path) -> bool:
    path = str(path)
    if not is_remote(path):
        return os.path.isdir(path)
    check_scheme(path, path)
    return _gfile().isdir(path)


def exists(path) -> bool:
    return isfile(path) or isdir(path)


def getsize(path) -> int:
    return _gfile().stat(str(path)).length if is_remote(path) else os.path.getsize(path)


def glob(pattern: str) -> list[str]:
    """The files matching `pattern`, sorted (directories left out)."""
    if not is_remote(pattern):
        return sorted(path for path in _glob.glob(pattern) if os.path.isfile(path))
    check_scheme(pattern, pattern)
    return sorted(path for path in _gfile().glob(pattern) if not _gfile().isdir(path))


def makedirs(path) -> None:
    _gfile().makedirs(str(path)) if is_remote(path) else os.makedirs(path, exist_ok=True)


def listdir(path) -> list[str]:
    return sorted(_gfile().listdir(str(path)) if is_remote(path) else os.listdir(path))


class _GFileRaw(io.RawIOBase):
    """A `tf.io.gfile.GFile` as a raw binary stream, so `io.BufferedReader` (readline with a size limit,
    iteration, seek) and `gzip` work on it as on a local file."""

    def __init__(self, path: str):
        self._file = _gfile().GFile(path, "rb")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        import tensorflow as tf

        try:
            data = self._file.read(len(buffer))
        except tf.errors.OpError as error:  # callers handle OSError, as for local files
            raise OSError(error.message) from None
        buffer[:len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._file.seek(offset, whence)
        return self._file.tell()

    def tell(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


def open_binary(path, *, decompress: bool = True):
    """`path` opened for reading bytes (``.gz`` decompressed unless `decompress` is false); OSError when it
    cannot be opened, as `open` raises."""
    path = str(path)
    if is_remote(path):
        check_scheme(path, path)
        import tensorflow as tf

        if not tf.io.gfile.exists(path):  # GFile opens lazily: fail here, as `open` does
            raise FileNotFoundError(f"No such file: {path}")
        try:
            stream = io.BufferedReader(_GFileRaw(path), buffer_size=1 << 20)
        except tf.errors.OpError as error:
            raise OSError(error.message) from None
    else:
        stream = open(path, "rb")
    return gzip.GzipFile(fileobj=stream, mode="rb") if decompress and path.endswith(".gz") else stream


def write_file(source: Path, target: str, chunk: int = 64 << 20) -> None:
    """Copy local `source` to `target` (any tf.io.gfile path), replacing it whole. An object store replaces an
    object atomically on write; TensorFlow's ram:// appends to an existing file instead, so there it is
    removed first."""
    gfile = _gfile()
    if target.startswith("ram://") and gfile.exists(target):
        gfile.remove(target)
    with open(source, "rb") as reader, gfile.GFile(target, "wb") as writer:
        while block := reader.read(chunk):
            writer.write(block)


def copy_tree_down(source: str, target: Path) -> None:
    """Copy the remote directory `source` (recursively) into the local directory `target`."""
    import tensorflow as tf

    gfile = tf.io.gfile
    for directory, _, files in gfile.walk(source):
        relative = directory[len(source):].strip("/")
        (target / relative).mkdir(parents=True, exist_ok=True)
        for name in files:
            try:
                gfile.copy(f"{directory.rstrip('/')}/{name}", str(target / relative / name), overwrite=True)
            except tf.errors.NotFoundError:
                pass  # ram:// lists `dir.ext/...` under `dir/` as `.ext/...`: nothing to copy there


def local_copy(path, what: str = "model") -> Path:
    """A local path holding what remote `path` holds (a directory or a file), fetched into `CACHE_DIR`;
    a local `path` (and a model-hub id, `HUB_SCHEMES`) is returned as is. Each process fetches a path once; the copy is replaced whole
    (fetched beside it, then renamed), so a killed fetch never leaves a half copy in its place."""
    if not is_remote(path):
        return Path(path)
    if str(path).startswith(HUB_SCHEMES):
        return path  # a model hub's id, resolved by its loader, not a file system
    path = str(path).rstrip("/")
    if path in _FETCHED and _FETCHED[path].exists():
        return _FETCHED[path]
    check_scheme(path, what)
    if not exists(path):
        raise ConfigError(f"{what}: {path} does not exist")
    name = path.rsplit("/", 1)[-1]
    home = CACHE_DIR / hashlib.sha256(path.encode()).hexdigest()[:16]
    home.mkdir(parents=True, exist_ok=True)
    final = home / name
    staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=home))
    try:
        if isdir(path):
            copy_tree_down(path, staging / name)
        else:
            _gfile().copy(path, str(staging / name), overwrite=True)
        if final.exists():
            shutil.rmtree(final) if final.is_dir() else final.unlink()
        os.replace(staging / name, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _FETCHED[path] = final
    return final
