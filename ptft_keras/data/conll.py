"""CoNLL column files: one token per line, a blank line between sentences, tags converted to IOB2.

The format of CoNLL-2003 and most NER/POS corpora::

    -DOCSTART- -X- -X- O          <- skipped (and a sentence boundary)

    EU NNP B-NP B-ORG             <- token in the first column, tag in the last (by default)
    rejects VBZ B-VP O

Columns are split on any whitespace; `token_column` and `tag_column` pick them by index (negative
indices count from the end). Tags may be IOB1, IOB2 or BIOES (the scheme is detected per file) and
come out as IOB2, keeping exactly the entities conlleval reads from the original tags:

    IOB1   ``I-PER I-PER B-PER``  ->  ``B-PER I-PER B-PER``
    BIOES  ``B-PER E-PER S-LOC``  ->  ``B-PER I-PER B-LOC``

Bad input raises `DataError` naming the file and the 1-based line: a line with too few columns, a
tag that is neither ``O`` nor ``B-``/``I-``/``E-``/``S-`` followed by a type, a tag outside the
training label set (when `label_names` is given, as for validation and test files), undecodable
UTF-8, or a file without any sentence.

Example:
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "train.txt"
    >>> _ = path.write_text("-DOCSTART- O\\n\\nJohn I-PER\\nSmith I-PER\\nsings O\\n\\nParis I-LOC\\n")
    >>> data = read_conll(path)
    >>> data.words, data.tags, data.scheme
    ([['John', 'Smith', 'sings'], ['Paris']], [['B-PER', 'I-PER', 'O'], ['B-LOC']], 'IOB1')
    >>> data.label_names()
    ['O', 'B-LOC', 'I-LOC', 'B-PER', 'I-PER']
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ptft_keras import storage
from ptft_keras.errors import DataError

DOCSTART = "-DOCSTART-"
OUTSIDE = "O"
SCHEMES = ("IOB1", "IOB2", "BIOES")
PREFIXES = ("B", "I", "E", "S")
TOKEN_COLUMN = 0
TAG_COLUMN = -1


@dataclasses.dataclass
class ConllSentences:
    """Sentences read by `read_conll`: words, IOB2 tags (None when read without tags) and the
    1-based line of every word, so that errors and predictions can point back into the file."""

    path: str
    words: list[list[str]]
    tags: list[list[str]] | None
    lines: list[list[int]]
    scheme: str | None = None

    def __len__(self) -> int:
        return len(self.words)

    @property
    def num_words(self) -> int:
        return sum(len(words) for words in self.words)

    def select(self, indices: Iterable[int]) -> "ConllSentences":
        """The sentences at `indices`, in that order (e.g. ``range(1000)`` for the first thousand)."""
        indices = list(indices)
        pick = lambda rows: [rows[i] for i in indices]  # noqa: E731
        return dataclasses.replace(self, words=pick(self.words), lines=pick(self.lines),
                                   tags=None if self.tags is None else pick(self.tags))

    def label_names(self) -> list[str]:
        """The IOB2 label set of these sentences in a stable order: ``O``, then ``B-``/``I-`` per type.

        Both tags of every type are included, so a type seen only as single-word entities still
        has its ``I-`` tag in the label set.
        """
        if self.tags is None:
            raise DataError("these sentences were read without tags, so they have no label set", path=self.path)
        return label_names_for(tag for sentence in self.tags for tag in sentence)

    def label_ids(self, label_names: Sequence[str]) -> list[np.ndarray]:
        """The tags as int32 ids of `label_names`, one array per sentence."""
        index = {name: i for i, name in enumerate(label_names)}
        for sentence, lines in zip(self.tags or [], self.lines):
            for tag, line in zip(sentence, lines):
                if tag not in index:
                    raise _unknown_tag(tag, tag, label_names, self.path, line)
        return [np.array([index[tag] for tag in sentence], np.int32) for sentence in self.tags]

    def to_dataset(self):
        """A `tf.data.Dataset` of ``{"words": [None] string, "tags": [None] string}``, one element per sentence.

        Example:
            >>> data = ConllSentences("mem", [["EU", "rejects"]], [["B-ORG", "O"]], [[1, 2]])
            >>> [w.decode() for w in next(iter(data.to_dataset()))["words"].numpy()]
            ['EU', 'rejects']
        """
        import tensorflow as tf

        def ragged(rows):
            flat = [value for row in rows for value in row]
            return tf.RaggedTensor.from_row_lengths(tf.constant(flat, tf.string, shape=[len(flat)]),
                                                    [len(row) for row in rows])

        columns = {"words": ragged(self.words)}
        if self.tags is not None:
            columns["tags"] = ragged(self.tags)
        return tf.data.Dataset.from_tensor_slices(columns)


def label_names_for(tags: Iterable[str]) -> list[str]:
    """``O`` first, then ``B-T``, ``I-T`` for each type ``T`` in sorted order.

    Example:
        >>> label_names_for(["B-PER", "O", "B-LOC", "I-PER"])
        ['O', 'B-LOC', 'I-LOC', 'B-PER', 'I-PER']
    """
    types = sorted({_split(tag)[1] for tag in tags} - {""})
    return [OUTSIDE] + [f"{prefix}-{kind}" for kind in types for prefix in ("B", "I")]


def _split(tag: str) -> tuple[str, str]:
    """``(prefix, type)``: ``("O", "")`` for O; ``("", "")`` for a tag that is not valid."""
    if tag == OUTSIDE:
        return OUTSIDE, ""
    prefix, dash, kind = tag.partition("-")
    if not dash or prefix not in PREFIXES or not kind:
        return "", ""
    return prefix, kind


def detect_scheme(sentences: Iterable[Sequence[str]]) -> str:
    """``BIOES`` when any ``E-``/``S-`` tag occurs, ``IOB1`` when an ``I-`` tag opens an entity
    (after ``O``, another type, or at the start of a sentence), else ``IOB2``.

    Example:
        >>> detect_scheme([["B-PER", "I-PER"]]), detect_scheme([["I-PER", "O"]]), detect_scheme([["S-PER"]])
        ('IOB2', 'IOB1', 'BIOES')
    """
    scheme = "IOB2"
    for tags in sentences:
        previous = ""
        for tag in tags:
            prefix, kind = _split(tag)
            if prefix in ("E", "S"):
                return "BIOES"
            if prefix == "I" and previous != kind:
                scheme = "IOB1"
            previous = kind
    return scheme


def to_iob2(tags: Sequence[str]) -> list[str]:
    """One sentence's IOB1, IOB2 or BIOES tags as IOB2, with the entities conlleval reads unchanged.

    A word opens an entity when its tag is ``B-``/``S-``, follows ``O``, another type, or the end
    of an entity (``E-``/``S-``); it then gets ``B-``, else ``I-``.

    Example:
        >>> to_iob2(["I-PER", "I-PER", "B-PER", "O", "S-LOC", "B-ORG", "E-ORG"])
        ['B-PER', 'I-PER', 'B-PER', 'O', 'B-LOC', 'B-ORG', 'I-ORG']
    """
    out, previous, closed = [], "", True
    for tag in tags:
        prefix, kind = _split(tag)
        if not prefix:
            raise DataError(f"tag {tag!r} is not 'O' or B-/I-/E-/S- followed by a type", field="tag")
        if prefix == OUTSIDE:
            out.append(OUTSIDE)
            previous, closed = "", True
            continue
        opens = prefix in ("B", "S") or closed or previous != kind
        out.append(("B-" if opens else "I-") + kind)
        previous, closed = kind, prefix in ("E", "S")
    return out


def _unknown_tag(tag: str, raw: str, label_names: Sequence[str], path, line) -> DataError:
    shown = ", ".join(list(label_names)[:20]) + (" ..." if len(label_names) > 20 else "")
    read_as = f" (read as {tag!r} in IOB2)" if raw != tag else ""
    return DataError(
        f"tag {raw!r}{read_as} is not in the label set of the training data ({shown}); fix the tag, or train "
        "on data that has it",
        path=path, line=line, field="tag",
    )


def _lines(path: str):
    """`(line number, text)` of each line of a UTF-8 file (a BOM on the first line is dropped)."""
    try:
        stream = storage.open_binary(path, decompress=False)
    except OSError as exc:
        raise DataError(f"cannot read the file: {exc.strerror or exc}", path=path) from None
    with stream:
        for number, raw in enumerate(stream, start=1):
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"not valid UTF-8 (byte {exc.start + 1} of the line); save the file as UTF-8",
                                path=path, line=number) from None
            yield number, text


def _column_index(index: int, width: int) -> int | None:
    resolved = index + width if index < 0 else index
    return resolved if 0 <= resolved < width else None


def read_conll(path, *, token_column: int = TOKEN_COLUMN, tag_column: int | None = TAG_COLUMN,
               label_names: Sequence[str] | None = None) -> ConllSentences:
    """Read a CoNLL column file into sentences of words and IOB2 tags.

    Args:
        path: the file (UTF-8).
        token_column, tag_column: column indices of the word and its tag (negative: from the end).
            ``tag_column=None`` reads words only (files to predict on).
        label_names: the label set of the training data; a tag outside it (after conversion to
            IOB2) is a `DataError` naming its line.

    Example:
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "dev.txt"
        >>> _ = path.write_text("Paris NNP S-LOC\\n")
        >>> read_conll(path, label_names=["O", "B-PER"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ptft_keras.errors.DataError: .../dev.txt, line 1, field 'tag': tag 'S-LOC' (read as 'B-LOC' in IOB2) ...
    """
    path = str(path)
    words, raw_tags, lines = [], [], []
    sentence_words, sentence_tags, sentence_lines = [], [], []
    valid_tags: set[str] = set()

    def end_sentence():
        if sentence_words:
            words.append(list(sentence_words))
            raw_tags.append(list(sentence_tags))
            lines.append(list(sentence_lines))
            sentence_words.clear(), sentence_tags.clear(), sentence_lines.clear()

    for number, text in _lines(path):
        fields = text.split()
        if not fields or fields[0] == DOCSTART:
            end_sentence()
            continue
        token = _column_index(token_column, len(fields))
        tag = None if tag_column is None else _column_index(tag_column, len(fields))
        if token is None or (tag_column is not None and (tag is None or tag == token)):
            wanted = f"the token in column {token_column}" + (
                "" if tag_column is None else f" and its tag in another column, {tag_column}")
            raise DataError(
                f"too few columns ({len(fields)}) for {wanted}; CoNLL files hold one token per line with its "
                "columns separated by whitespace, and a blank line between sentences",
                path=path, line=number,
            )
        sentence_words.append(fields[token])
        sentence_lines.append(number)
        if tag is not None:
            value = fields[tag]
            if value not in valid_tags:
                if not _split(value)[0]:
                    raise DataError(
                        f"tag {value!r} is not 'O' or B-/I-/E-/S- followed by a type (IOB1, IOB2 or BIOES); "
                        f"is column {tag_column} the tag column?",
                        path=path, line=number, field="tag",
                    )
                valid_tags.add(value)
            sentence_tags.append(value)
    end_sentence()
    if not words:
        raise DataError("no sentences: the file is empty or holds only blank and -DOCSTART- lines", path=path)
    if tag_column is None:
        return ConllSentences(path, words, None, lines)

    scheme = detect_scheme(raw_tags)
    tags = [to_iob2(sentence) for sentence in raw_tags]
    if label_names is not None:
        known = set(label_names)
        for sentence, raw, sentence_lines_ in zip(tags, raw_tags, lines):
            for tag, original, line in zip(sentence, raw, sentence_lines_):
                if tag not in known:
                    raise _unknown_tag(tag, original, label_names, path, line)
    return ConllSentences(path, words, tags, lines, scheme)


def append_column(path, output, values: Mapping[int, str], *, docstart_value: str = OUTSIDE) -> Path:
    """Copy CoNLL file `path` to `output` with one more column: ``values[line]`` on each token line.

    Blank lines stay blank; ``-DOCSTART-`` lines get `docstart_value` so that every non-blank line
    has the same number of columns (as conlleval expects). The new column is tab-separated on lines
    that use tabs, else space-separated.

    Example:
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "in.txt").write_text("EU B-ORG\\nrejects O\\n")
        >>> append_column(folder / "in.txt", folder / "out.txt", {1: "B-ORG", 2: "B-PER"}).read_text()
        'EU B-ORG B-ORG\\nrejects O B-PER\\n'
    """
    output = Path(output)
    if output.resolve() == Path(path).resolve():
        raise DataError("the output is the input file; write the predictions elsewhere", path=output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "w", encoding="utf-8", newline="") as stream:
        for number, text in _lines(str(path)):
            body = text.rstrip("\r\n")
            ending = text[len(body):] or "\n"
            fields = body.split()
            if not fields:
                stream.write(body + ending)
                continue
            if fields[0] == DOCSTART:
                value = docstart_value
            elif number in values:
                value = values[number]
            else:
                raise DataError("no prediction for this token line", path=path, line=number)
            stream.write(body.rstrip() + ("\t" if "\t" in body else " ") + value + ending)
    return output
