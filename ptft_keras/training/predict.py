"""`ptft predict`: run a fine-tuned model over a CSV/TSV/JSONL file and write its predictions.

The output has the input's format and every input column, plus ``prediction`` and ``score``:

| task           | ``prediction``                          | ``score``                                          |
|----------------|-----------------------------------------|----------------------------------------------------|
| classification | the label name                          | its softmax probability                            |
| multilabel     | the labels with probability >= 0.5, joined with ``|`` | their probabilities, joined with ``|``   |
| regression     | the predicted value                     | (not written)                                      |

A plain-text input (one text per line) gives JSON Lines with ``text``, ``prediction``, ``score``.
Texts are prepared exactly as in training (`ModelInfo`: normalisation, sequence length, truncation
or windows with pooled logits); `predict_logits` is also what `evaluate` and `finetune` score with.

Example:
    $ ptft predict --model runs/sst2 --data reviews.tsv --output predictions.tsv

    >>> from ptft_keras.training.predict import predict
    >>> predict("runs/sst2", ["a gripping film", "dull"])["prediction"]  # doctest: +SKIP
    ['1', '0']
"""
from __future__ import annotations

import csv
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ptft_keras.config import option
from ptft_keras.errors import ConfigError

DEFAULT_BATCH_SIZE = 64
MULTILABEL_SEPARATOR = "|"


@dataclass
class PredictConfig:
    model: Optional[str] = option(None, "fine-tuned model directory (the --output of ptft finetune)")
    data: Optional[str] = option(None, "CSV, TSV, JSONL or plain-text file of texts to predict")
    output: Optional[str] = option(None, "file to write: the input's format with prediction and score columns added")
    text_column: Optional[str] = option(None, "column holding the text (default: the one used in training)")
    text_pair_column: Optional[str] = option(None, "column holding the second text of pairs (default: as in training)")
    sequence_length: Optional[int] = option(None, "tokens per sequence (default: the length used in training)", positive=True)
    batch_size: int = option(DEFAULT_BATCH_SIZE, "texts per prediction batch", positive=True)
    threshold: Optional[float] = option(None, "multilabel: predict a label when its probability is at least this "
                                        "(default: the threshold used in training, 0.5)")


def load(model):
    """`(model, tokenizer, info)` from a model directory path, or the same triple passed through."""
    if isinstance(model, (tuple, list)):
        return tuple(model)
    from ptft_keras.training.model_dir import load_model_dir

    return load_model_dir(model)


def with_sequence_length(info, sequence_length: int | None):
    """`info` with another sequence length (for --sequence-length); None keeps the one used in training."""
    if sequence_length is None:
        return info
    return dataclasses.replace(info, sequence_length=int(sequence_length))


def predict_logits(model, tokenizer, info, texts, pairs=None, *, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """One row of logits per text (per document: window logits are pooled as `info.window_pooling` says).

    Example:
        >>> model, tokenizer, info = load("runs/sst2")  # doctest: +SKIP
        >>> predict_logits(model, tokenizer, info, ["a gripping film"]).shape  # doctest: +SKIP
        (1, 2)
    """
    from ptft_keras.data.truncation import encode_texts, fitted_dataset, pool_window_logits

    fitted = encode_texts(
        tokenizer, texts, pairs, sequence_length=info.sequence_length, truncation=info.truncation,
        head_tokens=info.head_tokens, window_stride=info.window_stride, text_normalization=info.text_normalization,
    )
    dataset = fitted_dataset(fitted, tokenizer, batch_size=batch_size, sequence_length=info.sequence_length)
    logits = np.asarray(model.predict(dataset, verbose=0), np.float32)
    if len(fitted) != fitted.num_documents:
        logits = np.asarray(pool_window_logits(logits, fitted.document_ids, fitted.num_documents, info.window_pooling))
    return logits


def predictions_from_logits(task: str, logits: np.ndarray, label_names, *, threshold: float = 0.5) -> dict:
    """`{"prediction": [...], "score": [...] or None, "ids": ...}` for `task` (see the module table).

    Example:
        >>> import numpy as np
        >>> out = predictions_from_logits("classification", np.array([[0.0, 2.0]]), ["neg", "pos"])
        >>> out["prediction"], round(out["score"][0], 3)
        (['pos'], 0.881)
    """
    from ptft_keras.export.predictions import task_outputs

    outputs = {k: np.asarray(v) for k, v in task_outputs(task, logits, label_names=label_names, threshold=threshold).items()}
    if task == "classification":
        ids = outputs["label_id"]
        scores = outputs["probabilities"][np.arange(len(ids)), ids]
        return {"prediction": [label_names[i] for i in ids], "score": scores.tolist(), "ids": ids}
    if task == "multilabel":
        chosen = outputs["labels"].astype(bool)
        names = [MULTILABEL_SEPARATOR.join(n for n, c in zip(label_names, row) if c) for row in chosen]
        probabilities = outputs["probabilities"]
        scores = [MULTILABEL_SEPARATOR.join(f"{p:.4f}" for p, c in zip(row, keep) if c) for row, keep in zip(probabilities, chosen)]
        return {"prediction": names, "score": scores, "ids": chosen.astype(np.int32)}
    values = outputs["score"]
    return {"prediction": np.asarray(values).tolist(), "score": None, "ids": values}


def predict(model, texts, pairs=None, *, sequence_length: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
            threshold: float | None = None) -> dict:
    """Predict `texts` (and `pairs`) with a fine-tuned model directory (or a loaded `(model, tokenizer, info)`).

    Returns `predictions_from_logits(...)` plus ``"logits"``.

    Example:
        >>> predict("runs/sst2", ["a gripping film"])["prediction"]  # doctest: +SKIP
        ['1']
    """
    model, tokenizer, info = load(model)
    info = with_sequence_length(info, sequence_length)
    logits = predict_logits(model, tokenizer, info, list(texts), None if pairs is None else list(pairs), batch_size=batch_size)
    if threshold is None:
        threshold = info.training_config.get("threshold", 0.5)
    out = predictions_from_logits(info.task, logits, info.label_names, threshold=threshold)
    out["logits"] = logits
    return out


# --------------------------------------------------------------------------- writing the output file
def _single_file(data) -> str:
    from ptft_keras.data.sources import expand_files

    files = expand_files(data)
    if len(files) != 1:
        raise ConfigError(f"predict reads one file and writes one; {data!r} matches {len(files)} files: {', '.join(files[:3])}")
    return files[0]


def _delimited_records(path: str, delimiter: str):
    """`(start line, fields)` of each record, header included, numbered as `sources` reports lines."""
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    with open(path, encoding="utf-8", newline="") as stream:
        reader = csv.reader(stream, delimiter=delimiter, quoting=quoting)
        last = 0
        for fields in reader:
            yield last + 1, fields
            last = reader.line_num


def _text_lines(path: str):
    """`(line, text)` of a text or JSONL file, split on "\n" only (as `sources.read_lines`)."""
    with open(path, "rb") as stream:
        for line, raw in enumerate(stream, start=1):
            yield line, raw.decode("utf-8").rstrip("\r\n")


def write_predictions(path, output, predictions: dict, lines: list[int]) -> Path:
    """Write the rows of input `path` with ``prediction`` (and ``score``) added, matched by input line.

    Rows that were left out (bad rows skipped) get empty predictions in CSV/TSV and no line in JSONL.
    """
    from ptft_keras.data.sources import detect_format

    path = str(path)
    if path.endswith(".gz"):
        raise ConfigError("predict writes plain files: decompress the .gz input first")
    by_line = {line: i for i, line in enumerate(lines)}
    predicted, scores = predictions["prediction"], predictions["score"]
    added = ["prediction"] + (["score"] if scores is not None else [])

    def extra(i):
        if i is None:
            return [""] * len(added)
        return [_cell(predicted[i])] + ([_cell(scores[i])] if scores is not None else [])

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fmt = detect_format(path)
    with open(output, "w", encoding="utf-8", newline="") as stream:
        if fmt == "csv":
            writer = csv.writer(stream, lineterminator="\n")
            for line, fields in _delimited_records(path, ","):
                writer.writerow(fields + (added if line == 1 else extra(by_line.get(line))))
        elif fmt == "tsv":  # GLUE-style TSV is not quoted: fields hold no tab or newline
            for line, fields in _delimited_records(path, "\t"):
                stream.write("\t".join(fields + (added if line == 1 else extra(by_line.get(line)))) + "\n")
        else:
            for line, text in _text_lines(path):
                i = by_line.get(line)
                if i is None:
                    continue
                row = json.loads(text) if fmt == "jsonl" else {"text": text}
                row["prediction"] = predicted[i]
                if scores is not None:
                    row["score"] = scores[i]
                stream.write(json.dumps(row, ensure_ascii=False) + "\n")
    return output


def _cell(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def run(config: PredictConfig) -> int:
    from ptft_keras.data.sources import read_examples
    from ptft_keras.training.model_dir import read_model_info

    if read_model_info(config.model).task == "token-classification":  # CoNLL in, CoNLL out
        from ptft_keras.training.token_classification_job import run_predict

        return run_predict(config)
    model, tokenizer, info = load(config.model)
    path = _single_file(config.data)
    text_column = config.text_column or info.text_column
    pair_column = config.text_pair_column or info.text_pair_column
    examples = read_examples(path, text_column=text_column, text_pair_column=pair_column)
    if Path(config.output).resolve() == Path(path).resolve():
        raise ConfigError(f"--output {config.output} is the input file; write the predictions elsewhere")
    out = predict((model, tokenizer, info), examples.texts, examples.pairs, sequence_length=config.sequence_length,
                  batch_size=config.batch_size, threshold=config.threshold)
    written = write_predictions(path, config.output, out, [line for _, line in examples.locations])
    print(f"predicted {len(examples)} rows of {path} with {config.model}")
    print(f"predictions written to {written}")
    return 0
