"""Reading rows from every kind of source, and naming the file and line of every bad row."""
from __future__ import annotations

import csv
import doctest
import gzip
import json
import pathlib
import re

import pytest

from ptft_keras.data import sources
from ptft_keras.data.sources import TfdsSource, read_documents, read_examples
from ptft_keras.errors import DataError


def write(path: pathlib.Path, content, encoding="utf-8") -> str:
    data = content if isinstance(content, bytes) else content.encode(encoding)
    if path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)
    return str(path)


def assert_located(error: DataError, path, line, field=None, match=None):
    """The error names `path`, `line` and `field` (attributes and message) and matches `match`."""
    assert (error.path, error.line, error.field) == (str(path), line, field), str(error)
    assert str(error).startswith(f"{path}" + (f", line {line}" if line else "")), str(error)
    if match:
        assert re.search(match, str(error)), str(error)


def read_error(source, **kwargs) -> DataError:
    with pytest.raises(DataError) as info:
        read_examples(source, **kwargs)
    return info.value


# --------------------------------------------------------------------------- good sources
def test_tsv_like_sst2_is_unquoted(tmp_path):
    path = write(tmp_path / "train.tsv", 'sentence\tlabel\nhe said "hi \t1\nit \'s dull \t0\n')
    ex = read_examples(path, text_column="sentence", label_column="label")
    assert ex.texts == ['he said "hi ', "it 's dull "]
    assert ex.labels == ["1", "0"]
    assert ex.locations == [(path, 2), (path, 3)]
    assert ex.pairs is None


def test_csv_quoted_fields_with_commas_quotes_and_line_breaks_are_one_row(tmp_path):
    review = 'Great, "really" great.\nSecond line<br />third'
    path = write(tmp_path / "train.csv",
                 'review,sentiment\n"Great, ""really"" great.\nSecond line<br />third",positive\r\n'
                 'short,negative\n')
    ex = read_examples(path, text_column="review", label_column="sentiment")
    assert [t.replace("\r", "") for t in ex.texts] == [review, "short"]
    assert ex.labels == ["positive", "negative"]
    # the row after the two-line row starts on physical line 4, as an editor shows it
    assert ex.locations == [(path, 2), (path, 4)]


def test_csv_error_after_multiline_row_names_the_physical_line(tmp_path):
    path = write(tmp_path / "dev.csv", 'review,sentiment\n"one\ntwo\nthree",positive\n,negative\n')
    error = read_error(path, text_column="review", label_column="sentiment")
    assert_located(error, path, 5, "review", match="empty text")


def test_sentence_pairs_and_jsonl(tmp_path):
    rows = [{"premise": "it rains", "hypothesis": "it is wet", "label": "entailment"},
            {"premise": "a cat", "hypothesis": "a dog", "label": ["neutral", "contradiction"]}]
    path = write(tmp_path / "mnli.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    ex = read_examples(path, text_column="premise", text_pair_column="hypothesis",
                       label_column="label")
    assert ex.texts == ["it rains", "a cat"] and ex.pairs == ["it is wet", "a dog"]
    assert ex.labels == ["entailment", ["neutral", "contradiction"]]
    assert ex.locations == [(path, 1), (path, 2)]


def test_plain_text_lines_skip_blank_document_breaks(tmp_path):
    path = write(tmp_path / "corpus.txt", "first line\n\nsecond line\r\n")
    ex = read_examples(path)
    assert ex.texts == ["first line", "second line"]
    assert ex.locations == [(path, 1), (path, 3)]


def test_gzip_and_globs_over_many_files(tmp_path):
    for i in range(3):
        write(tmp_path / f"part-{i}.tsv.gz", f"sentence\tlabel\nrow {i} a\t0\nrow {i} b\t1\n")
    ex = read_examples(str(tmp_path / "part-*.tsv.gz"), text_column="sentence", label_column="label")
    assert ex.texts == ["row 0 a", "row 0 b", "row 1 a", "row 1 b", "row 2 a", "row 2 b"]
    assert ex.file_ids == [0, 0, 1, 1, 2, 2]
    assert [pathlib.Path(f).name for f in ex.files] == [f"part-{i}.tsv.gz" for i in range(3)]
    # a list of Path objects is a list of files too
    ex2 = read_examples(sorted(tmp_path.glob("part-*.tsv.gz")), text_column="sentence")
    assert ex2.texts == ex.texts


def test_python_rows_in_three_shapes():
    as_dicts = read_examples([{"t": "a", "y": 1}, {"t": "b", "y": 0}], text_column="t",
                             label_column="y")
    as_columns = read_examples({"t": ["a", "b"], "y": [1, 0]}, text_column="t", label_column="y")
    assert as_dicts.texts == as_columns.texts == ["a", "b"]
    assert as_dicts.labels == as_columns.labels == [1, 0]
    assert read_examples(["x", "y"]).texts == ["x", "y"]
    assert as_dicts.locations == [("<rows>", 1), ("<rows>", 2)]


def test_tfds_source_with_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=7):
        ex = read_examples("tfds:glue/sst2@validation", text_column="sentence",
                           label_column="label")
        assert len(ex) == 7 and all(isinstance(t, str) and t.strip() for t in ex.texts)
        assert set(ex.labels) <= {0, 1}
        assert ex.locations[0] == ("tfds:glue/sst2@validation", 1)
        error = read_error(TfdsSource("imdb_reviews"), text_column="sentence")
        assert_located(error, "tfds:imdb_reviews@train", None, "sentence", match="'text'")


class FakeHFDataset:
    """What the code path relies on from `datasets.Dataset`: column_names and dict rows."""

    def __init__(self, columns: dict):
        self._columns = columns
        self.column_names = list(columns)

    def __iter__(self):
        for values in zip(*self._columns.values()):
            yield dict(zip(self.column_names, values))


def test_hugging_face_dataset_by_duck_typing():
    dataset = FakeHFDataset({"sentence": ["good", "bad"], "label": [1, 0], "idx": [0, 1]})
    ex = read_examples(dataset, text_column="sentence", label_column="label")
    assert ex.texts == ["good", "bad"] and ex.labels == [1, 0]
    error = read_error(dataset)
    assert_located(error, "<Hugging Face dataset>", None, "text",
                   match="available columns: 'sentence'")


def test_read_documents_from_lines_files_and_tables(tmp_path):
    path = write(tmp_path / "wiki.txt.gz", "A one.\nA two.\n\n\nB one.\n")
    assert list(read_documents(path)) == [["A one.", "A two."], ["B one."]]
    assert list(read_documents([["x", " "], [], ["y"]])) == [["x"], ["y"]]
    table = write(tmp_path / "reviews.csv", 'review\n"long, long review"\n')
    assert list(read_documents(table, text_column="review")) == [["long, long review"]]


# --------------------------------------------------------------------------- bad input
SENTENCE = {"text_column": "sentence", "label_column": "label"}
BAD_INPUT = [  # file, content, read_examples arguments, line, field, what the message says
    ("train.tsv", "sentence\tlabel\ngood\t1\n\t0\n", SENTENCE, 3, "sentence", "empty text"),
    ("train.csv", "text,label\na,1\n\nb,0\n", {"label_column": "label"}, 3, None, "empty line"),
    ("dev.tsv", "sentence\tlabel\ngood\t1\nno label here\n", SENTENCE, 3, "label", "1 field"),
    ("dev.tsv", "sentence\tlabel\nhalf\tof it\t1\n", SENTENCE, 2, None, "tab inside the text"),
    ("dev.jsonl", '{"text": "a", "label": 1}\n{"txt": "b", "label": 1}\n',
     {"label_column": "label"}, 2, "text", "has: 'txt', 'label'"),
    ("train.tsv", "sentence\tlabel\n", {"text_column": "sentence"}, 1, None, "no data rows"),
    ("train.tsv", "sentence\tlabel\ngood\t1\n", {**SENTENCE, "text_column": "sentance"}, 1,
     "sentance", "available columns: 'sentence', 'label'"),
    ("x.jsonl", '{"text": "a"}\n{"text": \n', {}, 2, None, "invalid JSON"),
    ("x.csv", 'text,label\nfine,1\n"never closed,0\n', {"label_column": "label"}, 3, None,
     "quote"),
]


@pytest.mark.parametrize("name, content, arguments, line, field, match", BAD_INPUT)
def test_bad_input_names_file_line_and_field(tmp_path, name, content, arguments, line, field,
                                             match):
    path = write(tmp_path / name, content)
    assert_located(read_error(path, **arguments), path, line, field, match=match)


@pytest.mark.parametrize("name", ["train.tsv", "train.csv", "train.jsonl", "train.txt"])
def test_invalid_utf8_names_the_line(tmp_path, name):
    rows = {"train.tsv": [b"text\tlabel", b"ok\t1", b"caf\xe9\t0"],
            "train.csv": [b"text,label", b'"ok\nstill ok",1', b'"caf\xe9",0'],
            "train.jsonl": [b'{"text": "ok", "label": 1}', b'{"text": "ok", "label": 1}',
                            b'{"text": "caf\xe9", "label": 0}'],
            "train.txt": [b"ok", b"ok", b"caf\xe9"]}[name]
    path = write(tmp_path / name, b"\n".join(rows) + b"\n")
    bad_line = 4 if name == "train.csv" else 3
    label = None if name == "train.txt" else "label"
    error = read_error(path, label_column=label)
    assert_located(error, path, bad_line, None, match="invalid UTF-8 .*0xe9")


@pytest.mark.parametrize("name", ["empty.tsv", "empty.txt", "empty.jsonl", "empty.csv.gz"])
def test_empty_file(tmp_path, name):
    path = write(tmp_path / name, b"")
    error = read_error(path)
    assert_located(error, path, None, None, match="empty")


def test_glob_matching_nothing(tmp_path):
    pattern = str(tmp_path / "nothing-*.tsv")
    error = read_error(pattern)
    assert_located(error, pattern, None, None, match="matches no files")


def test_a_directory_says_so_and_suggests_a_glob(tmp_path):
    data = tmp_path / "glue"
    data.mkdir()
    write(data / "train.tsv", "sentence\tlabel\ngood\t1\n")
    write(data / "dev.tsv", "sentence\tlabel\ngood\t1\n")
    write(data / "README.md", "about\n")
    for source in (str(data), data, [data]):
        error = read_error(source, **SENTENCE)
        assert_located(error, data, None, None, match="is a directory, not a file")
        assert str(data / "*.tsv") in str(error) and "no such file" not in str(error)
    assert read_examples(str(data / "*.tsv"), **SENTENCE).texts == ["good", "good"]


@pytest.fixture
def default_csv_field_limit():
    """A fresh process's csv field limit (128 KiB), restored afterwards."""
    previous = csv.field_size_limit(131072)
    yield
    csv.field_size_limit(previous)


@pytest.mark.parametrize("name", ["train.tsv", "train.csv", "train.csv.gz"])
def test_a_megabyte_text_field_is_read_like_any_other(tmp_path, name, default_csv_field_limit):
    long_text = ("word " * 200_000).strip() + " end"  # 1 MB, no quotes: tokenization truncates it later
    separator = "\t" if ".tsv" in name else ","
    path = write(tmp_path / name, f"sentence{separator}label\nshort{separator}0\n{long_text}{separator}1\n"
                                  f"after{separator}0\n")
    ex = read_examples(path, **SENTENCE)
    assert ex.texts == ["short", long_text, "after"] and ex.labels == ["0", "1", "0"]
    assert ex.locations == [(path, 2), (path, 3), (path, 4)]
    assert csv.field_size_limit() >= 2**31 - 1


def test_skip_bad_rows_skips_a_row_that_cannot_be_parsed(tmp_path):
    path = write(tmp_path / "train.csv", 'text,label\nfine,1\n"bad"quote,0\nalso fine,1\n')
    assert_located(read_error(path, label_column="label"), path, 3, None, match="cannot parse the row")
    with pytest.warns(UserWarning, match=r"skipped 1 bad row\(s\)") as record:
        ex = read_examples(path, label_column="label", skip_bad_rows=True)
    assert ex.texts == ["fine", "also fine"] and ex.locations == [(path, 2), (path, 4)]
    assert f"{path}, line 3" in str(record[0].message)


def test_skip_bad_rows_counts_them_in_one_warning(tmp_path):
    path = write(tmp_path / "train.tsv",
                 b"sentence\tlabel\ngood\t1\n\t0\nbad \xff\t1\nonly one field\nfine\t0\n")
    with pytest.warns(UserWarning, match=r"skipped 3 bad row\(s\)") as record:
        ex = read_examples(path, text_column="sentence", label_column="label", skip_bad_rows=True)
    assert ex.texts == ["good", "fine"] and ex.locations == [(path, 2), (path, 6)]
    message = str(record[0].message)
    assert f"{path}, line 3" in message and f"{path}, line 4" in message


def test_skipping_everything_is_still_an_error(tmp_path):
    path = write(tmp_path / "train.tsv", "sentence\tlabel\n\t1\n")
    with pytest.warns(UserWarning), pytest.raises(DataError, match="no usable rows"):
        read_examples(path, text_column="sentence", skip_bad_rows=True)


def test_check_text_files_names_the_bad_line_or_counts_it(tmp_path):
    good = write(tmp_path / "a.txt", "fine\n")
    bad = write(tmp_path / "b.txt.gz", b"fine\n\nstill fine\nbroken \xc3\x28\n")
    with pytest.raises(DataError) as info:
        sources.check_text_files([good, bad])
    assert_located(info.value, bad, 4, match="invalid UTF-8")
    with pytest.warns(UserWarning, match="skipped 1"):
        assert sources.check_text_files([good, bad], skip_bad_rows=True) == 1
    assert list(sources.file_documents(bad)) == [["fine"], ["still fine"]]


def test_docstring_examples():
    result = doctest.testmod(sources, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_files_on_an_object_store_read_like_local_ones(tmp_path):
    """ram:// stands in for gs://: a glob, a .gz file, line numbers in errors, and a directory named as a file."""
    import gzip

    import tensorflow as tf

    with tf.io.gfile.GFile("ram://sources-tests/data/train.tsv", "wb") as stream:
        stream.write(b"sentence\tlabel\na fine film\t1\ndull\t0\n")
    with tf.io.gfile.GFile("ram://sources-tests/data/more.tsv.gz", "wb") as stream:
        stream.write(gzip.compress(b"sentence\tlabel\nbright\t1\nbroken\n"))
    examples = read_examples("ram://sources-tests/data/train.tsv", text_column="sentence", label_column="label")
    assert examples.texts == ["a fine film", "dull"] and examples.locations[1] == ("ram://sources-tests/data/train.tsv", 3)
    with pytest.raises(DataError, match=r"more.tsv.gz, line 3"):
        read_examples("ram://sources-tests/data/*.tsv*", text_column="sentence", label_column="label")
    with pytest.raises(DataError, match=r"this is a directory, not a file; .*'ram://sources-tests/data/\*.tsv'"):
        read_examples("ram://sources-tests/data", text_column="sentence")
    with pytest.raises(DataError, match="no such file"):
        read_examples("ram://sources-tests/data/missing.tsv", text_column="sentence")
