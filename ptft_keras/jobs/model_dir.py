"""Save and load a fine-tuned model directory: everything needed to evaluate, predict or export it.

Layout (written by `ptft finetune --output DIR`; read by `ptft evaluate/predict/export --model DIR`):

    DIR/
      model.keras           the task model (Keras 3 archive: backbone + head, weights and config)
      tokenizer/            the tokenizer files (`Tokenizer.save_pretrained`: vocab.txt, tokenizer_config.json)
      labels.json           {"task": "classification", "labels": ["neg", "pos"]} - label names in id order
                            (an empty list for regression); readable by `LabelVocabulary.load`
      training_config.json  the resolved `FinetuneConfig` as JSON, with the chosen `sequence_length`,
                            `truncation` (+ `head_tokens`, `window_stride`, `window_pooling`),
                            `text_normalization`, and the text/label column names
      metrics.json          final validation metrics (`training.report`)
      report.txt            the same as a plain table: per-class precision/recall/F1, confusion matrix
      curves.png            training curves (loss and metrics per epoch)

`load_model_dir(dir) -> (model, tokenizer, info)` is the stable entry point; `info` is a `ModelInfo`.

Example:
    >>> from ptft_keras.jobs.model_dir import load_model_dir
    >>> model, tokenizer, info = load_model_dir("runs/sst2")  # doctest: +SKIP
    >>> info.task, info.label_names, info.sequence_length  # doctest: +SKIP
    ('classification', ['0', '1'], 64)
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from ptft_keras import storage
from ptft_keras.errors import CheckpointError
from ptft_keras.jobs.kinds import TASKS

MODEL_FILE = "model.keras"
TOKENIZER_DIR = "tokenizer"
LABELS_FILE = "labels.json"
CONFIG_FILE = "training_config.json"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.txt"
CURVES_FILE = "curves.png"


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What a fine-tuned model directory says about how its model must be fed.

    `training_config` is the whole resolved `FinetuneConfig` as a dict; the fields above it are the
    ones every consumer needs, lifted out with defaults for older directories.
    """

    directory: str
    task: str
    label_names: list[str]
    sequence_length: int | None = None
    truncation: str = "head"
    head_tokens: int = 128
    window_stride: int | None = None
    window_pooling: str = "mean"
    text_normalization: str | None = None
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    training_config: dict = dataclasses.field(default_factory=dict)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


def is_model_dir(path) -> bool:
    """True when `path` is a directory written by `save_model_dir` (it has `model.keras` and `labels.json`).

    Example:
        >>> is_model_dir("/nonexistent")
        False
    """
    if storage.is_remote(path):
        return storage.isfile(f"{str(path).rstrip('/')}/{MODEL_FILE}") and storage.isfile(
            f"{str(path).rstrip('/')}/{LABELS_FILE}")
    path = Path(path)
    return (path / MODEL_FILE).is_file() and (path / LABELS_FILE).is_file()


def write_json(path, data) -> None:
    """Write `data` as indented UTF-8 JSON (shared by the model directory and the reports)."""
    Path(path).write_text(json.dumps(data, indent=2, ensure_ascii=False, default=_jsonable) + "\n", encoding="utf-8")


def _jsonable(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _read_json(path, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"no {what}; the fine-tuned model directory is incomplete (re-run ptft finetune)",
                              path=path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"the {what} is not valid JSON ({exc})", path=path) from None


def save_model_dir(directory, model, tokenizer, *, task: str, label_names, training_config: dict) -> Path:
    """Write the model, tokenizer, labels and training config into `directory` (created if needed).

    Example:
        >>> save_model_dir("runs/demo", model, tokenizer, task="classification",
        ...                label_names=["neg", "pos"], training_config={"sequence_length": 64})  # doctest: +SKIP
    """
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"cannot create the output directory: {exc.strerror or exc}", path=directory) from None
    _without_optimizer(model).save(directory / MODEL_FILE)
    tokenizer.save_pretrained(directory / TOKENIZER_DIR)
    write_json(directory / LABELS_FILE, {"task": task, "labels": [str(n) for n in label_names]})
    write_json(directory / CONFIG_FILE, training_config)
    return directory


def _without_optimizer(model):
    """`model`, or an uncompiled copy with its weights when it is compiled: `model.keras` holds no
    optimizer state (Adam's two slots per weight would triple the file; the directory is for
    inference, evaluation and export)."""
    if getattr(model, "optimizer", None) is not None:
        weights = model.get_weights()
        model = type(model).from_config(model.get_config())
        model.set_weights(weights)
    if not model.built:  # task models build their layers in __init__; this only records it
        model.build(None)
    return model


def read_model_info(directory) -> ModelInfo:
    """Read `labels.json` and `training_config.json` of a model directory, without loading the model.

    Example:
        >>> read_model_info("runs/sst2").label_names  # doctest: +SKIP
        ['0', '1']
    """
    directory = storage.local_copy(directory, "model")  # gs://...: fetched once per process
    check_model_dir(directory)
    labels = _read_json(directory / LABELS_FILE, "label file")
    config = _read_json(directory / CONFIG_FILE, "training config")
    if not isinstance(labels, dict) or not isinstance(labels.get("labels"), list):
        raise CheckpointError('expected {"task": ..., "labels": [...]}', path=directory / LABELS_FILE, field="labels")
    if not isinstance(config, dict):
        raise CheckpointError(f"expected a JSON object of training options, found a JSON {type(config).__name__}; "
                              "re-run ptft finetune to rewrite it", path=directory / CONFIG_FILE)
    task = labels.get("task") or config.get("task", "classification")
    if task not in TASKS:
        where = LABELS_FILE if labels.get("task") else CONFIG_FILE
        raise CheckpointError(f"task {task!r} is not one of {', '.join(TASKS)}; the model directory was edited or "
                              "written by something else", path=directory / where, field="task")
    own = ("directory", "task", "label_names", "training_config")
    lifted = {f.name: config[f.name] for f in dataclasses.fields(ModelInfo) if f.name in config and f.name not in own}
    for name in ("sequence_length", "head_tokens", "window_stride"):
        value = lifted.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise CheckpointError(f"{name} must be a positive whole number, found {value!r}",
                                  path=directory / CONFIG_FILE, field=name)
    return ModelInfo(
        directory=str(directory),
        task=task,
        label_names=[str(n) for n in labels["labels"]],
        training_config=config,
        **lifted,
    )


def check_model_dir(directory) -> None:
    """Raise CheckpointError saying what `directory` is instead, when it is not a fine-tuned model directory."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError("no such directory; pass the --output directory of `ptft finetune`", path=directory)
    if is_model_dir(directory):
        return
    if (directory / "config.json").is_file():
        raise CheckpointError(
            "this is a pretrained checkpoint, not a fine-tuned model directory (no model.keras / labels.json); "
            "fine-tune it first: ptft finetune --model " + str(directory) + " --train FILE --output DIR",
            path=directory,
        )
    missing = [name for name in (MODEL_FILE, LABELS_FILE) if not (directory / name).is_file()]
    raise CheckpointError(
        f"not a fine-tuned model directory: missing {', '.join(missing)}; pass the --output directory of "
        "`ptft finetune`",
        path=directory,
    )


def load_model_dir(directory, *, compile: bool = False):  # noqa: A002 - mirrors keras.saving.load_model
    """Load `(model, tokenizer, info)` from a directory written by `save_model_dir`.

    Example:
        >>> model, tokenizer, info = load_model_dir("runs/sst2")  # doctest: +SKIP
    """
    import keras

    from ptft_keras.data.tokenizer import Tokenizer

    info = read_model_info(directory)
    directory = storage.local_copy(directory, "model")
    _register_keras_classes()
    try:
        model = keras.saving.load_model(directory / MODEL_FILE, compile=compile)
    except (ValueError, TypeError, OSError) as exc:
        raise CheckpointError(f"cannot load the task model: {exc}", path=directory / MODEL_FILE) from None
    tokenizer = Tokenizer.from_pretrained(directory / TOKENIZER_DIR)
    return model, tokenizer, info


def _register_keras_classes() -> None:
    """Import the backbones and every task module so their Keras classes are registered before loading."""
    import importlib
    import pkgutil

    import ptft_keras.models.backbone  # noqa: F401 - BertBackbone, DistilBertBackbone
    import ptft_keras.models.bilstm  # noqa: F401 - BiLSTMEncoder
    import ptft_keras.tasks as tasks

    for module in pkgutil.iter_modules(tasks.__path__):
        importlib.import_module(f"{tasks.__name__}.{module.name}")
