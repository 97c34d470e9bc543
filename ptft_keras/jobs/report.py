"""The final report of a fine-tuning or evaluation run: JSON, a plain-text table, and a PNG of the curves.

`task_report` scores a model's logits against the targets with `ptft_keras.training.metrics` and
gathers the summary metrics, per-class precision/recall/F1/support, the confusion matrix and the
training history; `format_report` renders it as plain text; `write_report` writes `metrics.json`,
`report.txt` and `curves.png` into a directory.

Summary metrics per task (the keys `ptft evaluate` prints as JSON):
    classification  ``accuracy``, ``f1`` (macro), ``micro_f1``, ``mcc``
    multilabel      ``f1`` (macro over labels), ``micro_f1``, ``subset_accuracy`` (all labels right)
    regression      ``pearson``, ``spearman``, ``mse``
Multi-label per-class numbers score each label as its own yes/no decision. The confusion matrix
has the true labels as rows and the predicted labels as columns.

Example:
    >>> import numpy as np
    >>> from ptft_keras.jobs.report import task_report, format_report
    >>> logits = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [3.0, 0.0]])
    >>> report = task_report("classification", [0, 1, 1, 0], logits, ["neg", "pos"])
    >>> report["metrics"]["accuracy"], report["per_class"]["pos"]["recall"], report["confusion_matrix"]["matrix"]
    (0.75, 0.5, [[2, 0], [1, 1]])
    >>> print(format_report(report).splitlines()[0])
    accuracy 0.7500  f1 0.7333  micro_f1 0.7500  mcc 0.5774
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ptft_keras.training import metrics as task_metrics
from ptft_keras.jobs.model_dir import CURVES_FILE, METRICS_FILE, REPORT_FILE, write_json


def _classification(y_true, logits, names) -> dict:
    details = task_metrics.classification_report(y_true, np.argmax(logits, axis=-1), names)
    return {
        "metrics": {k: details[k] for k in ("accuracy", "macro_f1", "micro_f1", "mcc")},
        "per_class": details["per_class"],
        "confusion_matrix": details["confusion_matrix"],
        "count": details["count"],
    }


def _multilabel(y_true, logits, names, threshold: float) -> dict:
    y_true = np.asarray(y_true).astype(np.int64)
    # sigmoid(logit) >= threshold  <=>  logit >= log(threshold / (1 - threshold))
    y_pred = (np.asarray(logits) >= np.log(threshold / (1.0 - threshold))).astype(np.int64)
    per_class = {
        name: task_metrics.classification_report(y_true[:, j], y_pred[:, j], ["no", "yes"])["per_class"]["yes"]
        for j, name in enumerate(names)
    }
    return {
        "metrics": {
            "macro_f1": task_metrics.multilabel_f1(y_true, logits, "macro", threshold),
            "micro_f1": task_metrics.multilabel_f1(y_true, logits, "micro", threshold),
            "subset_accuracy": float(np.mean(np.all(y_true == y_pred, axis=1))),
        },
        "per_class": per_class,
        "count": int(len(y_true)),
    }


def _regression(y_true, logits) -> dict:
    values = np.asarray(logits, np.float64)
    values = values[:, 0] if values.ndim == 2 and values.shape[1] == 1 else values
    details = task_metrics.regression_report(np.asarray(y_true, np.float64), values)
    return {"metrics": {k: details[k] for k in ("pearson", "spearman", "mse")}, "count": details["count"]}


def task_report(task: str, y_true, logits, label_names=(), *, threshold: float = 0.5, history: dict | None = None,
                **context) -> dict:
    """Score `logits` against `y_true` for `task`; a JSON-ready dict (see the module docstring).

    `y_true` holds class ids `[N]` (classification), multi-hot rows `[N, C]` (multilabel) or values
    (regression). `context` holds anything to keep with the numbers (data file, sequence length, ...).
    """
    names = [str(n) for n in label_names]
    if task == "classification":
        scored = _classification(y_true, logits, names)
    elif task == "multilabel":
        scored = _multilabel(y_true, logits, names, threshold)
    else:
        scored = _regression(y_true, logits)
    summary = scored.pop("metrics")
    if "macro_f1" in summary:  # "f1" is the macro average, the number GLUE-style tables quote
        summary = {("f1" if k == "macro_f1" else k): v for k, v in summary.items()}
    report = {"task": task, **context, "metrics": {k: _number(v) for k, v in summary.items()}, **scored}
    if history:
        report["history"] = {k: [_number(v) for v in values] for k, values in history.items()}
    return report


def _number(value):
    value = float(value)
    return round(value, 6) if np.isfinite(value) else None


def _table(header, rows) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda row: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths)))  # noqa: E731
    return [fmt(header), *map(fmt, rows)]


def format_report(report: dict) -> str:
    """Plain text: summary metrics, the per-class table and the confusion matrix (when present)."""
    metrics = report.get("metrics", {})
    lines = ["  ".join(f"{k} {v:.4f}" if v is not None else f"{k} n/a" for k, v in metrics.items())]
    if "per_class" in report:
        rows = [
            [name, f"{r['precision']:.4f}", f"{r['recall']:.4f}", f"{r['f1']:.4f}", r["support"]]
            for name, r in report["per_class"].items()
        ]
        lines += ["", *_table(["class", "precision", "recall", "f1", "support"], rows)]
    if "confusion_matrix" in report:
        names = report["confusion_matrix"]["labels"]
        rows = [[name, *counts] for name, counts in zip(names, report["confusion_matrix"]["matrix"])]
        lines += ["", "confusion matrix (rows: true label, columns: predicted label)"]
        lines += _table(["true \\ predicted", *names], rows)
    return "\n".join(lines)


def plot_curves(history: dict, path, steps: dict | None = None) -> Path | None:
    """Save one panel per quantity (loss, accuracy, ...) with its training and validation curves, and first
    a panel of the training loss per optimizer step when `steps` (``{"step": [...], "loss": [...]}``) has
    points, so even a one-epoch run shows how the loss moved.

    Returns the path, or None when there is nothing to plot.

    Example:
        >>> plot_curves({"loss": [0.7, 0.4], "val_loss": [0.6, 0.5]}, "/tmp/curves.png")  # doctest: +SKIP
        PosixPath('/tmp/curves.png')
    """
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in tests
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    names = [k for k in history if not k.startswith("val_") and k not in ("learning_rate", "lr")]
    names += [k[4:] for k in history if k.startswith("val_") and k[4:] not in history]
    has_steps = bool(steps and steps.get("step"))
    if not has_steps and (not names or not any(len(v) for v in history.values())):
        return None
    panels = len(names) + has_steps
    fig, axes = plt.subplots(1, panels, figsize=(4.5 * panels, 3.5), squeeze=False)
    if has_steps:
        ax = axes[0][0]
        ax.plot(steps["step"], steps["loss"], label="train")
        ax.set_title("loss per step")
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
    for ax, name in zip(axes[0][int(has_steps):], names):
        for key, label in ((name, "train"), (f"val_{name}", "validation")):
            if history.get(key):
                epochs = np.arange(1, len(history[key]) + 1)
                ax.plot(epochs, history[key], marker="o", label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def write_report(directory, report: dict) -> dict[str, Path]:
    """Write `metrics.json`, `report.txt` and (when there is a history) `curves.png`; return their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"metrics": directory / METRICS_FILE, "report": directory / REPORT_FILE}
    write_json(paths["metrics"], report)
    paths["report"].write_text(format_report(report) + "\n", encoding="utf-8")
    curves = plot_curves(report.get("history") or {}, directory / CURVES_FILE, report.get("steps"))
    if curves is not None:
        paths["curves"] = curves
    return paths


def print_evaluation(report: dict, headline: str, output=None) -> None:
    """What `ptft evaluate` prints: a headline, the table, where the report went (with `output`), and the
    metrics as one JSON object on the last line (the contract scripts parse).

    Example:
        >>> print_evaluation({"task": "regression", "metrics": {"pearson": 0.9}}, "evaluated m on d")
        evaluated m on d
        ...
        {"pearson": 0.9}
    """
    import json

    print(headline)
    print(format_report(report))
    if output:
        paths = write_report(output, report)
        print("report written to " + ", ".join(str(p) for p in paths.values()))
    print(json.dumps(report["metrics"]))
