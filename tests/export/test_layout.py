"""TF Serving layout: integer versions, max + 1, atomic publication, readable by other users, nothing left
behind on failure, and what killed exports left behind cleaned up by the next one."""
import doctest
import os
import socket
import stat
import subprocess
import sys
import time

import pytest

from ptft_keras.errors import CheckpointError
from ptft_keras.export import layout
from ptft_keras.export.layout import new_version_dir, next_version, scratch_dir, versions


def _export(base, payload=b"model"):
    with new_version_dir(base) as staging:
        (staging.path / "saved_model.pb").write_bytes(payload)
    return staging.final


def test_versions_count_up_from_one_and_ignore_non_integer_entries(tmp_path):
    base = tmp_path / "reviews"
    assert versions(base) == [] and next_version(base) == 1
    assert _export(base).name == "1"
    (base / "notes").mkdir()
    (base / "7.txt").write_text("not a version")
    assert _export(base).name == "2"
    assert versions(base) == [1, 2]


def test_new_version_is_max_plus_one_and_never_overwrites(tmp_path):
    base = tmp_path / "m"
    (base / "3").mkdir(parents=True)
    (base / "3" / "saved_model.pb").write_bytes(b"old")
    (base / "1").mkdir()
    final = _export(base, b"new")
    assert final == base / "4"
    assert (base / "3" / "saved_model.pb").read_bytes() == b"old"
    assert (final / "saved_model.pb").read_bytes() == b"new"


def test_failure_inside_the_block_leaves_no_version_and_no_staging_dir(tmp_path):
    base = tmp_path / "m"
    _export(base)
    with pytest.raises(RuntimeError, match="disk full"):
        with new_version_dir(base) as staging:
            (staging.path / "saved_model.pb").write_bytes(b"half")
            raise RuntimeError("disk full")
    assert sorted(p.name for p in base.iterdir()) == ["1"]
    assert staging.final is None and not staging.path.exists()


def test_staging_dir_is_hidden_next_to_the_target_until_published(tmp_path):
    base = tmp_path / "m"
    with new_version_dir(base) as staging:
        assert staging.path.parent == base
        assert staging.path.name.startswith(".") and versions(base) == []
    assert versions(base) == [1]


def test_a_version_taken_concurrently_is_skipped(tmp_path, monkeypatch):
    base = tmp_path / "m"
    real_next = layout.next_version
    raced = []

    def racing_next_version(b):
        version = real_next(b)
        if not raced:  # another exporter publishes this number before our rename
            raced.append(version)
            (b / str(version)).mkdir()
            (b / str(version) / "saved_model.pb").write_bytes(b"theirs")
        return version

    monkeypatch.setattr(layout, "next_version", racing_next_version)
    final = _export(base, b"ours")
    assert raced == [1] and final.name == "2"
    assert (base / "1" / "saved_model.pb").read_bytes() == b"theirs"


def test_bad_targets_are_reported(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(CheckpointError, match="not a directory"):
        _export(a_file)
    _export(tmp_path / "m")
    with pytest.raises(CheckpointError, match="looks like a version directory"):
        _export(tmp_path / "m" / "1")


# ----------------------------------------------------------------------------------- modes and leftovers
@pytest.fixture
def umask():
    """Set the process umask for one test; restored afterwards."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o755), (0o027, 0o750), (0o002, 0o775)])
def test_version_dir_mode_follows_the_umask_so_another_user_can_serve_it(tmp_path, umask, mask, mode):
    umask(mask)
    final = _export(tmp_path / "m")
    assert stat.S_IMODE(final.stat().st_mode) == mode
    with scratch_dir(parent=tmp_path) as scratch:
        assert stat.S_IMODE(scratch.stat().st_mode) == mode


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def leftover(parent, name, *, hours_old=0.0):
    path = parent / name
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"half")
    stamp = time.time() - hours_old * 3600
    os.utime(path, (stamp, stamp))
    return path


def test_a_new_export_removes_staging_dirs_of_killed_exports_only(tmp_path):
    base, host = tmp_path / "m", socket.gethostname()
    killed = leftover(base, f".tmp-export-{dead_pid()}@{host}-0a1b2c3d")
    running = leftover(base, f".tmp-export-{os.getpid()}@{host}-0a1b2c3d", hours_old=100)
    old_unowned = leftover(base, ".tmp-export-k2j3h4_x", hours_old=layout.STALE_AFTER_HOURS + 1)  # older versions
    new_unowned = leftover(base, ".tmp-export-q9w8e7r6", hours_old=1)
    other_host_old = leftover(base, f".tmp-export-{os.getpid()}@not-{host}-0a1b2c3d", hours_old=30)
    other_host_new = leftover(base, f".tmp-export-1@not-{host}-0a1b2c3d", hours_old=1)
    final = _export(base)
    assert final.name == "1"
    assert not killed.exists() and not old_unowned.exists() and not other_host_old.exists()
    assert running.exists() and new_unowned.exists() and other_host_new.exists()


def test_the_staging_dir_names_its_process(tmp_path):
    with new_version_dir(tmp_path / "m") as staging:
        assert staging.path.name.startswith(f".tmp-export-{os.getpid()}@{socket.gethostname()}-")
        assert not layout.is_stale(staging.path, ".tmp-export-")


def test_scratch_dir_is_removed_on_exit_and_cleans_up_after_killed_runs(tmp_path):
    killed = leftover(tmp_path, f"{layout.SCRATCH_PREFIX}{dead_pid()}@{socket.gethostname()}-0a1b2c3d")
    running = leftover(tmp_path, f"{layout.SCRATCH_PREFIX}{os.getpid()}@{socket.gethostname()}-00000000")
    with scratch_dir(parent=tmp_path) as scratch:
        (scratch / "vocab.txt").write_text("[PAD]\n")
        assert scratch.name.startswith(f"{layout.SCRATCH_PREFIX}{os.getpid()}@")
        assert not killed.exists() and running.exists()
    assert not scratch.exists()
    with pytest.raises(RuntimeError), scratch_dir(parent=tmp_path) as scratch:
        raise RuntimeError("export failed")
    assert not scratch.exists()


def test_docstring_examples():
    result = doctest.testmod(layout, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
