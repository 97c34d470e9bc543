"""The TF Serving directory layout: `<base>/<version>/` with integer versions, written atomically.

TF Serving watches `<base>` and serves the highest integer version. A new export gets version
max + 1 and never overwrites one. The export is written into a hidden temporary directory next to the
target and renamed into place only when complete, so a serving process never sees half a version and
an export that fails leaves nothing behind.

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
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ptft_keras.errors import CheckpointError

_STAGING_PREFIX = ".tmp-export-"


def versions(base) -> list[int]:
    """The integer version directories under `base`, sorted (empty when `base` does not exist)."""
    base = Path(base)
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit())


def next_version(base) -> int:
    """The version a new export under `base` gets: 1 + the highest existing version (1 for a new base)."""
    return max(versions(base), default=0) + 1


@dataclass
class Staging:
    """Where to write (`path`) and, once the `with` block has succeeded, where it landed (`final`)."""

    path: Path
    final: Path | None = None


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


@contextlib.contextmanager
def new_version_dir(base):
    """Yield a `Staging` to write a new version into; on success it becomes `<base>/<next version>`.

    If the block raises, the staging directory is deleted and no version directory appears.
    """
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
    staging = Staging(Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=base)))
    try:
        yield staging
        staging.final = _publish(staging.path, base)
    finally:
        if staging.final is None:
            shutil.rmtree(staging.path, ignore_errors=True)
