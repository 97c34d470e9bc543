"""The streamed pretraining corpus: every line read once, documents of bounded size, exact restarts, sharding."""
from __future__ import annotations

import doctest
import gzip
import itertools
import random
from pathlib import Path

import pytest
import tensorflow as tf

from ptft_keras.data import corpus as corpus_module
from ptft_keras.data.corpus import (
    MAX_LINE_BYTES, CorpusPosition, InputPositions, TextCorpus, Window, position_from, split_lines, window_lines,
)
from ptft_keras.errors import DataError

WORDS = "the cat sat on a mat while ünïcode words, ça va, 東京 and more text flowed by".split()


def test_docstring_examples():
    result = doctest.testmod(corpus_module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def random_lines(count: int, seed: int = 0, blank_every: int | None = 7, long_every: int | None = None) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for i in range(count):
        if blank_every and i % blank_every == blank_every - 1:
            lines.append("")
        elif long_every and i % long_every == long_every - 1:
            lines.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(9000, 30000))))
        else:
            lines.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 15))))
    return lines


def write(path, lines, *, newline="\n", trailing=True):
    data = newline.join(lines) + (newline if trailing else "")
    if str(path).endswith(".gz"):
        path.write_bytes(gzip.compress(data.encode()))
    else:
        path.write_bytes(data.encode())
    return str(path)


def flat(groups) -> list[str]:
    return [line for group in groups for document in group.documents for line in document]


@pytest.mark.parametrize("newline,trailing", [("\n", True), ("\r\n", False)])
@pytest.mark.parametrize("window_bytes", [37, 1000, 1 << 20])
def test_windows_read_every_line_once(tmp_path, window_bytes, newline, trailing):
    lines = random_lines(401, blank_every=5)  # the last line is not blank (without a final newline, it could not be)
    corpus = TextCorpus(write(tmp_path / "c.txt", lines, newline=newline, trailing=trailing),
                        window_bytes=window_bytes)
    read = [text for window in corpus.windows for _, text in window_lines(window)]
    assert read == lines
    assert flat(corpus.groups(shuffle=False)) == [line for line in lines if line]


def test_long_lines_are_cut_at_spaces_into_bounded_pieces_and_windows_agree(tmp_path):
    lines = random_lines(60, blank_every=None, long_every=10)
    path = write(tmp_path / "long.txt", lines)
    whole = [text for window in TextCorpus(path, window_bytes=1 << 30).windows for _, text in window_lines(window)]
    assert all(len(piece.encode()) <= MAX_LINE_BYTES for piece in whole)
    assert " ".join(whole).split() == " ".join(lines).split()  # nothing lost, no word or character broken
    assert len(whole) > len(lines)
    windowed = [text for window in TextCorpus(path, window_bytes=10_000).windows for _, text in window_lines(window)]
    assert windowed == whole  # a line crossing windows belongs, all its pieces, to the window it starts in


def test_documents_end_at_blank_lines_and_every_n_lines(tmp_path):
    path = write(tmp_path / "c.txt", ["a", "b", "", "c", "d", "e", "f", "g"])
    groups = list(TextCorpus(path, document_lines=3).groups(shuffle=False))
    assert [g.documents for g in groups] == [[["a", "b"], ["c", "d", "e"], ["f", "g"]]]
    assert split_lines(["a", "", "", "b", "c"], 1) == [["a"], ["b"], ["c"]]


def test_a_file_without_blank_lines_is_read_in_bounded_groups_and_documents(tmp_path):
    lines = random_lines(20_000, blank_every=None)
    corpus = TextCorpus(write(tmp_path / "flat.txt", lines), document_lines=16, window_bytes=4096)
    groups = list(corpus.groups(group_bytes=16_384, seed=1))
    assert len(groups) > 20
    for group in groups:
        assert sum(len(line) + 1 for document in group.documents for line in document) < 16_384 + MAX_LINE_BYTES
        assert max(len(document) for document in group.documents) <= 16
    assert sorted(flat(groups)) == sorted(lines)  # a permutation of windows: every line once per epoch


@pytest.mark.parametrize("suffix", [".txt", ".gz"])
def test_a_stream_restarts_exactly_at_any_group_position(tmp_path, suffix):
    files = [write(tmp_path / f"part-{i}{suffix}", random_lines(300, seed=i)) for i in range(3)]
    corpus = TextCorpus(files, window_bytes=700, document_lines=5)
    options = dict(seed=3, repeat=True, group_bytes=900)
    stream = corpus.groups(**options)
    unbroken = [next(stream) for _ in range(60)]  # over two epochs
    assert unbroken[-1].position.epoch >= 1
    for index in (1, 17, 31, 59):
        restarted = corpus.groups(start=unbroken[index].position, **options)
        assert [next(restarted) for _ in range(60 - index)] == unbroken[index:]
    far = next(corpus.groups(start=CorpusPosition(epoch=10**9), **options))  # no replay of earlier epochs
    assert far.position.epoch == 10**9


@pytest.mark.parametrize("suffix", [".txt", ".gz"])
def test_a_corpus_on_an_object_store_reads_and_restarts_as_a_local_one(tmp_path, suffix):
    """ram:// stands in for gs://: globbed, windowed by byte offsets (seeks), gzip, exact restarts."""
    files = [write(tmp_path / f"part-{i}{suffix}", random_lines(300, seed=i)) for i in range(2)]
    for path in files:
        tf.io.gfile.copy(path, f"ram://corpus-tests/{suffix}/{Path(path).name}", overwrite=True)
    options = dict(seed=3, repeat=True, group_bytes=900)
    local = TextCorpus(str(tmp_path / f"part-*{suffix}"), window_bytes=700, document_lines=5)
    remote = TextCorpus(f"ram://corpus-tests/{suffix}/part-*{suffix}", window_bytes=700, document_lines=5)
    assert remote.files == [f"ram://corpus-tests/{suffix}/part-{i}{suffix}" for i in range(2)]
    expected = [(g.position, g.documents) for g in itertools.islice(local.groups(**options), 30)]
    got = [(g.position, g.documents) for g in itertools.islice(remote.groups(**options), 30)]
    assert got == expected
    restarted = remote.groups(start=expected[11][0], **options)
    assert [next(restarted).documents for _ in range(5)] == [documents for _, documents in expected[11:16]]


def test_epochs_are_shuffled_differently_and_each_reads_everything(tmp_path):
    lines = random_lines(500, blank_every=None)
    corpus = TextCorpus(write(tmp_path / "c.txt", lines), window_bytes=256)
    stream = corpus.groups(seed=0, repeat=True, group_bytes=2048)
    epochs: dict[int, list] = {}
    while len(epochs) < 3:
        group = next(stream)
        epochs.setdefault(group.position.epoch, []).append(group)
    first, second = (flat(epochs[e]) for e in (0, 1))
    assert sorted(first) == sorted(second) == sorted(lines) and first != second


def test_sharding_by_file_by_window_and_by_document(tmp_path):
    def shards(corpus, count):
        seen = []
        for index in range(count):
            windows, stride = corpus.shard(tf.distribute.InputContext(count, index))
            seen.append(flat(corpus.groups(windows, stride=stride, shuffle=False)))
        return seen

    files = [write(tmp_path / f"f{i}.txt", [f"file {i} line {j}" for j in range(20)]) for i in range(4)]
    by_file = shards(TextCorpus(files), 2)
    assert {line.split()[1] for line in by_file[0]} == {"0", "2"} and {line.split()[1] for line in by_file[1]} == {"1", "3"}

    one = write(tmp_path / "one.txt", [f"line {j}" for j in range(400)])
    by_window = shards(TextCorpus(one, window_bytes=500), 2)
    assert not set(by_window[0]) & set(by_window[1]) and len(by_window[0]) + len(by_window[1]) == 400

    by_document = shards(TextCorpus(one, window_bytes=1 << 20, document_lines=10), 3)
    assert [len(shard) for shard in by_document] == [140, 130, 130]
    assert sorted(sum(by_document, [])) == sorted(f"line {j}" for j in range(400))


def test_heldout_lines_come_from_the_head_and_reading_stops_there(tmp_path, monkeypatch):
    lines = [f"sentence {i}" for i in range(5000)]
    lines[3] = ""
    corpus = TextCorpus(write(tmp_path / "c.txt", lines), document_lines=100)
    read = []
    original = corpus_module.window_lines

    def counting(window, offset=0):
        for item in original(window, offset):
            read.append(item)
            yield item

    monkeypatch.setattr(corpus_module, "window_lines", counting)
    heldout, train = corpus.split_heldout(50)
    assert heldout == [["sentence 0", "sentence 1", "sentence 2"], [f"sentence {i}" for i in range(4, 51)]]
    assert len(read) <= 10 * 50 + 2  # only the head was read
    monkeypatch.setattr(corpus_module, "window_lines", original)
    rest = flat(train.groups(shuffle=False))
    assert rest[0] == "sentence 51" and len(rest) == 5000 - 51
    # a small corpus gives at most 10% of its lines; a tiny one none
    assert sum(map(len, TextCorpus(write(tmp_path / "s.txt", lines[:40])).split_heldout(50)[0])) == 3
    with pytest.raises(DataError, match="too few to hold out"):
        TextCorpus(write(tmp_path / "t.txt", ["one", "two"])).split_heldout(5)
    assert TextCorpus(write(tmp_path / "e.txt", lines)).head(3) == [["sentence 0", "sentence 1", "sentence 2"]]


def test_input_positions_name_where_the_next_batch_starts():
    positions = InputPositions(keep=3)
    for batch in range(5):
        positions.record(batch, [0, batch, 10 * batch, 8])
    assert positions.after(5) == {"epoch": 0, "window": 4, "offset": 40, "skip": 8, "batch": 5}
    assert positions.after(1) is None  # pruned: only the newest entries are kept
    assert position_from(positions.after(5)) == (CorpusPosition(0, 4, 40, 8), 5)
    assert position_from(None) == (None, 0)


def test_reading_a_window_reads_one_line_at_a_time(tmp_path):
    path = write(tmp_path / "c.txt", ["x" * 10] * 10)
    assert list(window_lines(Window(path, 11, 33, aligned=False))) == [(0, "x" * 10), (11, "x" * 10)]
    assert list(window_lines(Window(path, 0, None, aligned=True), offset=99)) == [(99, "x" * 10)]
