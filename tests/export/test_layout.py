"""TF Serving layout: integer versions, max + 1, atomic publication, nothing left behind on failure."""
import pytest

from ptft_keras.errors import CheckpointError
from ptft_keras.export import layout
from ptft_keras.export.layout import new_version_dir, next_version, versions


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
