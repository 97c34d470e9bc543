"""Evaluation metrics for the fine-tuning tasks, returning plain floats and dicts.

* Classification: `accuracy`, `f1` (macro/micro), `matthews_corrcoef`, `confusion_matrix` and
  `classification_report` (per-class precision/recall/F1/support + confusion matrix, for the
  CLI's table and JSON), all from one confusion matrix; `multilabel_f1` uses `keras.metrics.F1Score`.
* Regression: `pearson`, `spearman` (scipy), `regression_report`.
* NER: `entity_spans` / `entity_f1`, entity-level scores with the conlleval rules (exact type and
  both boundaries; accepts IOB2/BIO, IOB1 and IOBES tags), with per-type numbers.
* QA: `squad_scores`, exact match and F1 after the official SQuAD answer normalisation.
* `MaskedAccuracy`: a Keras training metric that skips label -100 (token classification).

Scores are fractions in [0, 1] (the official SQuAD script and conlleval print them x 100).
Empty inputs raise `DataError` instead of returning a misleading number.

Example:
    >>> report = classification_report([0, 1, 1, 2], [0, 1, 2, 2], ["neg", "neu", "pos"])
    >>> report["accuracy"], report["per_class"]["neu"]["recall"], report["confusion_matrix"]["matrix"][1]
    (0.75, 0.5, [0, 1, 1])
    >>> entity_f1([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "O", "B-ORG"]])["f1"]
    0.5
    >>> squad_scores(["the Eiffel Tower"], [["Eiffel tower", "tower"]])
    {'exact_match': 1.0, 'f1': 1.0, 'count': 1}
"""
from __future__ import annotations

import collections
import re
import string
from collections.abc import Sequence

import keras
import numpy as np
from keras import ops
from scipy import stats

from ptft_keras.errors import DataError

#: Label id that losses and metrics skip: pieces after a word's first, special tokens, padding.
IGNORE_INDEX = -100


@keras.saving.register_keras_serializable(package="ptft_keras")
class MaskedAccuracy(keras.metrics.SparseCategoricalAccuracy):
    """Sparse categorical accuracy over the positions whose label is not `ignore_index`.

    Example:
        >>> m = MaskedAccuracy()
        >>> m.update_state([[1, -100, 0]], np.eye(2)[[[1, 0, 1]]])
        >>> float(m.result())     # position 1 is skipped: 1 right out of 2
        0.5
    """

    def __init__(self, name="accuracy", dtype=None, ignore_index=IGNORE_INDEX):
        super().__init__(name=name, dtype=dtype)
        self.ignore_index = ignore_index

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.convert_to_tensor(y_true)
        valid = ops.not_equal(y_true, ops.cast(self.ignore_index, y_true.dtype))
        weight = ops.cast(valid, self.dtype)
        if sample_weight is not None:
            weight = weight * ops.cast(sample_weight, self.dtype)
        super().update_state(ops.where(valid, y_true, ops.zeros_like(y_true)), y_pred, weight)

    def get_config(self):
        return {**super().get_config(), "ignore_index": self.ignore_index}


# --- classification ---------------------------------------------------------------------------
def _paired(y_true, y_pred, what: str):
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.size == 0:
        raise DataError(f"cannot compute {what} on an empty evaluation set; check the eval file and its split")
    if y_true.shape != y_pred.shape:
        raise DataError(f"{what}: {y_true.shape} gold labels but {y_pred.shape} predictions")
    return y_true, y_pred


def confusion_matrix(y_true, y_pred, num_classes: int | None = None) -> np.ndarray:
    """``matrix[gold, predicted]`` counts over class ids ``0..num_classes-1``.

    Example:
        >>> confusion_matrix([0, 1, 1], [0, 0, 1]).tolist()
        [[1, 0], [1, 1]]
    """
    y_true, y_pred = _paired(y_true, y_pred, "a confusion matrix")
    y_true, y_pred = y_true.astype(np.int64).ravel(), y_pred.astype(np.int64).ravel()
    if num_classes is None:
        num_classes = int(max(y_true.max(), y_pred.max())) + 1
    for name, ids in (("gold label", y_true), ("prediction", y_pred)):
        bad = ids[(ids < 0) | (ids >= num_classes)]
        if bad.size:
            raise DataError(
                f"{name} id {int(bad[0])} is outside the {num_classes} known classes; "
                "a label unseen in training? Map labels with the model's label_names"
            )
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes**2).reshape(num_classes, num_classes)


def _per_class(matrix: np.ndarray):
    tp = np.diag(matrix).astype(float)
    predicted, support = matrix.sum(axis=0), matrix.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(tp), where=total > 0)
    return precision, recall, f1, support


def accuracy(y_true, y_pred) -> float:
    """Fraction of exact matches."""
    y_true, y_pred = _paired(y_true, y_pred, "accuracy")
    return float(np.mean(y_true == y_pred))


def f1(y_true, y_pred, average: str = "macro", num_classes: int | None = None) -> float:
    """Single-label F1. ``macro``: mean over the classes seen in gold or predictions (as
    scikit-learn); ``micro``: pooled counts (equals accuracy for single-label data).

    Example:
        >>> round(f1([0, 0, 1, 2], [0, 1, 1, 2]), 4)   # (2/3 + 2/3 + 1) / 3
        0.7778
    """
    matrix = confusion_matrix(y_true, y_pred, num_classes)
    if average == "micro":
        return float(np.trace(matrix) / matrix.sum())
    if average != "macro":
        raise ValueError(f"average must be 'macro' or 'micro', got {average!r}")
    _, _, scores, support = _per_class(matrix)
    seen = (support > 0) | (matrix.sum(axis=0) > 0)
    return float(scores[seen].mean())


def matthews_corrcoef(y_true, y_pred, num_classes: int | None = None) -> float:
    """Matthews correlation (multi-class form, as scikit-learn); 0 when undefined.

    Example:
        >>> round(matthews_corrcoef([1, 1, 0, 0], [1, 0, 0, 0]), 4)
        0.5774
    """
    matrix = confusion_matrix(y_true, y_pred, num_classes).astype(float)
    gold, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    n, correct = matrix.sum(), np.trace(matrix)
    covariance = correct * n - gold @ predicted
    denominator = np.sqrt((n**2 - predicted @ predicted) * (n**2 - gold @ gold))
    return float(covariance / denominator) if denominator > 0 else 0.0


def classification_report(y_true, y_pred, label_names: Sequence[str]) -> dict:
    """Everything the CLI prints for a classifier, as plain Python values (JSON-ready)."""
    matrix = confusion_matrix(y_true, y_pred, len(label_names))
    precision, recall, scores, support = _per_class(matrix)
    per_class = {
        name: {"precision": float(p), "recall": float(r), "f1": float(s), "support": int(n)}
        for name, p, r, s, n in zip(label_names, precision, recall, scores, support)
    }
    return {
        "accuracy": accuracy(y_true, y_pred),
        "macro_f1": f1(y_true, y_pred, "macro", len(label_names)),
        "micro_f1": f1(y_true, y_pred, "micro", len(label_names)),
        "mcc": matthews_corrcoef(y_true, y_pred, len(label_names)),
        "per_class": per_class,
        "confusion_matrix": {"labels": list(label_names), "matrix": matrix.tolist()},
        "count": int(matrix.sum()),
    }


def multilabel_f1(y_true, logits, average: str = "micro", threshold: float = 0.5) -> float:
    """F1 of multi-hot labels against sigmoid(logits) > threshold (`keras.metrics.F1Score`).

    Example:
        >>> multilabel_f1([[1, 0], [1, 1]], [[3.0, -3.0], [3.0, -3.0]])   # 2 of 3 positives found
        0.8
    """
    y_true, logits = _paired(y_true, logits, "multi-label F1")
    metric = keras.metrics.F1Score(average=average, threshold=threshold)
    metric.update_state(y_true.astype("float32"), keras.ops.sigmoid(logits.astype("float32")))
    return round(float(metric.result()), 6)


# --- regression -------------------------------------------------------------------------------
def pearson(y_true, y_pred) -> float:
    """Pearson correlation (NaN when either side is constant)."""
    y_true, y_pred = _paired(y_true, y_pred, "Pearson correlation")
    return float(stats.pearsonr(y_true.ravel(), y_pred.ravel()).statistic) if _varies(y_true, y_pred) else float("nan")


def spearman(y_true, y_pred) -> float:
    """Spearman rank correlation, ties averaged (NaN when either side is constant)."""
    y_true, y_pred = _paired(y_true, y_pred, "Spearman correlation")
    return float(stats.spearmanr(y_true.ravel(), y_pred.ravel()).statistic) if _varies(y_true, y_pred) else float("nan")


def _varies(*arrays) -> bool:
    return all(np.ptp(a) > 0 for a in arrays) and all(a.size > 1 for a in arrays)


def regression_report(y_true, y_pred) -> dict:
    """Pearson, Spearman and mean squared error (STS-B style)."""
    y_true, y_pred = _paired(np.ravel(y_true), np.ravel(y_pred), "regression metrics")
    return {
        "pearson": pearson(y_true, y_pred),
        "spearman": spearman(y_true, y_pred),
        "mse": float(np.mean((y_true - y_pred) ** 2)),
        "count": int(y_true.size),
    }


# --- named entities (conlleval) ---------------------------------------------------------------
def _split_tag(tag: str) -> tuple[str, str]:
    if tag == "O":
        return "O", ""
    prefix, dash, kind = tag.partition("-")
    if not dash or prefix not in ("B", "I", "E", "S") or not kind:
        raise DataError(f"tag {tag!r} is not 'O' or B-/I-/E-/S- followed by a type", field="tag")
    return prefix, kind


def _chunk_ends(prev_tag, tag, prev_type, kind) -> bool:
    return (
        prev_tag in ("E", "S")
        or (prev_tag in ("B", "I") and tag in ("B", "S", "O"))
        or (prev_tag != "O" and prev_type != kind)
    )


def _chunk_starts(prev_tag, tag, prev_type, kind) -> bool:
    return (
        tag in ("B", "S")
        or (prev_tag in ("E", "S", "O") and tag in ("E", "I"))
        or (tag != "O" and prev_type != kind)
    )


def entity_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """``(type, first, last)`` of each entity, by conlleval's chunk rules.

    An I- tag after O or after another type opens an entity (IOB1 and lenient IOB2 alike);
    B- always opens one.

    Example:
        >>> entity_spans(["B-PER", "I-PER", "I-LOC", "O", "I-ORG", "B-ORG"])
        [('PER', 0, 1), ('LOC', 2, 2), ('ORG', 4, 4), ('ORG', 5, 5)]
    """
    spans, start = [], 0
    prev_tag, prev_type = "O", ""
    for i, raw in enumerate(list(tags) + ["O"]):
        tag, kind = _split_tag(raw)
        if _chunk_ends(prev_tag, tag, prev_type, kind):
            spans.append((prev_type, start, i - 1))
        if _chunk_starts(prev_tag, tag, prev_type, kind):
            start = i
        prev_tag, prev_type = tag, kind
    return spans


def _prf(correct: int, predicted: int, gold: int) -> dict:
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f}


def entity_f1(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict:
    """Entity-level precision/recall/F1 (conlleval), overall and per type, plus token accuracy.

    An entity counts as correct only with the same type and both boundaries.
    """
    if len(gold) == 0 or sum(len(s) for s in gold) == 0:
        raise DataError("cannot score NER on an empty evaluation set; check the eval file and its split")
    if len(gold) != len(predicted):
        raise DataError(f"{len(gold)} gold sentences but {len(predicted)} predicted")
    counts = collections.defaultdict(lambda: [0, 0, 0])  # type -> correct, predicted, gold
    tokens = right = 0
    for i, (gold_tags, predicted_tags) in enumerate(zip(gold, predicted)):
        if len(gold_tags) != len(predicted_tags):
            raise DataError(f"sentence {i + 1}: {len(gold_tags)} gold tags but {len(predicted_tags)} predicted")
        gold_spans, predicted_spans = set(entity_spans(gold_tags)), set(entity_spans(predicted_tags))
        for kind, *_ in gold_spans:
            counts[kind][2] += 1
        for span in predicted_spans:
            counts[span[0]][1] += 1
            counts[span[0]][0] += span in gold_spans
        tokens += len(gold_tags)
        right += sum(g == p for g, p in zip(gold_tags, predicted_tags))
    totals = [sum(c[k] for c in counts.values()) for k in range(3)]
    return {
        **_prf(*totals),
        "accuracy": right / tokens,
        "per_type": {kind: {**_prf(*c), "support": c[2]} for kind, c in sorted(counts.items())},
        "count": totals[2],
    }


# --- extractive QA (SQuAD) --------------------------------------------------------------------
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """The official SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _token_f1(prediction: str, gold: str) -> float:
    predicted_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not predicted_tokens or not gold_tokens:  # SQuAD 2.0 rule for no-answer
        return float(predicted_tokens == gold_tokens)
    same = sum((collections.Counter(predicted_tokens) & collections.Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: Sequence[str], references: Sequence[Sequence[str] | str]) -> dict:
    """Exact match and token F1, each the best over an example's gold answers, averaged."""
    if len(predictions) == 0:
        raise DataError("cannot score QA on an empty evaluation set; check the eval file and its split")
    if len(predictions) != len(references):
        raise DataError(f"{len(predictions)} predictions for {len(references)} examples")
    exact = total_f1 = 0.0
    for i, (prediction, golds) in enumerate(zip(predictions, references)):
        golds = [golds] if isinstance(golds, str) else list(golds)
        if not golds:
            raise DataError(f"example {i + 1} has no gold answer", field="answers")
        exact += max(float(normalize_answer(prediction) == normalize_answer(g)) for g in golds)
        total_f1 += max(_token_f1(prediction, g) for g in golds)
    return {"exact_match": exact / len(predictions), "f1": total_f1 / len(predictions), "count": len(predictions)}
