"""The TF Serving directory layout: `<base>/<version>/` with integer versions, written atomically.

TF Serving watches `<base>` and serves the highest integer version. A new export gets version
max + 1 and never overwrites one. The export is written into a hidden temporary directory next to the
target and renamed into place only when complete, so a serving process never sees half a version and
an export that fails leaves nothing behind.

The version directory gets the mode a plain `mkdir` gives (0o777 less the process umask, usually
0o755), so a TF Serving process running as another user can read it. A temporary directory is named
after its owner (``.tmp-export-<pid>@<host>-<random>``): an export that was killed leaves its own
behind, and the next export under the same base removes those whose process is gone (or, made on
another host or by an older version, that are over `STALE_AFTER_HOURS` old); a running export's
is never touched. `scratch_dir` does the same for scratch files outside the export base.

Example:
    >>> import tempfile, pathlib
    >>> from ptft_keras.export.layout import new_version_dir
    >>> base = pathlib.Path(tempfile.mkdtemp()) / "reviews"
    >>> with new_version_dir(base) as staging:
    ...     _ = (staging.path / "saved_model.pb").write_bytes(b"...")
    >>> staging.final.name, sorted(p.name for p in base.iterdir())
    ('1', ['1'])
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ptft_keras import storage
from ptft_keras.errors import CheckpointError

_STAGING_PREFIX = ".tmp-export-"
SCRATCH_PREFIX = "ptft-export-assets-"
# A temporary directory that cannot be traced to a live process on this host is stale after this long.
STALE_AFTER_HOURS = 24


def versions(base) -> list[int]:
    """The integer version directories under `base`, a local path or ``gs://...``, sorted (empty when
    `base` does not exist)."""
    if storage.is_remote(str(base)):
        names = [name.rstrip("/") for name in storage.listdir(base)] if storage.isdir(base) else []
    else:
        names = [p.name for p in Path(base).iterdir() if p.is_dir()] if Path(base).is_dir() else []
    return sorted(int(name) for name in names if name.isdigit())


def next_version(base) -> int:
    """The version a new export under `base` gets: 1 + the highest existing version (1 for a new base)."""
    return max(versions(base), default=0) + 1


@dataclass
class Staging:
    """Where to write (`path`) and, once the `with` block has succeeded, where it landed (`final`: a Path, or
    the ``gs://...`` string of a remote version)."""

    path: Path
    final: Path | str | None = None


def _publish(staging: Path, base: Path) -> Path:
    """Rename `staging` to the next free version; retry if a concurrent export took that number."""
    for _ in range(100):
        target = base / str(next_version(base))
        try:
            os.rename(staging, target)  # atomic; fails if the target exists and is not empty
            return target
        except OSError:
            if not target.exists():
                raise
    raise CheckpointError("could not find a free version number after 100 tries", path=base)


def _owner_tag() -> str:
    return f"{os.getpid()}@{socket.gethostname()}-"


def make_owned_dir(parent, prefix: str) -> Path:
    """Create and return ``<parent>/<prefix><pid>@<host>-<random>``, a new directory with the mode a
    plain `mkdir` gives (0o777 less the umask; `tempfile.mkdtemp` would make it 0o700).

    Example:
        >>> import tempfile, stat
        >>> folder = make_owned_dir(tempfile.mkdtemp(), "scratch-")
        >>> folder.name.startswith(f"scratch-{os.getpid()}@"), stat.S_IMODE(folder.stat().st_mode) != 0o700
        (True, True)
    """
    for _ in range(100):
        path = Path(parent) / f"{prefix}{_owner_tag()}{secrets.token_hex(4)}"
        try:
            os.mkdir(path)  # mode 0o777, which the kernel masks with the umask
            return path
        except FileExistsError:
            continue
    raise CheckpointError("could not create a uniquely named temporary directory after 100 tries", path=parent)


def _process_is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # e.g. PermissionError: it exists, as another user
        return False
    return False


def is_stale(path, prefix: str, *, now: float | None = None) -> bool:
    """Whether the temporary directory `path` (named by `make_owned_dir` with `prefix`) is left over:
    its process on this host has ended, or it cannot be traced to one on this host and is older than
    `STALE_AFTER_HOURS`.

    Example:
        >>> import tempfile
        >>> is_stale(make_owned_dir(tempfile.mkdtemp(), "x-"), "x-")   # ours, and we are running
        False
    """
    path = Path(path)
    owner = path.name[len(prefix):].rpartition("-")[0]
    pid, _, host = owner.partition("@")
    if pid.isdigit() and host == socket.gethostname():
        return _process_is_gone(int(pid))
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except OSError:
        return False
    return age > STALE_AFTER_HOURS * 3600


def remove_stale(parent, prefix: str) -> list[Path]:
    """Delete the stale (`is_stale`) directories named `<prefix>...` in `parent`; return them.
    Best effort: what cannot be read or deleted (another user's) is left alone.

    Example:
        >>> import tempfile
        >>> remove_stale(tempfile.mkdtemp(), ".tmp-export-")
        []
    """
    try:
        candidates = [p for p in Path(parent).iterdir() if p.name.startswith(prefix) and p.is_dir()]
    except OSError:
        return []
    removed = []
    for path in sorted(candidates):
        if is_stale(path, prefix):
            shutil.rmtree(path, ignore_errors=True)
            if not path.exists():
                removed.append(path)
    return removed


@contextlib.contextmanager
def scratch_dir(prefix: str = SCRATCH_PREFIX, parent=None):
    """A temporary directory (in `parent`, default the system temp dir) deleted on exit, named after
    this process so that a killed run's is removed by the next run (`remove_stale`).

    Example:
        >>> with scratch_dir() as scratch:
        ...     _ = (scratch / "vocab.txt").write_text("[PAD]")
        >>> scratch.exists()
        False
    """
    parent = Path(tempfile.gettempdir() if parent is None else parent)
    remove_stale(parent, prefix)
    path = make_owned_dir(parent, prefix)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _publish_remote(local: Path, base: str) -> str:
    """Upload the finished local version `local` to `<base>/<next version>` (``gs://...``): variables and
    assets first, ``saved_model.pb`` last. An object store has no directory rename, so this is the
    closest to atomic: TF Serving loads a version once ``saved_model.pb`` is there, and it is written
    only when everything it refers to is."""
    base = base.rstrip("/")
    target = f"{base}/{max(versions(base), default=0) + 1}"
    files = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
    files.sort(key=lambda name: name == "saved_model.pb")
    for name in files:
        remote = f"{target}/{name}"
        storage.makedirs(remote.rsplit("/", 1)[0])
        storage.write_file(local / name, remote)
    return target


@contextlib.contextmanager
def new_version_dir(base):
    """Yield a `Staging` to write a new version into; on success it becomes `<base>/<next version>`.

    If the block raises, the staging directory is deleted and no version directory appears; staging
    directories that killed exports left in `base` are deleted first (`remove_stale`). On an object store
    (``gs://``) the version is written locally, then uploaded with ``saved_model.pb`` last; `final` is then
    the remote path (a string).
    """
    if storage.is_remote(base):
        storage.check_scheme(base, "export target")
        with scratch_dir(_STAGING_PREFIX) as local:
            staging = Staging(local / "version")
            staging.path.mkdir()
            yield staging
            staging.final = _publish_remote(staging.path, str(base))
        return
    base = Path(base)
    if base.exists() and not base.is_dir():
        raise CheckpointError("the export target exists and is not a directory; pass a directory path", path=base)
    if base.name.isdigit() and base.parent.is_dir() and versions(base.parent):
        raise CheckpointError(
            f"the export target looks like a version directory; pass its parent ({base.parent}) and the "
            "version is chosen automatically",
            path=base,
        )
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"cannot create the export directory: {exc.strerror or exc}", path=base) from None
    remove_stale(base, _STAGING_PREFIX)
    staging = Staging(make_owned_dir(base, _STAGING_PREFIX))
    try:
        yield staging
        staging.final = _publish(staging.path, base)
    finally:
        if staging.final is None:
            shutil.rmtree(staging.path, ignore_errors=True)
