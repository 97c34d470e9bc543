"""`ptft evaluate`: score a fine-tuned model on a labelled file; the metrics are the last line, as JSON.

The output is the per-class table (`jobs.report`), then one line holding a JSON object of the summary
metrics (``accuracy``, ``f1`` (macro), ``micro_f1``, ``mcc`` for classification; entity ``f1``,
``precision``, ``recall``, ``accuracy`` for token classification; see `jobs.report` for the other tasks),
so scripts can read ``ptft evaluate ... | tail -n 1``. The model directory's task kind (`jobs.kinds`)
reads the file and scores it: column names default to the ones used in training, texts are prepared as
in training, and a label the model never saw is an error naming the file and line.

Example:
    $ ptft evaluate --model runs/sst2 --data dev.tsv
    ...
    {"accuracy": 0.9106, "f1": 0.9105, "micro_f1": 0.9106, "mcc": 0.8213}

    >>> from ptft_keras.jobs.evaluate import evaluate
    >>> evaluate("runs/sst2", "dev.tsv")["metrics"]["accuracy"]  # doctest: +SKIP
    0.9106
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ptft_keras.config import from_dict, option
from ptft_keras.jobs.kinds import kind_for

DEFAULT_BATCH_SIZE = 64


@dataclass
class EvaluateConfig:
    model: Optional[str] = option(None, "fine-tuned model directory (the --output of ptft finetune)")
    data: Optional[str] = option(None, "labelled file to evaluate on: CSV, TSV or JSONL (CoNLL for token classification)")
    text_column: Optional[str] = option(None, "column holding the text (default: the one used in training)")
    text_pair_column: Optional[str] = option(None, "column holding the second text of pairs (default: as in training)")
    label_column: Optional[str] = option(None, "column holding the label (default: the one used in training)")
    sequence_length: Optional[int] = option(None, "tokens per sequence (default: the length used in training)", positive=True)
    batch_size: int = option(DEFAULT_BATCH_SIZE, "texts per evaluation batch", positive=True)
    output: Optional[str] = option(None, "also write metrics.json and report.txt into this directory")
    skip_bad_rows: bool = option(False, "leave out malformed rows (counted in one warning) instead of stopping")


def evaluate_report(config: EvaluateConfig, loaded=None) -> tuple[dict, str]:
    """`(report, headline)` of `config.model` (or an already `loaded` triple) on `config.data`."""
    from ptft_keras.jobs.task_kind import load, with_sequence_length

    model, tokenizer, info = load(loaded if loaded is not None else config.model)
    loaded = (model, tokenizer, with_sequence_length(info, config.sequence_length))
    return kind_for(info.task).evaluate(loaded, config)


def evaluate(model, data, *, text_column=None, text_pair_column=None, label_column=None, sequence_length=None,
             batch_size: int = DEFAULT_BATCH_SIZE, skip_bad_rows: bool = False) -> dict:
    """Evaluate a fine-tuned model directory (or a loaded `(model, tokenizer, info)`) on labelled `data`.

    Returns the report dict; its ``"metrics"`` are what `ptft evaluate` prints on its last line.

    Example:
        >>> evaluate("runs/sst2", "dev.tsv", sequence_length=128)["metrics"]  # doctest: +SKIP
    """
    loaded = model if isinstance(model, (tuple, list)) else None
    config = from_dict(EvaluateConfig, dict(
        model=str(loaded[2].directory) if loaded else str(model), data=data, text_column=text_column,
        text_pair_column=text_pair_column, label_column=label_column, sequence_length=sequence_length,
        batch_size=batch_size, skip_bad_rows=skip_bad_rows))
    return evaluate_report(config, loaded)[0]


def run(config: EvaluateConfig) -> int:
    from ptft_keras.jobs.report import print_evaluation

    report, headline = evaluate_report(config)
    print_evaluation(report, headline, config.output)
    return 0
