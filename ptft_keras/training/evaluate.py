"""`ptft evaluate`: score a fine-tuned model on a labelled file; the metrics are the last line, as JSON.

The output is the per-class table and confusion matrix (`training.report`), then one line holding
a JSON object of the summary metrics (``accuracy``, ``f1`` (macro), ``micro_f1``, ``mcc`` for
classification; see `training.report` for the other tasks), so scripts can read
``ptft evaluate ... | tail -n 1``. Column names default to the ones used in training, texts are
prepared as in training, and a label the model never saw is an error naming the file and line.

Example:
    $ ptft evaluate --model runs/sst2 --data dev.tsv
    ...
    {"accuracy": 0.9106, "f1": 0.9105, "micro_f1": 0.9106, "mcc": 0.8213}

    >>> from ptft_keras.training.evaluate import evaluate
    >>> evaluate("runs/sst2", "dev.tsv")["metrics"]["accuracy"]  # doctest: +SKIP
    0.9106
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

from ptft_keras.config import option
from ptft_keras.training.predict import DEFAULT_BATCH_SIZE, load, predict_logits, with_sequence_length


@dataclass
class EvaluateConfig:
    model: Optional[str] = option(None, "fine-tuned model directory (the --output of ptft finetune)")
    data: Optional[str] = option(None, "labelled CSV, TSV or JSONL file to evaluate on")
    text_column: Optional[str] = option(None, "column holding the text (default: the one used in training)")
    text_pair_column: Optional[str] = option(None, "column holding the second text of pairs (default: as in training)")
    label_column: Optional[str] = option(None, "column holding the label (default: the one used in training)")
    sequence_length: Optional[int] = option(None, "tokens per sequence (default: the length used in training)", positive=True)
    batch_size: int = option(DEFAULT_BATCH_SIZE, "texts per evaluation batch", positive=True)
    output: Optional[str] = option(None, "also write metrics.json and report.txt into this directory")
    skip_bad_rows: bool = option(False, "leave out malformed rows (counted in one warning) instead of stopping")


def targets_for(info, examples, *, skip_bad_rows: bool = False):
    """Encode the raw labels of `examples` for `info.task`; returns `(targets, examples kept)`.

    A label outside the model's label set raises DataError naming the file, line and column.
    """
    from ptft_keras.data.labels import LabelVocabulary, encode_targets
    from ptft_keras.data.sources import BadRows

    vocabulary = LabelVocabulary(info.label_names) if info.label_names else None
    bad_rows = BadRows(skip_bad_rows)
    targets, kept = encode_targets(
        examples.labels, examples.locations, task=info.task, vocabulary=vocabulary, field=info.label_column,
        separator=info.training_config.get("label_separator", "|"), bad_rows=bad_rows,
    )
    bad_rows.warn()
    return targets, examples.select(kept) if len(kept) != len(examples) else examples


def score_examples(model, tokenizer, info, examples, *, batch_size: int = DEFAULT_BATCH_SIZE, skip_bad_rows=False,
                   history=None, **context) -> dict:
    """The `training.report.task_report` of `model` on labelled `examples` (from `sources.read_examples`).

    Example:
        >>> report = score_examples(model, tokenizer, info, examples)  # doctest: +SKIP
    """
    from ptft_keras.training.report import task_report

    targets, examples = targets_for(info, examples, skip_bad_rows=skip_bad_rows)
    logits = predict_logits(model, tokenizer, info, examples.texts, examples.pairs, batch_size=batch_size)
    return task_report(
        info.task, targets, logits, info.label_names, history=history,
        threshold=info.training_config.get("threshold", 0.5),
        data=", ".join(examples.files), sequence_length=info.sequence_length, truncation=info.truncation, **context,
    )


def evaluate(model, data, *, text_column=None, text_pair_column=None, label_column=None, sequence_length=None,
             batch_size: int = DEFAULT_BATCH_SIZE, skip_bad_rows: bool = False) -> dict:
    """Evaluate a fine-tuned model directory (or a loaded `(model, tokenizer, info)`) on labelled `data`.

    Returns the report dict; its ``"metrics"`` are what `ptft evaluate` prints on its last line.

    Example:
        >>> evaluate("runs/sst2", "dev.tsv", sequence_length=128)["metrics"]  # doctest: +SKIP
    """
    from ptft_keras.data.sources import read_examples

    model, tokenizer, info = load(model)
    info = with_sequence_length(info, sequence_length)
    info = dataclasses.replace(
        info,
        text_column=text_column or info.text_column,
        text_pair_column=text_pair_column or info.text_pair_column,
        label_column=label_column or info.label_column,
    )
    examples = read_examples(
        data, text_column=info.text_column, text_pair_column=info.text_pair_column, label_column=info.label_column,
        skip_bad_rows=skip_bad_rows,
    )
    return score_examples(model, tokenizer, info, examples, batch_size=batch_size, skip_bad_rows=skip_bad_rows,
                          model_dir=str(info.directory))


def run(config: EvaluateConfig) -> int:
    from ptft_keras.training.model_dir import read_model_info
    from ptft_keras.training.report import print_evaluation

    if read_model_info(config.model).task == "token-classification":
        from ptft_keras.training.token_classification_job import run_evaluate

        return run_evaluate(config)
    report = evaluate(
        config.model, config.data, text_column=config.text_column, text_pair_column=config.text_pair_column,
        label_column=config.label_column, sequence_length=config.sequence_length, batch_size=config.batch_size,
        skip_bad_rows=config.skip_bad_rows,
    )
    print_evaluation(report, f"evaluated {config.model} on {report['data']} ({report['count']} examples)", config.output)
    return 0
