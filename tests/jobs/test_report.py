import json

import numpy as np
import pytest

from ptft_keras.errors import DataError
from ptft_keras.jobs.report import format_report, plot_curves, task_report, write_report

NAMES = ["neg", "neu", "pos"]
Y_TRUE = [0, 0, 0, 1, 1, 2, 2, 2, 2, 2]
Y_PRED = [0, 0, 1, 1, 2, 2, 2, 2, 0, 2]


def logits_for(predicted, num_classes=3):
    """Logits whose argmax is `predicted` (with varying margins)."""
    logits = np.zeros([len(predicted), num_classes], np.float32)
    logits[np.arange(len(predicted)), predicted] = 1.0 + np.arange(len(predicted))
    return logits


def test_classification_numbers_by_hand():
    report = task_report("classification", Y_TRUE, logits_for(Y_PRED), NAMES)
    assert report["confusion_matrix"] == {"labels": NAMES, "matrix": [[2, 1, 0], [0, 1, 1], [1, 0, 4]]}
    pos = report["per_class"]["pos"]  # 4 of 5 predicted pos are right, 4 of 5 true pos found
    assert (pos["precision"], pos["recall"], pos["support"]) == (0.8, 0.8, 5)
    assert pos["f1"] == pytest.approx(0.8)
    metrics = report["metrics"]
    assert metrics["accuracy"] == 0.7
    assert metrics["f1"] == pytest.approx((2 / 3 + 0.5 + 0.8) / 3, abs=1e-6)  # macro
    assert set(metrics) == {"accuracy", "f1", "micro_f1", "mcc"}
    assert report["count"] == 10


def test_classification_matches_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    report = task_report("classification", y_true, logits_for(y_pred, 4), list("abcd"))
    expected = sk.classification_report(y_true, y_pred, output_dict=True, zero_division=0)
    for i, name in enumerate("abcd"):
        assert report["per_class"][name]["f1"] == pytest.approx(expected[str(i)]["f1-score"], abs=1e-6)
    assert report["metrics"]["f1"] == pytest.approx(expected["macro avg"]["f1-score"], abs=1e-6)
    assert report["metrics"]["mcc"] == pytest.approx(sk.matthews_corrcoef(y_true, y_pred), abs=1e-6)


def test_multilabel_scores_each_label_as_yes_no():
    y_true = np.array([[1, 0], [1, 1], [0, 1]])
    logits = np.array([[2.0, -2.0], [-2.0, 2.0], [2.0, 2.0]])  # predicted [1,0], [0,1], [1,1]
    report = task_report("multilabel", y_true, logits, ["a", "b"])
    assert report["per_class"]["a"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert report["per_class"]["b"]["precision"] == 1.0
    assert report["metrics"]["subset_accuracy"] == pytest.approx(1 / 3, abs=1e-6)
    assert report["metrics"]["micro_f1"] == pytest.approx(0.75, abs=1e-6)  # tp 3, fp 1, fn 1
    assert "confusion_matrix" not in report


def test_regression_report_has_only_metrics():
    report = task_report("regression", [1.0, 2.0, 3.0], np.array([[1.1], [1.9], [3.2]]))
    assert report["metrics"]["pearson"] > 0.99 and report["metrics"]["mse"] == pytest.approx(0.02, abs=1e-6)
    assert "per_class" not in report
    constant = task_report("regression", [1.0, 2.0], np.array([[1.0], [1.0]]))
    assert constant["metrics"]["pearson"] is None  # undefined, written as JSON null
    assert "pearson n/a" in format_report(constant)


def test_empty_evaluation_set_is_a_data_error():
    with pytest.raises(DataError, match="empty"):
        task_report("classification", [], np.zeros([0, 2]), ["a", "b"])


def test_text_table_holds_per_class_rows_and_the_matrix():
    text = format_report(task_report("classification", Y_TRUE, logits_for(Y_PRED), NAMES))
    lines = text.splitlines()
    assert lines[0].startswith("accuracy 0.7000  f1 0.6556")
    pos_row = next(line for line in lines if line.startswith("pos "))
    assert pos_row.split() == ["pos", "0.8000", "0.8000", "0.8000", "5"]
    header = next(i for i, line in enumerate(lines) if line.startswith("true \\ predicted"))
    assert [row.split() for row in lines[header + 1 :]] == [["neg", "2", "1", "0"], ["neu", "0", "1", "1"], ["pos", "1", "0", "4"]]


def test_write_report_files(tmp_path):
    history = {"loss": [0.9, 0.5], "val_loss": [0.8, 0.6], "accuracy": [0.5, 0.8], "val_accuracy": [0.6, 0.7],
               "learning_rate": [1e-4, 5e-5]}
    report = task_report("classification", Y_TRUE, logits_for(Y_PRED), NAMES, history=history, data="dev.tsv")
    paths = write_report(tmp_path, report)
    assert set(paths) == {"metrics", "report", "curves"}
    saved = json.loads(paths["metrics"].read_text())
    assert saved["data"] == "dev.tsv" and saved["confusion_matrix"]["labels"] == NAMES
    assert saved["history"]["val_accuracy"] == [0.6, 0.7]
    assert paths["curves"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "confusion matrix" in paths["report"].read_text()


def test_no_history_no_png(tmp_path):
    assert plot_curves({}, tmp_path / "c.png") is None
    paths = write_report(tmp_path, task_report("regression", [1.0, 2.0], np.array([1.0, 2.5])))
    assert "curves" not in paths and not (tmp_path / "curves.png").exists()
