"""A plain-text pretraining corpus read as a stream from its files, never held whole in memory.

The rules (``ptft pretrain --help`` states them too):

* **Lines and documents.** One sentence (or paragraph) per line. A document ends at a blank line, after
  ``document_lines`` lines (default 128), at the end of a window and at the end of a shuffle group
  (below). A file without any blank line is therefore read as documents of ``document_lines``
  consecutive lines: packing fills whole sequences from them and next-sentence prediction pairs
  neighbouring lines, at the cost of one short sequence per ``document_lines`` lines. A line longer
  than :data:`MAX_LINE_BYTES` is cut at its last space (or character) into pieces read as lines.
* **Windows.** Each uncompressed file is cut into windows of ``window_bytes``; a line belongs to the
  window its first byte is in, so a window is read with one seek. A ``.gz`` file is one window read
  from its start (starting inside it decompresses up to that point).
* **Epochs and shuffling.** An epoch reads this input pipeline's windows one after the other, in an
  order drawn from ``(seed, epoch)`` (file order without shuffling). The text stream is cut into
  groups of about ``group_bytes`` at line boundaries; the pipeline packs each group's documents
  into sequences and shuffles the sequences of a group (the shuffle buffer: a group mixes about
  ``group_bytes / window_bytes`` windows from anywhere in the corpus).
* **Sharding** across input pipelines (workers): with at least as many files as pipelines, pipeline
  ``i`` of ``n`` reads files ``i, i+n, ...``; else windows ``i, i+n, ...`` when there are enough of
  them; else every pipeline reads everything and keeps every ``n``-th document of each group.
* **Position.** :class:`CorpusPosition` ``(epoch, window, offset, skip)`` names the group starting at
  byte ``offset`` of the ``window``-th window of ``epoch``'s order, less its first ``skip``
  sequences. Reading restarts there with one seek and the re-packing of one group, whatever the
  step, which is how a resumed pretraining run continues without replaying its input.
* **Held-out slice.** :meth:`TextCorpus.split_heldout` takes the first lines of the corpus (reading
  only those) and returns the rest as the training corpus.

Memory: a group's text and its token ids (a few times ``group_bytes``) for each group being
prepared, plus one line; never the corpus, a file or a document whole.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "corpus.txt"
    >>> _ = path.write_text("The cat sat.\\nIt purred.\\n\\nA new story.\\nIt ends.\\nThe end.\\n")
    >>> corpus = TextCorpus(str(path), document_lines=2)
    >>> [group.documents for group in corpus.groups(shuffle=False)]
    [[['The cat sat.', 'It purred.'], ['A new story.', 'It ends.'], ['The end.']]]
    >>> heldout, train = TextCorpus([str(path)] * 2).split_heldout(1)  # at most 10% of the 10 lines
    >>> heldout, [group.documents for group in train.groups(shuffle=False)][0][:2]
    ([['The cat sat.']], [['It purred.'], ['A new story.', 'It ends.', 'The end.']])
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ptft_keras import storage
from ptft_keras.data import sources
from ptft_keras.errors import DataError

DEFAULT_DOCUMENT_LINES = 128
DEFAULT_WINDOW_BYTES = 1 << 20
DEFAULT_GROUP_BYTES = 8 << 20
MAX_LINE_BYTES = 1 << 16
HELDOUT_SHARE = 10  # the held-out slice is at most 1/10 of the lines read to find it


class Window(NamedTuple):
    """Bytes ``[start, end)`` of ``path`` (``end`` None: to the end); ``aligned``: ``start`` is a line start."""

    path: str
    start: int
    end: int | None
    aligned: bool


class CorpusPosition(NamedTuple):
    """Where a stream of groups (re)starts: see the module docstring."""

    epoch: int = 0
    window: int = 0
    offset: int = 0
    skip: int = 0


@dataclass
class Group:
    """Documents (lists of lines) read from the text starting at ``position`` (its ``skip`` is 0)."""

    position: CorpusPosition
    documents: list = field(default_factory=list)


def _open(path: str):
    try:
        return storage.open_binary(path)
    except OSError as error:
        raise DataError(f"cannot read the file ({error})", path=path) from None


def _utf8_cut(raw: bytes) -> int:
    """Where to cut an over-long line piece: after its last space, else before a whole character."""
    space = max(raw.rfind(b" "), raw.rfind(b"\t"))
    if space > 0:
        return space + 1
    cut = len(raw)
    while cut > 1 and (raw[cut - 1] & 0xC0) == 0x80:  # a UTF-8 continuation byte: back to its start
        cut -= 1
    return cut - 1 if cut > 1 and raw[cut - 1] >= 0xC0 else len(raw)


def _skip_partial_line(stream) -> None:
    while True:
        chunk = stream.readline(MAX_LINE_BYTES)
        if not chunk or chunk.endswith(b"\n"):
            return


def window_lines(window: Window, offset: int = 0) -> Iterator[tuple[int, str]]:
    """``(offset, text)`` of the lines of ``window`` from ``offset`` bytes into it (a line start, or 0).

    ``offset`` is where the line starts, relative to ``window.start``; lines that are not UTF-8 are
    left out (:func:`sources.check_text_files` reports them up front). Reads one line at a time.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "c.txt"
        >>> _ = path.write_text("one\\ntwo\\nthree\\n")
        >>> list(window_lines(Window(str(path), 2, 8, aligned=False)))  # only "two" starts in bytes 2..7
        [(2, 'two')]
    """
    stream = _open(window.path)
    try:
        with stream:
            position = window.start + offset
            if offset == 0 and not window.aligned and window.start > 0:
                stream.seek(window.start - 1)
                if stream.read(1) != b"\n":
                    _skip_partial_line(stream)
                position = stream.tell()
            else:
                stream.seek(position)
            # A restart point past the window's end can only be inside the line that crosses it.
            carry, in_line = b"", offset > 0 and window.end is not None and position >= window.end
            while in_line or window.end is None or position < window.end:
                raw = carry + stream.readline(MAX_LINE_BYTES - len(carry))
                carry = b""
                if not raw:
                    return
                complete = raw.endswith(b"\n") or len(raw) < MAX_LINE_BYTES
                if not complete:  # a piece of a long line: cut it where a reader restarting here cuts too
                    cut = _utf8_cut(raw)
                    raw, carry = raw[:cut], raw[cut:]
                start, position, in_line = position, position + len(raw), not complete
                try:
                    text = raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError:
                    continue
                yield start - window.start, text
    except (OSError, EOFError) as error:
        raise DataError(f"cannot read the file ({error})", path=window.path) from None


class TextCorpus:
    """Plain-text files (a path, a glob, ``.gz``, or a list of them) read as a stream of groups.

    Args:
        source: files as :func:`sources.expand_files` takes them; they are checked up front (UTF-8,
            not empty: one pass at C speed) unless ``check=False``.
        document_lines: a document ends after this many lines (and at a blank line).
        window_bytes: the unit of shuffling and sharding of an uncompressed file.
        skip_bad_rows: leave lines that are not UTF-8 out with one warning instead of raising.
        start: ``(file index, byte offset)`` of the first line to read (what precedes it is held out).

    Example:
        >>> corpus = TextCorpus("/no/such/corpus-*.txt")
        Traceback (most recent call last):
        ...
        ptft_keras.errors.DataError: /no/such/corpus-*.txt: the pattern matches no files; check the path and the working directory
    """

    def __init__(self, source, *, document_lines: int = DEFAULT_DOCUMENT_LINES,
                 window_bytes: int = DEFAULT_WINDOW_BYTES, skip_bad_rows: bool = False, check: bool = True,
                 start: tuple[int, int] = (0, 0)):
        self.files = sources.expand_files(source)
        if check:
            sources.check_text_files(self.files, skip_bad_rows=skip_bad_rows)
        self.source = source
        self.document_lines = max(int(document_lines), 1)
        self.window_bytes = max(int(window_bytes), 1)
        self.start = tuple(start)
        self.windows = self._plan()

    def _with_start(self, start: tuple[int, int]) -> "TextCorpus":
        return TextCorpus(self.files, document_lines=self.document_lines, window_bytes=self.window_bytes,
                          check=False, start=start)

    def _plan(self) -> list[Window]:
        first_file, first_byte = self.start
        windows = []
        for index, path in enumerate(self.files):
            if index < first_file:
                continue
            begin = first_byte if index == first_file else 0
            if path.endswith(".gz"):
                windows.append(Window(path, begin, None, aligned=True))
                continue
            size = storage.getsize(path)
            for start in range(begin, max(size, begin + 1), self.window_bytes):
                end = start + self.window_bytes
                windows.append(Window(path, start, None if end >= size else end, aligned=start == begin))
        return windows

    # --- sharding --------------------------------------------------------------------------------
    def shard(self, input_context=None) -> tuple[list[Window], tuple[int, int]]:
        """``(windows, (n, i))`` of one input pipeline: by file, by window, or all windows keeping
        every ``n``-th document from the ``i``-th (``(1, 0)``: keep every document).

        Example:
            >>> import tensorflow as tf, tempfile, pathlib
            >>> folder = pathlib.Path(tempfile.mkdtemp())
            >>> for name in "abc":
            ...     _ = (folder / f"{name}.txt").write_text("a line\\n")
            >>> windows, stride = TextCorpus(str(folder / "*.txt")).shard(tf.distribute.InputContext(2, 1))
            >>> [pathlib.Path(w.path).name for w in windows], stride
            (['b.txt'], (1, 0))
        """
        count = getattr(input_context, "num_input_pipelines", 1) or 1
        index = getattr(input_context, "input_pipeline_id", 0) or 0
        if count <= 1:
            return list(self.windows), (1, 0)
        files = [path for i, path in enumerate(self.files) if i >= self.start[0]]
        if len(files) >= count:
            mine = set(files[index::count])
            return [w for w in self.windows if w.path in mine], (1, 0)
        if len(self.windows) >= count:
            return list(self.windows[index::count]), (1, 0)
        return list(self.windows), (count, index)

    # --- reading -------------------------------------------------------------------------------
    def groups(self, windows: Sequence[Window] | None = None, *, seed: int = 0, shuffle: bool = True,
               repeat: bool = False, group_bytes: int = DEFAULT_GROUP_BYTES, stride: tuple[int, int] = (1, 0),
               start: CorpusPosition | None = None) -> Iterator[Group]:
        """The corpus as groups of documents of about ``group_bytes`` of text (see the module doc).

        ``start`` resumes at a position (its ``skip`` is the caller's to apply); ``stride`` ``(n, i)``
        keeps documents ``i, i+n, ...`` of each group. With ``repeat`` the epochs never end.
        """
        windows = list(self.windows if windows is None else windows)
        if not windows:
            return
        epoch, first, offset, _ = start or CorpusPosition()
        while True:
            order = self.order(len(windows), seed, epoch) if shuffle else np.arange(len(windows))
            empty = True
            for group in self._epoch_groups(windows, order, epoch, first, offset, group_bytes, stride):
                empty = False
                yield group
            if not repeat or (empty and first == 0 and offset == 0):  # a whole epoch without text: stop
                return
            epoch, first, offset = epoch + 1, 0, 0

    @staticmethod
    def order(count: int, seed: int, epoch: int) -> np.ndarray:
        """The window order of ``epoch``: a permutation drawn from ``(seed, epoch)``.

        Example:
            >>> TextCorpus.order(5, seed=0, epoch=0).tolist() == TextCorpus.order(5, 0, 0).tolist()
            True
        """
        return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch)]).permutation(count)

    def _epoch_groups(self, windows, order, epoch, first, offset, group_bytes, stride) -> Iterator[Group]:
        every, mine = stride
        group = documents = None
        size = 0

        def close(group):
            kept = [d for i, d in enumerate(group.documents) if i % every == mine]
            return Group(group.position, kept) if kept else None

        for slot in range(first, len(order)):
            window = windows[order[slot]]
            lines = window_lines(window, offset if slot == first else 0)
            document = []
            for at, text in lines:
                if group is None:
                    group, size = Group(CorpusPosition(epoch, slot, at, 0)), 0
                if not text.strip():
                    if document:
                        group.documents.append(document)
                        document = []
                else:
                    document.append(text)
                    size += len(text) + 1
                    if len(document) >= self.document_lines:
                        group.documents.append(document)
                        document = []
                if size >= group_bytes:
                    if document:
                        group.documents.append(document)
                        document = []
                    done, group = close(group), None
                    if done:
                        yield done
            if document:  # a document ends with its window
                group.documents.append(document)
        if group is not None and (done := close(group)):
            yield done

    def split_heldout(self, lines: int) -> tuple[list[list[str]], "TextCorpus"]:
        """``(held-out documents, training corpus)``: the first ``lines`` lines of the corpus, at most
        a tenth of the non-blank lines read to find them (``HELDOUT_SHARE * lines`` at most), and the
        corpus after them. Reads only those lines; the document at the cut is cut between lines.

        Raises:
            DataError: the corpus is too small to hold a line out.
        """
        wanted, taken, nonblank_lines = int(lines), [], 0
        for index, path in enumerate(self.files[self.start[0]:], start=self.start[0]):
            offset = self.start[1] if index == self.start[0] else 0
            for at, text in window_lines(Window(path, offset, None, aligned=True)):
                taken.append((index, offset + at, text))
                nonblank_lines += bool(text.strip())
                if nonblank_lines > HELDOUT_SHARE * wanted:
                    break
            else:
                continue
            break
        nonblank = [i for i, (*_, text) in enumerate(taken) if text.strip()]
        count = min(wanted, len(nonblank) // HELDOUT_SHARE)
        if count < 1:
            raise DataError(f"the corpus has {len(nonblank)} lines: too few to hold out an evaluation slice; add "
                            "text or pass --eval-corpus", path=", ".join(self.files))
        last = nonblank[count - 1]
        documents = split_lines([t for *_, t in taken[: last + 1]], self.document_lines)
        file_index, at, text = taken[last]
        cut = at + len(text.encode("utf-8"))
        rest = self._with_start((file_index, cut))
        return documents, rest

    def head(self, lines: int) -> list[list[str]]:
        """The documents of the first ``lines`` non-blank lines (reads only those).

        Example:
            >>> import tempfile, pathlib
            >>> path = pathlib.Path(tempfile.mkdtemp()) / "eval.txt"
            >>> _ = path.write_text("a\\nb\\n\\nc\\n")
            >>> TextCorpus(str(path)).head(2)
            [['a', 'b']]
        """
        taken, nonblank_lines = [], 0
        for window in self.windows:
            for _, text in window_lines(window):
                taken.append(text)
                nonblank_lines += bool(text.strip())
                if nonblank_lines >= lines:
                    return split_lines(taken, self.document_lines)
        return split_lines(taken, self.document_lines)

    def sample(self, max_bytes: int) -> Iterator[str]:
        """Non-blank lines for a vocabulary: every window's first ``max_bytes / windows`` bytes of text
        (the whole corpus when it is smaller than ``max_bytes``).

        Example:
            >>> import tempfile, pathlib
            >>> path = pathlib.Path(tempfile.mkdtemp()) / "c.txt"
            >>> _ = path.write_text("one\\n\\ntwo\\n")
            >>> list(TextCorpus(str(path)).sample(1 << 20))
            ['one', 'two']
        """
        budget = max(int(max_bytes) // max(len(self.windows), 1), 1)
        for window in self.windows:
            used = 0
            for _, text in window_lines(window):
                if text.strip():
                    yield text
                    used += len(text) + 1
                    if used >= budget:
                        break


def split_lines(lines: Sequence[str], document_lines: int = DEFAULT_DOCUMENT_LINES) -> list[list[str]]:
    """Documents of ``lines``: a blank line ends one, and so does its ``document_lines``-th line.

    Example:
        >>> split_lines(["a", "b", "c", "", "d"], document_lines=2)
        [['a', 'b'], ['c'], ['d']]
    """
    documents, document = [], []
    for line in lines:
        if line.strip():
            document.append(line)
        if document and (not line.strip() or len(document) >= document_lines):
            documents.append(document)
            document = []
    if document:
        documents.append(document)
    return documents


class InputPositions:
    """Where each batch of a stream of batches ends, recorded as the pipeline makes them.

    The pipeline calls :meth:`record` (through ``tf.py_function``) with each batch's index and the
    :class:`CorpusPosition` just after its last sequence; a backup taken after ``steps`` batches
    asks :meth:`after` for the position the next batch starts at. Batches are made ahead of the
    training step (prefetching), so the position of a consumed batch is always known. Thread-safe;
    keeps the newest ``keep`` entries.

    Example:
        >>> positions = InputPositions()
        >>> positions.record(0, [0, 3, 512, 8]); positions.record(1, [0, 3, 512, 16])
        >>> positions.after(2), positions.after(0)
        ({'epoch': 0, 'window': 3, 'offset': 512, 'skip': 16, 'batch': 2}, None)
    """

    def __init__(self, keep: int = 4096):
        self.keep = int(keep)
        self._ends: OrderedDict[int, tuple] = OrderedDict()
        self._lock = threading.Lock()

    def record(self, batch, position) -> None:
        key = int(batch)
        value = tuple(int(v) for v in np.asarray(position).reshape(-1)[:4])
        with self._lock:
            self._ends[key] = value
            while len(self._ends) > self.keep:
                self._ends.popitem(last=False)

    def after(self, batches: int) -> dict | None:
        """The position to resume at after ``batches`` batches (None at 0 or when not recorded)."""
        with self._lock:
            end = self._ends.get(int(batches) - 1)
        if end is None:
            return None
        return {**CorpusPosition(*end)._asdict(), "batch": int(batches)}


def position_from(state: dict | None) -> tuple[CorpusPosition | None, int]:
    """``(position, first batch index)`` from :meth:`InputPositions.after`'s dict (``(None, 0)`` for None).

    Example:
        >>> position_from({"epoch": 1, "window": 2, "offset": 30, "skip": 4, "batch": 7})
        (CorpusPosition(epoch=1, window=2, offset=30, skip=4), 7)
    """
    if not state:
        return None, 0
    return CorpusPosition(*(int(state[name]) for name in CorpusPosition._fields)), int(state["batch"])
