"""Label vocabulary and targets: learned from train, saved, and never a silent mislabel."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ptft_keras.data.labels import (LabelVocabulary, encode_targets, parse_regression_target,
                                    split_multilabel)
from ptft_keras.data.sources import BadRows
from ptft_keras.errors import ConfigError, DataError

WHERE = [("dev.tsv", 2), ("dev.tsv", 3), ("dev.tsv", 4)]


def test_learned_vocabulary_is_sorted_and_numeric_labels_keep_their_order():
    assert LabelVocabulary.learn(["pos", "neg", "pos", "neutral"]).labels == ["neg", "neutral", "pos"]
    assert LabelVocabulary.learn(["10", "2", "0", "1"]).labels == ["0", "1", "2", "10"]
    assert LabelVocabulary.learn([1, 0, -1]).labels == ["-1", "0", "1"]


def test_string_and_int_labels_are_the_same_class():
    vocab = LabelVocabulary.learn(["0", "1"])  # as read from a TSV
    assert vocab.index(1) == vocab.index("1") == vocab.index(np.int64(1)) == vocab.index(1.0) == 1
    assert 0 in vocab and "2" not in vocab


def test_save_and_load_round_trip(tmp_path):
    vocab = LabelVocabulary.learn(["négatif", "positif"])
    path = tmp_path / "labels.json"
    vocab.save(path)
    assert json.loads(path.read_text(encoding="utf-8")) == {"labels": ["négatif", "positif"]}
    assert LabelVocabulary.load(path) == vocab
    assert LabelVocabulary.from_config(vocab.get_config()) == vocab


@pytest.mark.parametrize("content, match", [("{not json", "not a label vocabulary"),
                                            ('{"names": []}', "expected a JSON object"),
                                            ('{"labels": ["a", "a"]}', "duplicate")])
def test_load_rejects_bad_files(tmp_path, content, match):
    path = tmp_path / "labels.json"
    path.write_text(content)
    with pytest.raises(DataError, match=match) as info:
        LabelVocabulary.load(path)
    assert info.value.path == str(path)


def test_load_missing_file(tmp_path):
    with pytest.raises(DataError, match="no label vocabulary file"):
        LabelVocabulary.load(tmp_path / "nope.json")


def test_unknown_label_names_file_line_and_field():
    vocab = LabelVocabulary(["neg", "pos"])
    with pytest.raises(DataError) as info:
        encode_targets(["pos", "maybe"], WHERE[:2], vocabulary=vocab, field="label")
    error = info.value
    assert (error.path, error.line, error.field) == ("dev.tsv", 3, "label")
    assert str(error).startswith("dev.tsv, line 3, field 'label': label 'maybe' is not in the")
    assert "'neg', 'pos'" in str(error)


def test_classification_targets():
    vocab = LabelVocabulary(["neg", "pos"])
    targets, kept = encode_targets(["pos", "neg", "pos"], WHERE, vocabulary=vocab)
    assert targets.dtype == np.int32 and targets.tolist() == [1, 0, 1] and kept == [0, 1, 2]


def test_multilabel_fields_and_targets():
    assert split_multilabel("a|b") == ["a", "b"]
    assert split_multilabel(' ["a", 3] ') == ["a", "3"]
    assert split_multilabel(["x"]) == ["x"]
    assert split_multilabel("x;y", separator=";") == ["x", "y"]
    raw = ["sports|politics", '["tech"]', "[]"]
    vocab = LabelVocabulary.learn(raw, multilabel=True)
    assert vocab.labels == ["politics", "sports", "tech"]
    targets, _ = encode_targets(raw, WHERE, task="multilabel", vocabulary=vocab)
    assert targets.dtype == np.float32
    assert targets.tolist() == [[1, 1, 0], [0, 0, 1], [0, 0, 0]]


@pytest.mark.parametrize("value", ["|", '["a", ', ""])
def test_bad_multilabel_field(value):
    with pytest.raises(DataError) as info:
        split_multilabel(value, path="x.csv", line=9, field="tags")
    assert (info.value.path, info.value.line, info.value.field) == ("x.csv", 9, "tags")


def test_regression_targets_and_non_numeric_values():
    targets, _ = encode_targets(["3.5", 2, " -1e-1 "], WHERE, task="regression")
    assert targets.dtype == np.float32 and np.allclose(targets, [3.5, 2.0, -0.1])
    for bad in ["high", "nan", "inf", True]:
        with pytest.raises(DataError, match="not a finite number") as info:
            encode_targets(["1", bad], WHERE[:2], task="regression", field="score")
        assert (info.value.line, info.value.field) == (3, "score")
    assert parse_regression_target(np.float64(0.25)) == 0.25


def test_bad_labels_are_skipped_and_counted():
    vocab = LabelVocabulary(["neg", "pos"])
    bad_rows = BadRows(skip=True)
    targets, kept = encode_targets(["pos", "maybe", "neg"], WHERE, vocabulary=vocab,
                                   bad_rows=bad_rows)
    assert targets.tolist() == [1, 0] and kept == [0, 2] and bad_rows.count == 1
    with pytest.warns(UserWarning, match=r"(?s)skipped 1 bad row.*dev.tsv, line 3"):
        bad_rows.warn()


def test_a_float_class_label_is_refused_with_its_location():
    with pytest.raises(DataError, match="non-empty string or an integer") as info:
        LabelVocabulary.learn(["a", 1.5], locations=WHERE[:2], field="label")
    assert info.value.line == 3
    assert LabelVocabulary.learn(["a", 1.5], skip_invalid=True).labels == ["a"]


def test_config_errors():
    with pytest.raises(ConfigError):
        LabelVocabulary([])
    with pytest.raises(ConfigError, match="unknown task"):
        encode_targets([], [], task="ranking")
    with pytest.raises(ConfigError, match="needs a label vocabulary"):
        encode_targets([], [], task="classification")


def test_mixed_label_kinds_in_one_column_name_the_first_row_of_the_rarer_kind():
    labels = ["0", "1", "1", "neg", "0", "pos", "1"]
    locations = [("train.tsv", line) for line in range(2, 2 + len(labels))]
    with pytest.raises(DataError) as error:
        LabelVocabulary.learn(labels, locations=locations, field="label")
    message = str(error.value)
    assert message.startswith("train.tsv, line 5, field 'label'")
    assert "5 integer labels" in message and "2 text labels" in message and "'neg'" in message
    assert LabelVocabulary.learn(["0", 1, "1"]).labels == ["0", "1"]  # one kind, whatever the types
