"""`ptft export`: a fine-tuned model directory -> a TF Serving SavedModel (a new integer version).

The model directory is the one `ptft finetune --output DIR` writes (`ptft_keras.jobs.model_dir`):
``model.keras``, ``tokenizer/``, ``labels.json`` (task + label names), ``training_config.json`` (sequence
length, text normalisation, text pair column, ...) and ``metrics.json``. Options left unset are taken
from that directory, so the exported graph preprocesses text exactly as training did. The last line
printed is the version directory written. ``--format tflite`` writes ``model.tflite`` (token ids in) with
the tokenizer and labels instead (`ptft_keras.export.tflite`).

Example:
    $ ptft export --model runs/sst2 --output saved_models/sst2
    ...
    saved_models/sst2/1
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import Optional

from ptft_keras.config import option
from ptft_keras.data.text_rewrites import MODES
from ptft_keras.errors import ConfigError

DEFAULT_SEQUENCE_LENGTH = 128
FORMATS = ("saved_model", "tflite")


@dataclass
class ExportConfig:
    model: Optional[str] = option(None, "fine-tuned model directory (the --output of ptft finetune; may be gs://...)")
    output: Optional[str] = option(
        None, "TF Serving model base directory, e.g. saved_models/NAME or gs://BUCKET/models/NAME; the export "
        "becomes its next version"
    )
    sequence_length: Optional[int] = option(
        None, "truncate/pad texts to this many tokens (default: the length used in fine-tuning)", positive=True
    )
    text_normalization: str = option(
        "auto", "text normalisation in the graph; auto: the one used in fine-tuning", choices=("auto", *MODES)
    )
    model_name: Optional[str] = option(None, "TF Serving model name for the warmup requests (default: output's name)")
    format: str = option(  # noqa: A003 - the CLI flag's name
        "saved_model", "saved_model: raw strings in, for TF Serving; tflite: model.tflite (token ids in) with its "
        "tokenizer and labels, for phones and small CPUs (sequence tasks)", choices=FORMATS,
    )
    quantization: str = option(
        "none", "--format tflite: dynamic stores the weights as int8 (about 4x smaller)", choices=("none", "dynamic")
    )


def load_finetuned_dir(directory):
    """`(model, tokenizer, info, metrics)` of a fine-tuned model directory (`training.model_dir` layout).

    `metrics` is the content of ``metrics.json`` (an empty dict when the file is missing).

    Example:
        >>> model, tokenizer, info, metrics = load_finetuned_dir("runs/sst2")  # doctest: +SKIP
        >>> info.task, info.label_names  # doctest: +SKIP
        ('classification', ['negative', 'positive'])
    """
    from ptft_keras import storage
    from ptft_keras.jobs.model_dir import METRICS_FILE, load_model_dir

    model, tokenizer, info = load_model_dir(directory)
    metrics_path = storage.local_copy(directory, "model") / METRICS_FILE  # gs://: the copy load_model_dir made
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else {}
    return model, tokenizer, info, metrics


def export_finetuned_dir(directory, output, *, sequence_length=None, text_normalization="auto", model_name=None,
                        format="saved_model", quantization="none"):  # noqa: A002
    """Export the model of a fine-tuned directory with its own preprocessing settings; returns the version dir.

    `sequence_length=None` and `text_normalization="auto"` take the values used in fine-tuning.
    ``format="tflite"``: `ptft_keras.export.tflite.export_tflite` (with `quantization`) instead of the SavedModel.

    Example:
        >>> export_finetuned_dir("runs/sst2", "saved_models/sst2")  # doctest: +SKIP
        PosixPath('saved_models/sst2/1')
    """
    from ptft_keras.export.predictions import TOKEN_TASK
    from ptft_keras.export.serving import export_model
    from ptft_keras.export.tflite import export_tflite

    if format not in FORMATS:
        raise ConfigError(f"format={format!r} is not one of {', '.join(FORMATS)}")
    if quantization != "none" and format != "tflite":
        raise ConfigError(f"quantization={quantization!r} is for format='tflite'; a SavedModel keeps float weights")
    model, tokenizer, info, metrics = load_finetuned_dir(directory)
    fitting = dict(truncation=info.truncation, head_tokens=info.head_tokens, window_stride=info.window_stride,
                   window_pooling=info.window_pooling)
    if info.task == TOKEN_TASK:
        if info.truncation not in ("head", "windows"):
            warnings.warn(
                f"the model was fine-tuned with truncation={info.truncation!r}; the token-classification export "
                "tags the words of the first sequence_length tokens only", stacklevel=2,
            )
        fitting = {}  # training's windows keep every word's label; the export tags the first sequence_length tokens
    common = dict(
        task=info.task,
        label_names=info.label_names,
        sequence_length=sequence_length or info.sequence_length or DEFAULT_SEQUENCE_LENGTH,
        text_normalization=info.text_normalization if text_normalization == "auto" else text_normalization,
        pair=info.text_pair_column is not None,
        model_name=model_name,
        metadata={"source": str(directory), "training_config": info.training_config, "metrics": metrics},
        **fitting,
    )
    if format == "tflite":
        return export_tflite(model, tokenizer, output, quantization=quantization, **common)
    return export_model(model, tokenizer, output, **common)


def run(config: ExportConfig) -> int:
    version_dir = export_finetuned_dir(
        config.model,
        config.output,
        sequence_length=config.sequence_length,
        text_normalization=config.text_normalization,
        model_name=config.model_name,
        format=config.format,
        quantization=config.quantization,
    )
    if config.format == "tflite":
        print(f"exported {config.model} as TensorFlow Lite (model.tflite: token ids in; tokenizer/ and labels.txt "
              "beside it)")
    else:
        print(f"exported {config.model} for TF Serving (signatures serving_default, serving_ids)")
    print(version_dir)
    return 0
