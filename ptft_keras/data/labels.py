"""Labels: the label vocabulary learned from training rows, and raw label values -> targets.

Targets per task: ``"classification"`` int32 class ids ``[N]``; ``"multilabel"`` float32 multi-hot
``[N, num_labels]`` (a field holds ``"a|b"``, a JSON list ``'["a", "b"]'`` or a Python list);
``"regression"`` float32 ``[N]``.

Example:
    >>> vocab = LabelVocabulary.learn(["pos", "neg", "pos"])
    >>> targets, kept = encode_targets(["neg", "pos"], [("dev.tsv", 2), ("dev.tsv", 3)],
    ...                                task="classification", vocabulary=vocab)
    >>> targets.tolist(), kept
    ([0, 1], [0, 1])
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ptft_keras.data.sources import BadRows
from ptft_keras.errors import ConfigError, DataError

TASKS = ("classification", "multilabel", "regression")
_SHOWN_LABELS = 10


def _label_key(label, **where) -> str:
    """The canonical string of a class label: ``1``, ``"1"`` and ``1.0`` are all ``"1"``."""
    if isinstance(label, bytes):
        label = label.decode("utf-8", errors="replace")
    if isinstance(label, str) and label.strip():
        return label.strip()
    if isinstance(label, (int, np.integer)) and not isinstance(label, (bool, np.bool_)):
        return str(int(label))
    if isinstance(label, (float, np.floating)) and float(label).is_integer():
        return str(int(label))
    raise DataError(f"a class label must be a non-empty string or an integer, got "
                    f"{type(label).__name__} {label!r}", **where)


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()


def split_multilabel(value, separator: str = "|", **where) -> list[str]:
    """The labels of one multi-label field.

    Example:
        >>> split_multilabel("sports| politics"), split_multilabel('["a", "b"]'), split_multilabel("[]")
        (['sports', 'politics'], ['a', 'b'], [])
    """
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as err:
                raise DataError(f"the label list is not valid JSON ({err.msg})", **where) from None
        else:
            value = [piece for piece in text.split(separator) if piece.strip()]
            if not value:
                raise DataError("empty label; write [] for a row with no labels", **where)
    if not isinstance(value, (list, tuple)):
        value = [value]
    return [_label_key(label, **where) for label in value]


def parse_regression_target(value, **where) -> float:
    """A finite float from a number or numeric string.

    Example:
        >>> parse_regression_target(" 3.5 ")
        3.5
    """
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    number = None
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            pass
    if number is None or not math.isfinite(number):
        raise DataError(f"the regression target {value!r} is not a finite number", **where)
    return number


class LabelVocabulary:
    """Class names <-> ids, learned from the training labels and saved with the model as JSON.

    Labels are kept as strings: ``1`` and ``"1"`` are the same class. Learned labels are sorted,
    numerically when all of them are integers (so ``"0", "1", ..., "10"`` keep their ids).

    Example:
        >>> vocab = LabelVocabulary.learn(["pos", "neg", "pos"])
        >>> vocab.labels, vocab.index("pos"), len(vocab)
        (['neg', 'pos'], 1, 2)
        >>> LabelVocabulary.learn([2, 10, 1]).labels
        ['1', '2', '10']
    """

    def __init__(self, labels: Iterable[Any]):
        self.labels = [_label_key(label) for label in labels]
        if not self.labels:
            raise ConfigError("a label vocabulary needs at least one label")
        duplicates = sorted({label for label in self.labels if self.labels.count(label) > 1})
        if duplicates:
            raise ConfigError(f"duplicate labels in the label vocabulary: {duplicates}")
        self._ids = {label: i for i, label in enumerate(self.labels)}

    @classmethod
    def learn(cls, raw_labels: Sequence[Any], *, multilabel: bool = False, separator: str = "|",
              locations: Sequence[tuple[str, int]] | None = None, field: str | None = None,
              skip_invalid: bool = False) -> "LabelVocabulary":
        """The sorted set of labels seen in ``raw_labels`` (multi-label fields are split).

        A value that is no label at all (e.g. ``1.5``) raises :class:`DataError` naming
        ``locations[i]`` and ``field``, or is ignored with ``skip_invalid`` (the row is then
        reported when the targets are encoded).
        """
        seen = set()
        kinds = {}  # "integer" | "text" -> [rows, first (path, line, label)]
        for i, value in enumerate(raw_labels):
            path, line = locations[i] if locations is not None else (None, None)
            where = {"path": path, "line": line, "field": field}
            try:
                labels = split_multilabel(value, separator, **where) if multilabel else [_label_key(value, **where)]
            except DataError:
                if not skip_invalid:
                    raise
                continue
            seen.update(labels)
            for label in labels:
                kind = kinds.setdefault("integer" if _is_int(label) else "text", [0, (path, line, label)])
                kind[0] += 1
        if len(kinds) == 2:
            _raise_mixed_kinds(kinds, field)
        numeric = all(_is_int(label) for label in seen)
        return cls(sorted(seen, key=(lambda label: int(label)) if numeric else None))

    def __len__(self) -> int:
        return len(self.labels)

    def __contains__(self, label) -> bool:
        try:
            return _label_key(label) in self._ids
        except DataError:
            return False

    def __eq__(self, other) -> bool:
        return isinstance(other, LabelVocabulary) and other.labels == self.labels

    def __repr__(self) -> str:
        return f"LabelVocabulary({self.labels!r})"

    def index(self, label, *, path=None, line: int | None = None, field: str | None = None) -> int:
        """The id of ``label``; an unknown label raises :class:`DataError` naming the row."""
        key = _label_key(label, path=path, line=line, field=field)
        if key not in self._ids:
            shown = ", ".join(map(repr, self.labels[:_SHOWN_LABELS]))
            more = ", ..." if len(self.labels) > _SHOWN_LABELS else ""
            raise DataError(f"label {key!r} is not in the label vocabulary ({len(self)} labels: "
                            f"{shown}{more}); fix the row or add the label to the training data",
                            path=path, line=line, field=field)
        return self._ids[key]

    def get_config(self) -> dict:
        return {"labels": list(self.labels)}

    @classmethod
    def from_config(cls, config: dict) -> "LabelVocabulary":
        return cls(config["labels"])

    def save(self, path) -> None:
        """Write ``{"labels": [...]}`` as JSON (e.g. ``labels.json`` beside the model)."""
        with open(path, "w", encoding="utf-8") as stream:
            json.dump(self.get_config(), stream, ensure_ascii=False, indent=1)

    @classmethod
    def load(cls, path) -> "LabelVocabulary":
        """Read a vocabulary written by :meth:`save`."""
        path = os.fspath(path)
        try:
            with open(path, encoding="utf-8") as stream:
                config = json.load(stream)
        except FileNotFoundError:
            raise DataError("no label vocabulary file; it is saved with the fine-tuned model",
                            path=path) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DataError(f"not a label vocabulary JSON file ({err})", path=path) from None
        if not isinstance(config, dict) or not isinstance(config.get("labels"), list):
            raise DataError('expected a JSON object {"labels": [...]}', path=path, field="labels")
        try:
            return cls.from_config(config)
        except (ConfigError, DataError) as err:
            raise DataError(str(err), path=path, field="labels") from None


def encode_targets(raw_labels: Sequence[Any], locations: Sequence[tuple[str, int]], *,
                   task: str = "classification", vocabulary: LabelVocabulary | None = None,
                   field: str | None = None, separator: str = "|",
                   bad_rows: BadRows | None = None) -> tuple[np.ndarray, list[int]]:
    """Targets for ``task`` and the indices of the rows kept.

    A bad label (unknown class, non-numeric regression target, ...) raises :class:`DataError`
    naming ``locations[i]`` and ``field``, or is counted and dropped when ``bad_rows`` skips.
    """
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    if task != "regression" and vocabulary is None:
        raise ConfigError(f"task {task!r} needs a label vocabulary")
    bad_rows = bad_rows or BadRows()
    targets, kept = [], []
    for i, (value, (path, line)) in enumerate(zip(raw_labels, locations)):
        where = {"path": path, "line": line, "field": field}
        try:
            if task == "classification":
                target = vocabulary.index(value, **where)
            elif task == "regression":
                target = parse_regression_target(value, **where)
            else:
                target = np.zeros(len(vocabulary), np.float32)
                target[[vocabulary.index(label, **where)
                        for label in split_multilabel(value, separator, **where)]] = 1.0
        except DataError as err:
            bad_rows.report(err)
            continue
        targets.append(target)
        kept.append(i)
    dtype = np.int32 if task == "classification" else np.float32
    shape = (0, len(vocabulary)) if task == "multilabel" and not targets else (len(targets),)
    return (np.asarray(targets, dtype) if targets else np.zeros(shape, dtype)), kept


def _raise_mixed_kinds(kinds: dict, field: str | None) -> None:
    """One column holding integer labels and text labels is almost always a mistake (``0``/``1`` beside
    ``neg``/``pos``): name the first row of the rarer kind and both kinds."""
    minority = min(kinds, key=lambda kind: (kinds[kind][0], kind))
    majority = "text" if minority == "integer" else "integer"
    path, line, label = kinds[minority][1]
    example = kinds[majority][1][2]
    raise DataError(
        f"labels of two kinds in one column: {kinds[majority][0]} {majority} labels (e.g. {example!r}) and "
        f"{kinds[minority][0]} {minority} labels, the first being {label!r} here; use one kind of label "
        "(map the others, or fix this row)", path=path, line=line, field=field,
    )
