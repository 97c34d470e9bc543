"""`ptft evaluate` on random tiny model dirs: metrics equal a direct computation, and bad data is named."""
import contextlib
import io
import json

import numpy as np
import pytest
from test_model_dir import write_tiny_model_dir

from ptft_keras.cli import main
from ptft_keras.errors import DataError
from ptft_keras.jobs.evaluate import evaluate
from ptft_keras.jobs.model_dir import load_model_dir

ROWS = [("a good film", "pos"), ("dull and boring", "neg"), ("fun fun fun", "pos"), ("the plot was awful", "neg"),
        ("not good", "neg"), ("great acting", "pos")]


def write_csv(path, rows, header=("sentence", "label")):
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_tiny_model_dir(tmp_path_factory.mktemp("evaluate") / "run", text_column="sentence")


def direct_predictions(directory, texts, sequence_length=16):
    model, tokenizer, _ = load_model_dir(directory)
    return np.asarray(model(tokenizer(texts, sequence_length=sequence_length))).argmax(-1)


def test_metrics_equal_a_direct_computation(tmp_path, model_dir):
    data = write_csv(tmp_path / "dev.csv", ROWS)
    report = evaluate(model_dir, data)  # text column "sentence" comes from the training config
    predicted = direct_predictions(model_dir, [t for t, _ in ROWS])
    gold = np.array([1 if label == "pos" else 0 for _, label in ROWS])
    assert report["count"] == len(ROWS) and report["sequence_length"] == 16
    assert report["metrics"]["accuracy"] == pytest.approx(np.mean(predicted == gold))
    matrix = np.zeros([2, 2], int)
    np.add.at(matrix, (gold, predicted), 1)
    assert report["confusion_matrix"]["matrix"] == matrix.tolist()


def test_cli_prints_a_table_then_one_json_line(tmp_path, model_dir):
    data = write_csv(tmp_path / "dev.csv", [(t, y) for t, y in ROWS], header=("review", "sentiment"))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["evaluate", "--model", str(model_dir), "--data", str(data), "--text-column", "review",
                     "--label-column", "sentiment", "--sequence-length", "8", "--output", str(tmp_path / "report")])
    assert code == 0, err.getvalue()
    lines = out.getvalue().strip().splitlines()
    metrics = json.loads(lines[-1])
    assert set(metrics) == {"accuracy", "f1", "micro_f1", "mcc"}
    assert any(line.split()[:1] == ["pos"] for line in lines[:-1])  # the per-class table is above it
    saved = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert saved["metrics"] == metrics and saved["sequence_length"] == 8


def test_unseen_label_names_file_line_and_column(tmp_path, model_dir):
    data = write_csv(tmp_path / "dev.csv", [("a good film", "pos"), ("meh", "neutral")])
    with pytest.raises(DataError, match="'neutral' is not in the label vocabulary") as error:
        evaluate(model_dir, data)
    assert (error.value.path, error.value.line, error.value.field) == (str(data), 3, "label")
    with pytest.warns(UserWarning, match="skipped 1 bad row"):
        assert evaluate(model_dir, data, skip_bad_rows=True)["count"] == 1


def test_empty_or_unlabelled_data_is_a_data_error(tmp_path, model_dir):
    with pytest.raises(DataError, match="no data rows") as error:
        evaluate(model_dir, write_csv(tmp_path / "empty.csv", []))
    assert error.value.path == str(tmp_path / "empty.csv")
    with pytest.raises(DataError, match="no column 'label'") as error:
        evaluate(model_dir, write_csv(tmp_path / "nolabel.csv", [("a good film",)], header=("sentence",)))
    assert (error.value.line, error.value.field) == (1, "label")


def test_regression_model(tmp_path):
    directory = write_tiny_model_dir(tmp_path / "run", task="regression", text_column="text", label_column="score")
    model, tokenizer, _ = load_model_dir(directory)
    rows = [("a good film", 4.5), ("dull", 1.0), ("fun plot", 3.5), ("awful", 0.5)]
    (tmp_path / "dev.jsonl").write_text("".join(json.dumps({"text": t, "score": y}) + "\n" for t, y in rows))
    report = evaluate(directory, tmp_path / "dev.jsonl")
    values = np.asarray(model(tokenizer([t for t, _ in rows], sequence_length=16)))[:, 0]
    assert report["metrics"]["mse"] == pytest.approx(np.mean((values - [y for _, y in rows]) ** 2), rel=1e-5)
    assert set(report["metrics"]) == {"pearson", "spearman", "mse"} and "per_class" not in report
