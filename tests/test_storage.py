"""`ptft_keras.storage`: local paths and file systems TensorFlow opens (ram:// here, standing in for gs://)."""
import doctest
import gzip

import pytest
import tensorflow as tf

from ptft_keras import storage
from ptft_keras.errors import ConfigError


def put(path: str, data: bytes) -> str:
    tf.io.gfile.makedirs(path.rsplit("/", 1)[0])
    with tf.io.gfile.GFile(path, "wb") as stream:
        stream.write(data)
    return path


def test_docstring_examples():
    result = doctest.testmod(storage)
    assert result.attempted > 0 and result.failed == 0


def test_remote_files_read_like_local_ones_gzip_seek_and_bounded_readline_included():
    text = b"first line\n" + b"x" * 5000 + b"\nlast\n"
    plain = put("ram://storage-tests/read/a.txt", text)
    packed = put("ram://storage-tests/read/b.txt.gz", gzip.compress(text))
    with storage.open_binary(plain) as stream:
        assert stream.readline() == b"first line\n"
        assert stream.readline(100) == b"x" * 100  # the corpus reader bounds its line reads
        stream.seek(len(text) - 5)
        assert stream.read() == b"last\n" and stream.tell() == len(text)
    with storage.open_binary(packed) as stream:
        assert list(stream)[-1] == b"last\n"
    assert storage.getsize(plain) == len(text) and storage.isfile(plain) and not storage.isdir(plain)
    assert storage.glob("ram://storage-tests/read/*.txt*") == [plain, packed]
    assert storage.isdir("ram://storage-tests/read")


def test_a_scheme_tensorflow_cannot_open_names_the_option():
    with pytest.raises(ConfigError, match="corpus: TensorFlow cannot open nosuch:// paths"):
        storage.check_scheme("nosuch://bucket/x", "corpus")
    with pytest.raises(OSError):
        storage.open_binary("ram://storage-tests/missing.txt")


def test_local_copy_fetches_a_remote_directory_once_per_process(tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(storage, "_FETCHED", {})
    put("ram://storage-tests/model/config.json", b"{}")
    put("ram://storage-tests/model/tokenizer/vocab.txt", b"[PAD]\n")
    local = storage.local_copy("ram://storage-tests/model/")
    assert local.name == "model" and (local / "tokenizer" / "vocab.txt").read_bytes() == b"[PAD]\n"
    assert sorted(p.name for p in local.parent.iterdir()) == ["model"]  # no half-fetched staging left behind
    put("ram://storage-tests/model/late.txt", b"")
    assert storage.local_copy("ram://storage-tests/model") == local and not (local / "late.txt").exists()
    assert storage.local_copy(tmp_path) == tmp_path  # a local path is used in place
    assert storage.local_copy("hf://org/model") == "hf://org/model"  # hub ids are the loaders' business
    with pytest.raises(ConfigError, match="model: ram://storage-tests/none does not exist"):
        storage.local_copy("ram://storage-tests/none")
