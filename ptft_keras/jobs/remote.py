"""Outputs on object stores (``gs://``, ``s3://``, TensorFlow's in-memory ``ram://``, ...): a job writes into a
local working copy, which `Workdir` mirrors to the remote directory through `tf.io.gfile` after every
backup and when the job ends, and pulls back before a rerun resumes.

Why a local copy: Keras' `.keras` archives, safetensors, matplotlib and h5py write local files, and an
object store has no atomic directory rename; copying finished files one by one (the backup pointer last)
keeps the remote directory resumable at every moment. A scheme TensorFlow cannot open is a clear error
before any work, never a local folder named ``gs:``.

Example:
    >>> is_remote("gs://bucket/runs/sst2"), is_remote("runs/sst2")
    (True, False)
"""
from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from ptft_keras.errors import ConfigError

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


def is_remote(path) -> bool:
    """Whether `path` names a file system by scheme (``gs://...``) rather than a local path."""
    return bool(_SCHEME.match(str(path)))


def check_scheme(path, what: str = "output") -> None:
    """A ConfigError naming the option when TensorFlow has no file system for `path`'s scheme."""
    if not is_remote(path):
        return
    import tensorflow as tf

    scheme = _SCHEME.match(str(path)).group(1)
    try:
        tf.io.gfile.exists(str(path))
    except tf.errors.UnimplementedError:
        hint = " (install tensorflow-io for s3:// and hdfs://; gs:// is built into TensorFlow)" if scheme != "gs" else ""
        raise ConfigError(f"{what}: TensorFlow cannot open {scheme}:// paths here{hint}; pass a local directory or a "
                          "path on a supported file system") from None


def write_file(source: Path, target: str, chunk: int = 64 << 20) -> None:
    """Copy local `source` to `target` (any tf.io.gfile path), replacing it whole. An object store replaces an
    object atomically on write; TensorFlow's ram:// appends to an existing file instead, so there it is
    removed first."""
    import tensorflow as tf

    if target.startswith("ram://") and tf.io.gfile.exists(target):
        tf.io.gfile.remove(target)
    with open(source, "rb") as reader, tf.io.gfile.GFile(target, "wb") as writer:
        while block := reader.read(chunk):
            writer.write(block)


class Workdir:
    """The local directory a job writes; for a remote `target`, a temporary mirror of it (see the module).

    `local` is where the job reads and writes. `pull()` copies the remote directory in (before resuming);
    `push()` makes the remote directory equal to the local one, files first and `last` (e.g. a backup
    pointer) at the end, removing remote files the local copy no longer has (a file unchanged since this
    `Workdir` last copied it is not copied again); `close()` removes the mirror.
    """

    def __init__(self, target, *, what: str = "output"):
        self.target = str(target)
        self.remote = is_remote(target)
        self._pushed: dict[str, tuple[int, int]] = {}  # relative path -> (size, mtime_ns) as last copied
        if self.remote:
            check_scheme(target, what)
            self.local = Path(tempfile.mkdtemp(prefix="ptft-workdir-"))
        else:
            self.local = Path(target)

    def pull(self) -> None:
        if not self.remote:
            return
        import tensorflow as tf

        if not tf.io.gfile.isdir(self.target):
            return
        for directory, _, files in tf.io.gfile.walk(self.target):
            relative = directory[len(self.target):].lstrip("/")
            (self.local / relative).mkdir(parents=True, exist_ok=True)
            for name in files:
                tf.io.gfile.copy(f"{directory.rstrip('/')}/{name}", str(self.local / relative / name), overwrite=True)

    def push(self, last: tuple[str, ...] = ()) -> None:
        if not self.remote:
            return
        import tensorflow as tf

        local = sorted(p.relative_to(self.local).as_posix() for p in self.local.rglob("*") if p.is_file())
        ordered = [p for p in local if p not in last] + [p for p in local if p in last]
        for relative in ordered:
            stat = (self.local / relative).stat()
            if self._pushed.get(relative) == (stat.st_size, stat.st_mtime_ns):
                continue  # unchanged since it was copied: an earlier backup generation, a finished log file
            remote = f"{self.target.rstrip('/')}/{relative}"
            tf.io.gfile.makedirs(remote.rsplit("/", 1)[0])
            write_file(self.local / relative, remote)
            self._pushed[relative] = (stat.st_size, stat.st_mtime_ns)
        if tf.io.gfile.isdir(self.target):
            keep = set(local)
            for directory, _, files in list(tf.io.gfile.walk(self.target)):
                relative_dir = directory[len(self.target):].strip("/")
                if relative_dir and not (self.local / relative_dir).is_dir():
                    if tf.io.gfile.exists(directory):
                        tf.io.gfile.rmtree(directory)
                    continue
                for name in files:
                    relative = f"{relative_dir}/{name}" if relative_dir else name
                    if relative not in keep:
                        tf.io.gfile.remove(f"{directory.rstrip('/')}/{name}")

    def close(self) -> None:
        if self.remote:
            shutil.rmtree(self.local, ignore_errors=True)
