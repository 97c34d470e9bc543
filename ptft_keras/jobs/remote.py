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

import shutil
import tempfile
from pathlib import Path

from ptft_keras.storage import check_scheme, copy_tree_down, is_remote, write_file

__all__ = ["Workdir", "is_remote"]


class Workdir:
    """The local directory a job writes; for a remote `target`, a temporary mirror of it (see the module).

    `local` is where the job reads and writes. `pull()` copies the remote directory in (before resuming);
    `push()` makes the remote directory equal to the local one, files first and `last` (e.g. a backup
    pointer) at the end, removing remote files the local copy no longer has (a file unchanged since this
    `Workdir` last copied it is not copied again); `close()` removes the mirror.

    `shared` names relative path prefixes that other processes write into the same remote directory (the
    input positions of a multi-worker job's other workers): `push()` never removes remote files under them,
    and `push(only=prefix)` copies just the local files under `prefix` and removes nothing (what a
    non-chief worker publishes).
    """

    def __init__(self, target, *, what: str = "output", shared: tuple[str, ...] = ()):
        self.target = str(target)
        self.shared = tuple(shared)
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

        if tf.io.gfile.isdir(self.target):
            copy_tree_down(self.target, self.local)

    def push(self, last: tuple[str, ...] = (), *, only: str | None = None) -> None:
        if not self.remote:
            return
        import tensorflow as tf

        local = sorted(p.relative_to(self.local).as_posix() for p in self.local.rglob("*") if p.is_file())
        if only is not None:
            local = [p for p in local if p.startswith(only)]
        ordered = [p for p in local if p not in last] + [p for p in local if p in last]
        for relative in ordered:
            stat = (self.local / relative).stat()
            if self._pushed.get(relative) == (stat.st_size, stat.st_mtime_ns):
                continue  # unchanged since it was copied: an earlier backup generation, a finished log file
            remote = f"{self.target.rstrip('/')}/{relative}"
            tf.io.gfile.makedirs(remote.rsplit("/", 1)[0])
            write_file(self.local / relative, remote)
            self._pushed[relative] = (stat.st_size, stat.st_mtime_ns)
        if only is None and tf.io.gfile.isdir(self.target):
            keep = set(local)
            for directory, _, files in list(tf.io.gfile.walk(self.target)):
                relative_dir = directory[len(self.target):].strip("/")
                shared = any(f"{relative_dir}/".startswith(prefix) or prefix.startswith(f"{relative_dir}/")
                             for prefix in self.shared)  # in a shared prefix, or a directory above one
                if relative_dir and not shared and not (self.local / relative_dir).is_dir():
                    if tf.io.gfile.exists(directory):
                        tf.io.gfile.rmtree(directory)
                    continue
                for name in files:
                    relative = f"{relative_dir}/{name}" if relative_dir else name
                    if relative not in keep and not relative.startswith(self.shared):
                        try:
                            tf.io.gfile.remove(f"{directory.rstrip('/')}/{name}")
                        except tf.errors.NotFoundError:
                            pass  # ram:// lists `dir.keras` under `dir/` as `.keras`: not a file there

    def close(self) -> None:
        if self.remote:
            shutil.rmtree(self.local, ignore_errors=True)
