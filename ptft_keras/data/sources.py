"""Read rows from files and in-memory sources, validate them in Python, and name the bad line.

Every reader yields rows together with where they came from (file and 1-based line as an editor
shows it, header = line 1), so that a bad row is reported as ``train.tsv, line 7, field 'label':
...`` before it ever reaches ``tf.data``.

Supported sources (``source`` argument of :func:`read_examples` and :func:`read_documents`):

- a path or glob (``str`` / ``os.PathLike``), or a list/tuple of ``os.PathLike``, local or on any file
  system TensorFlow opens (``gs://bucket/data/*.tsv``; see :mod:`ptft_keras.storage`); ``.gz`` files
  are decompressed; the format comes from the suffix: ``.csv``, ``.tsv`` (unquoted, like GLUE),
  ``.jsonl`` / ``.ndjson`` / ``.json`` (JSON Lines), anything else plain text (one example or
  sentence per line, blank line = document break);
- ``"tfds:NAME"`` or ``"tfds:NAME@SPLIT"`` (e.g. ``"tfds:glue/sst2@validation"``), or a
  :class:`TfdsSource`;
- a Hugging Face ``datasets.Dataset`` (anything with ``column_names`` that iterates dicts);
- Python rows: a list of dicts, a dict of equal-length lists, or a list of strings (column
  ``"text"``). A list of *strings* is always text, never file names: pass a glob or ``Path``
  objects for files. In-memory rows are located as ``<rows>, line N`` with N the 1-based row.

Example:
    >>> examples = read_examples([{"sentence": "a fine film", "label": 1}],
    ...                          text_column="sentence", label_column="label")
    >>> examples.texts, examples.labels, examples.locations
    (['a fine film'], [1], [('<rows>', 1)])
"""
from __future__ import annotations

import codecs
import contextlib
import csv
import dataclasses
import json
import os
import sys
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from ptft_keras import storage
from ptft_keras.errors import DataError

TEXT_COLUMN = "text"
IN_MEMORY = "<rows>"
_GLOB_CHARS = "*?["
_FORMATS = ("csv", "tsv", "jsonl", "text")
_MAX_REPORTED = 5


@dataclasses.dataclass(frozen=True)
class TfdsSource:
    """A TensorFlow Datasets dataset and split, read with ``tfds.load``.

    Example:
        >>> TfdsSource.parse("tfds:glue/sst2@validation")
        TfdsSource(name='glue/sst2', split='validation', data_dir=None)
    """

    name: str
    split: str = "train"
    data_dir: str | None = None

    @classmethod
    def parse(cls, spec: str) -> "TfdsSource":
        """Parse ``"tfds:NAME"`` or ``"tfds:NAME@SPLIT"``."""
        name, _, split = spec[len("tfds:"):].partition("@")
        return cls(name=name, split=split or "train")

    @property
    def location(self) -> str:
        return f"tfds:{self.name}@{self.split}"


@dataclasses.dataclass
class Examples:
    """Validated rows, column by column; ``labels`` hold the raw label values.

    ``file_ids[i]`` indexes ``files`` (the file row ``i`` came from; 0 for non-file sources) so a
    pipeline can shard by file.
    """

    texts: list[str]
    pairs: list[str] | None
    labels: list[Any] | None
    locations: list[tuple[str, int]]
    file_ids: list[int]
    files: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def select(self, indices: Sequence[int]) -> "Examples":
        """The rows at ``indices``, in that order."""
        def pick(values):
            return None if values is None else [values[i] for i in indices]

        return Examples(pick(self.texts), pick(self.pairs), pick(self.labels),
                        pick(self.locations), pick(self.file_ids), self.files)


class BadRows:
    """Raise a bad row's :class:`DataError`, or count it and warn once when skipping.

    Example:
        >>> bad = BadRows(skip=True)
        >>> bad.report(DataError("empty text", path="a.tsv", line=3, field="sentence"))
        >>> bad.count
        1
    """

    def __init__(self, skip: bool = False):
        self.skip = skip
        self.count = 0
        self.first: list[str] = []

    def report(self, error: DataError) -> None:
        if not self.skip:
            raise error
        self.count += 1
        if len(self.first) < _MAX_REPORTED:
            self.first.append(str(error))

    def warn(self) -> None:
        """Emit one warning with the count and the first few reasons (no-op when none)."""
        if self.count:
            shown = "\n  ".join(self.first)
            hidden = self.count - len(self.first)
            more = f"\n  ... and {hidden} more" if hidden else ""
            warnings.warn(f"skipped {self.count} bad row(s) (skip_bad_rows=True):\n  {shown}{more}",
                          stacklevel=3)


def is_file_source(source) -> bool:
    """True for a path, a glob or a list/tuple of ``os.PathLike`` (not ``"tfds:..."``)."""
    if isinstance(source, os.PathLike):
        return True
    if isinstance(source, str):
        return not source.startswith("tfds:")
    return (isinstance(source, (list, tuple)) and len(source) > 0
            and all(isinstance(item, os.PathLike) for item in source))


def expand_files(source) -> list[str]:
    """Paths for a path, a glob, or a list of them; sorted within each glob.

    Raises:
        DataError: a glob matches nothing, or a path does not exist.

    Example:
        >>> expand_files("/definitely/missing/*.tsv")
        Traceback (most recent call last):
        ...
        ptft_keras.errors.DataError: /definitely/missing/*.tsv: the pattern matches no files; check the path and the working directory
    """
    patterns = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    files = []
    for pattern in map(os.fspath, patterns):
        if any(char in pattern for char in _GLOB_CHARS):
            matches = storage.glob(pattern)
            if not matches:
                raise DataError("the pattern matches no files; check the path and the working "
                                "directory", path=pattern)
            files.extend(matches)
        elif storage.isfile(pattern):
            files.append(pattern)
        elif storage.isdir(pattern):
            raise DataError(f"this is a directory, not a file; pass a file in it or a glob such as "
                            f"{_glob_for_directory(pattern)!r}", path=pattern)
        else:
            raise DataError("no such file", path=pattern)
    return files


def _glob_for_directory(directory: str) -> str:
    """A glob for the data files in `directory`: ``DIR/*.EXT`` with its most common data suffix."""
    join = (lambda name: directory.rstrip("/") + "/" + name) if storage.is_remote(directory) else (
        lambda name: os.path.join(directory, name))
    suffixes = [os.path.splitext(name[:-3] if name.endswith(".gz") else name)[1].lower()
                for name in storage.listdir(directory) if storage.isfile(join(name))]
    known = [suffix for suffix in suffixes if suffix in (".csv", ".tsv", ".jsonl", ".ndjson", ".json", ".txt")]
    suffix = max(known, key=known.count) if known else ".tsv"
    return join("*" + suffix)


def detect_format(path: str) -> str:
    """``"csv"``, ``"tsv"``, ``"jsonl"`` or ``"text"`` from the file name (``.gz`` ignored)."""
    name = path[:-3] if path.endswith(".gz") else path
    suffix = os.path.splitext(name)[1].lower()
    return {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
            ".json": "jsonl"}.get(suffix, "text")


def read_lines(path: str, bad_rows: BadRows) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` of a (possibly gzipped) UTF-8 file, without line endings.

    A line that is not valid UTF-8, and an empty file, are reported to ``bad_rows`` (raised, or
    counted and left out when skipping).
    """
    any_line = False
    for number, raw in _raw_lines(path):
        any_line = True
        try:
            yield number, raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as err:
            bad_rows.report(_utf8_error(err, path, number))
    if not any_line:
        bad_rows.report(DataError("the file is empty; remove it or fill it", path=path))


@contextlib.contextmanager
def _open_binary(path: str):
    """Open a file (local or any `storage` path), or a ``.gz`` file decompressed; read errors become
    :class:`DataError`."""
    try:
        with storage.open_binary(path) as stream:
            yield stream
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError
        raise DataError(f"cannot read the file ({err})", path=path) from None


def _raw_lines(path: str) -> Iterator[tuple[int, bytes]]:
    with _open_binary(path) as stream:
        yield from enumerate(stream, start=1)


def _utf8_error(err: UnicodeDecodeError, path: str, line: int) -> DataError:
    return DataError(f"invalid UTF-8 (byte {err.object[err.start]:#04x}, the line's byte "
                     f"{err.start + 1}); re-save the file as UTF-8", path=path, line=line)


def _validate_columns(found: Sequence[str], wanted: Sequence[str], path: str, line: int | None):
    for name in wanted:
        if name not in found:
            raise DataError(f"no column {name!r}; available columns: {', '.join(map(repr, found))}",
                            path=path, line=line, field=name)


def raise_csv_field_limit() -> int:
    """Let the `csv` module read fields of any length (its default stops at 128 KiB, which a long
    document exceeds; texts are truncated later, by tokens). Returns the limit now in force.

    The limit is the largest the platform's C long holds (``sys.maxsize``, halved until accepted).

    Example:
        >>> raise_csv_field_limit() >= 2**31 - 1
        True
    """
    limit = sys.maxsize
    while limit > csv.field_size_limit():
        try:
            csv.field_size_limit(limit)
        except OverflowError:
            limit //= 2
    return csv.field_size_limit()


def _read_delimited(path: str, columns: Sequence[str], bad_rows: BadRows, delimiter: str):
    """CSV (quoted fields may hold commas, quotes and line breaks) or TSV (no quoting); fields of
    any length."""
    raise_csv_field_limit()
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    bad_lines: dict[int, DataError] = {}

    def decoded():
        for number, raw in _raw_lines(path):
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as err:
                bad_lines[number] = _utf8_error(err, path, number)
                yield raw.decode("utf-8", errors="replace")

    reader = csv.reader(decoded(), delimiter=delimiter, quoting=quoting, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        bad_rows.report(DataError("the file is empty; a header row naming the columns is expected "
                                  "on line 1", path=path))
        return
    except csv.Error as err:
        raise DataError(f"cannot parse the header ({err})", path=path, line=1) from None
    header = [name.strip().lstrip("\ufeff") for name in header]
    _validate_columns(header, columns, path, 1)
    positions = [header.index(name) for name in columns]
    last_line = 1
    while True:
        start = last_line + 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as err:  # the reader goes on with the next line, so the row can be skipped
            last_line = reader.line_num
            bad_rows.report(DataError(f"cannot parse the row ({err}); check the quotes", path=path, line=start))
            continue
        last_line = reader.line_num
        bad_line = next((bad_lines[n] for n in range(start, last_line + 1) if n in bad_lines), None)
        if bad_line is not None:
            bad_rows.report(bad_line)
        elif not fields:
            bad_rows.report(DataError("empty line; remove it", path=path, line=start))
        elif len(fields) != len(header):
            missing = header[len(fields)] if len(fields) < len(header) else None
            what = f"the row has {len(fields)} field(s) but the header has {len(header)}"
            if missing is None and delimiter == "\t":
                what += "; a tab inside the text splits it (TSV is not quoted)"
            bad_rows.report(DataError(what, path=path, line=start, field=missing))
        else:
            yield start, [fields[i] for i in positions]
    if last_line == 1:
        bad_rows.report(DataError("the file has a header but no data rows", path=path, line=1))


def _read_jsonl(path: str, columns: Sequence[str], bad_rows: BadRows):
    for number, line in read_lines(path, bad_rows):
        if not line.strip():
            bad_rows.report(DataError("empty line; remove it", path=path, line=number))
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            bad_rows.report(DataError(f"invalid JSON ({err.msg} at column {err.colno})",
                                      path=path, line=number))
            continue
        if not isinstance(row, Mapping):
            bad_rows.report(DataError("expected a JSON object per line", path=path, line=number))
            continue
        values = _pick(row, columns, path, number, bad_rows)
        if values is not None:
            yield number, values


def _pick(row: Mapping, columns: Sequence[str], path: str, line: int, bad_rows: BadRows):
    for name in columns:
        if name not in row:
            bad_rows.report(DataError(f"the row has no {name!r}; it has: "
                                      f"{', '.join(map(repr, row))}", path=path, line=line,
                                      field=name))
            return None
    return [row[name] for name in columns]


def _read_text(path: str, columns: Sequence[str], bad_rows: BadRows):
    _validate_columns([TEXT_COLUMN], columns, path, None)
    for number, line in read_lines(path, bad_rows):
        if line.strip():  # a blank line separates documents; it is not an example
            yield number, [line]


def _read_file(path: str, columns: Sequence[str], bad_rows: BadRows, fmt: str | None):
    fmt = fmt or detect_format(path)
    if fmt in ("csv", "tsv"):
        return _read_delimited(path, columns, bad_rows, "," if fmt == "csv" else "\t")
    if fmt == "jsonl":
        return _read_jsonl(path, columns, bad_rows)
    return _read_text(path, columns, bad_rows)


def _read_python(rows, columns: Sequence[str], bad_rows: BadRows):
    if isinstance(rows, Mapping):  # a dict of columns
        _validate_columns(list(rows), columns, IN_MEMORY, None)
        lengths = {name: len(rows[name]) for name in columns}
        if len(set(lengths.values())) > 1:
            raise DataError(f"columns have different lengths: {lengths}", path=IN_MEMORY)
        rows = [dict(zip(columns, values)) for values in zip(*(rows[name] for name in columns))]
    for number, row in enumerate(rows, start=1):
        if isinstance(row, str):
            row = {TEXT_COLUMN: row}
        if not isinstance(row, Mapping):
            bad_rows.report(DataError(f"expected a dict or a string, got {type(row).__name__}",
                                      path=IN_MEMORY, line=number))
            continue
        values = _pick(row, columns, IN_MEMORY, number, bad_rows)
        if values is not None:
            yield number, values


def _read_tfds(source: TfdsSource, columns: Sequence[str], bad_rows: BadRows):
    import tensorflow_datasets as tfds

    features = tfds.builder(source.name, data_dir=source.data_dir).info.features
    _validate_columns(list(features), columns, source.location, None)
    dataset = tfds.load(source.name, split=source.split, data_dir=source.data_dir)
    for number, row in enumerate(tfds.as_numpy(dataset), start=1):
        yield number, [_from_numpy(row[name]) for name in columns]


def _from_numpy(value):
    """numpy scalars -> Python scalars, arrays -> lists; bytes stay (decoded when validated)."""
    return value.tolist() if hasattr(value, "tolist") else value


def _read_hf(dataset, columns: Sequence[str], bad_rows: BadRows):
    location = "<Hugging Face dataset>"
    _validate_columns(list(dataset.column_names), columns, location, None)
    for number, row in enumerate(dataset, start=1):
        values = _pick(row, columns, location, number, bad_rows)
        if values is not None:
            yield number, values


def is_hf_dataset(source) -> bool:
    """Duck-typed ``datasets.Dataset``: has ``column_names`` and iterates dict rows."""
    return hasattr(source, "column_names") and hasattr(source, "__iter__")


def iter_rows(source, columns: Sequence[str], bad_rows: BadRows, *, fmt: str | None = None
              ) -> tuple[list[str], Iterator[tuple[int, int, list[Any]]]]:
    """Files of ``source`` and an iterator of ``(file_id, line, values)`` in ``columns`` order.

    Only format problems are checked here (encoding, quoting, missing columns, field counts);
    :func:`read_examples` checks the values.

    Example:
        >>> files, rows = iter_rows({"text": ["a", "b"]}, ["text"], BadRows())
        >>> files, list(rows)
        (['<rows>'], [(0, 1, ['a']), (0, 2, ['b'])])
    """
    if fmt is not None and fmt not in _FORMATS:
        raise DataError(f"unknown file format {fmt!r}; use one of {', '.join(_FORMATS)}")
    if isinstance(source, TfdsSource) or (isinstance(source, str) and source.startswith("tfds:")):
        tfds_source = source if isinstance(source, TfdsSource) else TfdsSource.parse(source)
        return [tfds_source.location], _single(_read_tfds(tfds_source, columns, bad_rows))
    if is_file_source(source):
        files = expand_files(source)

        def from_files():
            for file_id, path in enumerate(files):
                for line, values in _read_file(path, columns, bad_rows, fmt):
                    yield file_id, line, values

        return files, from_files()
    if is_hf_dataset(source):
        return ["<Hugging Face dataset>"], _single(_read_hf(source, columns, bad_rows))
    if isinstance(source, (Mapping, list, tuple)):
        return [IN_MEMORY], _single(_read_python(source, columns, bad_rows))
    raise DataError(f"cannot read rows from a {type(source).__name__}; pass a path or glob, "
                    "'tfds:NAME@SPLIT', a datasets.Dataset, or a list of dicts")


def _single(rows):
    for line, values in rows:
        yield 0, line, values


def _decoded(value, path: str, line: int):
    """bytes (TFDS gives text as bytes) -> str; anything else unchanged."""
    if not isinstance(value, bytes):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _utf8_error(err, path, line) from None


def _text_value(value, path: str, line: int, field: str) -> str:
    value = _decoded(value, path, line)
    if not isinstance(value, str):
        raise DataError(f"expected text, got {type(value).__name__} {value!r}", path=path,
                        line=line, field=field)
    if not value.strip():
        raise DataError("empty text; fill it in or remove the row (or pass skip_bad_rows=True)",
                        path=path, line=line, field=field)
    return value


def read_examples(source, *, text_column: str = TEXT_COLUMN, text_pair_column: str | None = None,
                  label_column: str | None = None, skip_bad_rows: bool = False,
                  file_format: str | None = None) -> Examples:
    """Read and validate the rows of ``source`` (see the module docstring for what it can be).

    Text fields must be non-empty UTF-8 strings; the label, when asked for, must be present and
    non-empty. Labels are returned raw; :mod:`ptft_keras.data.labels` turns them into targets.
    With ``skip_bad_rows=True`` a bad row is left out and counted in one warning instead of
    raising :class:`DataError`.

    Example:
        >>> ex = read_examples({"premise": ["it rains"], "hypothesis": ["it is wet"], "y": ["yes"]},
        ...                    text_column="premise", text_pair_column="hypothesis", label_column="y")
        >>> ex.pairs, ex.labels
        (['it is wet'], ['yes'])
    """
    text_columns = [text_column] + ([text_pair_column] if text_pair_column else [])
    columns = text_columns + ([label_column] if label_column else [])
    bad_rows = BadRows(skip_bad_rows)
    files, rows = iter_rows(source, columns, bad_rows, fmt=file_format)
    texts, pairs, labels, locations, file_ids = [], [], [], [], []
    for file_id, line, values in rows:
        path = files[file_id]
        try:
            row_texts = [_text_value(value, path, line, name)
                         for value, name in zip(values, text_columns)]
            if label_column:
                label = _decoded(values[-1], path, line)
                if label is None or (isinstance(label, str) and not label.strip()):
                    raise DataError("empty label; fill it in or remove the row", path=path,
                                    line=line, field=label_column)
                labels.append(label)
        except DataError as err:
            bad_rows.report(err)
            continue
        texts.append(row_texts[0])
        if text_pair_column:
            pairs.append(row_texts[1])
        locations.append((path, line))
        file_ids.append(file_id)
    bad_rows.warn()
    if not texts:
        raise DataError("no usable rows" + (f" ({bad_rows.count} bad row(s) skipped)"
                                            if bad_rows.count else "; the source is empty"),
                        path=", ".join(files))
    return Examples(texts, pairs if text_pair_column else None, labels if label_column else None,
                    locations, file_ids, files)


def read_documents(source, *, text_column: str | None = None, skip_bad_rows: bool = False,
                   bad_rows: BadRows | None = None) -> Iterator[list[str]]:
    """Yield documents (lists of sentences) for pretraining.

    Plain-text files and lists of strings: one sentence per line, a blank line ends a document.
    A list of lists of strings is taken as documents already. With ``text_column``, each row of a
    tabular source (CSV, JSONL, TFDS, ...) is one document of one "sentence".

    Example:
        >>> list(read_documents(["The cat sat.", "It purred.", "", "A new story."]))
        [['The cat sat.', 'It purred.'], ['A new story.']]
    """
    bad_rows = bad_rows or BadRows(skip_bad_rows)
    if text_column is not None:
        examples = read_examples(source, text_column=text_column, skip_bad_rows=bad_rows.skip)
        yield from ([text] for text in examples.texts)
        return
    if is_file_source(source):
        for path in expand_files(source):
            yield from file_documents(path, bad_rows)
        bad_rows.warn()
        return
    if isinstance(source, (list, tuple)) and all(isinstance(doc, (list, tuple)) for doc in source):
        yield from ([s for s in doc if s.strip()] for doc in source if any(s.strip() for s in doc))
        return
    if isinstance(source, (list, tuple)) and all(isinstance(line, str) for line in source):
        yield from split_documents(source)
        return
    raise DataError(f"cannot read documents from a {type(source).__name__}; pass text files, a "
                    "list of lines, a list of documents, or a tabular source with text_column=")


def file_documents(path: str, bad_rows: BadRows | None = None) -> Iterator[list[str]]:
    """Documents of one plain-text file; undecodable lines are skipped unless ``bad_rows`` raises.

    Pipelines call this per file after :func:`check_text_files` has reported the bad lines.
    """
    return split_documents(line for _, line in read_lines(path, bad_rows or BadRows(skip=True)))


def split_documents(lines: Iterable[str]) -> Iterator[list[str]]:
    """Group lines into documents at blank lines.

    Example:
        >>> list(split_documents(["a", "b", "  ", "", "c"]))
        [['a', 'b'], ['c']]
    """
    document: list[str] = []
    for line in lines:
        if line.strip():
            document.append(line)
        elif document:
            yield document
            document = []
    if document:
        yield document


def check_text_files(files: Sequence[str], *, skip_bad_rows: bool = False) -> int:
    """Validate plain-text corpus files up front (UTF-8, not empty); return the bad-line count.

    Decodes each file in large blocks at C speed; only a file that fails to decode is re-read
    line by line to name the line. Raises :class:`DataError` unless ``skip_bad_rows`` (then
    warns once).

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "corpus.txt"
        >>> _ = path.write_bytes(b"fine\\n\\xff broken\\n")
        >>> check_text_files([str(path)])
        Traceback (most recent call last):
        ...
        ptft_keras.errors.DataError: ...corpus.txt, line 2: invalid UTF-8 (byte 0xff, the line's byte 1); re-save the file as UTF-8
    """
    bad_rows = BadRows(skip_bad_rows)
    for path in files:
        valid, empty = _scan_utf8(path)
        if not valid:
            for _ in read_lines(path, bad_rows):
                pass
        elif empty:
            bad_rows.report(DataError("the file is empty; remove it or fill it", path=path))
    bad_rows.warn()
    return bad_rows.count


def _scan_utf8(path: str, block_size: int = 1 << 24) -> tuple[bool, bool]:
    """(decodes as UTF-8, holds only whitespace) without loading the whole file."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    empty = True
    try:
        with _open_binary(path) as stream:
            while block := stream.read(block_size):
                empty = empty and not block.strip()
                decoder.decode(block)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False, False
    return True, empty
