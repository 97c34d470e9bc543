"""The sequence task kind: classification, multi-label classification and regression of single texts or
text pairs, read from CSV/TSV/JSONL (`data.sources`).

What it plugs into the fine-tuning skeleton (`jobs.task_kind`):

- rows: `read_examples` with the configured columns; the label vocabulary learned from the training labels;
- sequence length: the 95th percentile of the tokenized training lengths, rounded up to a multiple of 8
  (`data.sequence_length`); long texts fitted by `--truncation` (auto: head_tail for single texts at 256
  tokens and more, else head; `data.truncation.resolve_truncation`);
- batches: length buckets (each batch padded to the next of a few lengths);
- model: `SequenceClassifier`; early stopping watches val_accuracy for classification, else val_loss;
- report: per-class precision/recall/F1 and confusion matrix (`jobs.report.task_report`);
- predictions: the input's format with ``prediction`` and ``score`` columns added:

| task           | ``prediction``                          | ``score``                                          |
|----------------|-----------------------------------------|----------------------------------------------------|
| classification | the label name                          | its softmax probability                            |
| multilabel     | the labels with probability >= 0.5, joined with ``|`` | their probabilities, joined with ``|``   |
| regression     | the predicted value                     | (not written)                                      |

A plain-text input (one text per line) gives JSON Lines with ``text``, ``prediction``, ``score``.

Example:
    >>> import numpy as np
    >>> out = predictions_from_logits("classification", np.array([[0.0, 2.0]]), ["neg", "pos"])
    >>> out["prediction"], round(out["score"][0], 3)
    (['pos'], 0.881)
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import keras
import numpy as np

from ptft_keras.data.truncation import check_truncation, content_budget, describe_truncation, resolve_truncation
from ptft_keras.errors import ConfigError
from ptft_keras.jobs.task_kind import Prepared, Splits, TaskKind, first_rows, split_rows

#: --task values -> the SequenceClassifier problem type
SEQUENCE_TASKS = {
    "classification": "single_label_classification",
    "multilabel": "multi_label_classification",
    "regression": "regression",
}
DEFAULT_BATCH_SIZE = 64
MULTILABEL_SEPARATOR = "|"
#: output file extensions `write_predictions` writes, by the input format they need
OUTPUT_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}


# --------------------------------------------------------------------------------------------- rows
def read_columns(config):
    """The `read_examples` column options of a `FinetuneConfig`."""
    return dict(text_column=config.text_column, text_pair_column=config.text_pair_column,
                label_column=config.label_column, skip_bad_rows=config.skip_bad_rows)


def label_names_for(task: str, train, separator: str = "|") -> list[str]:
    """Label names in id order, learned from the training labels (none for regression)."""
    from ptft_keras.data.labels import LabelVocabulary

    if task == "regression":
        return []
    return LabelVocabulary.learn(train.labels, multilabel=task == "multilabel", separator=separator,
                                 locations=train.locations).labels


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


# ------------------------------------------------------------------------------------------ scoring
def predict_logits(model, tokenizer, info, texts, pairs=None, *, batch_size: int = DEFAULT_BATCH_SIZE,
                   static_shapes: bool | None = None) -> np.ndarray:
    """One row of logits per text (per document: window logits are pooled as `info.window_pooling` says).

    Texts are prepared exactly as in training (`ModelInfo`: normalisation, sequence length, truncation).
    Batches are padded to their longest row, the last one holding what is left; with `static_shapes`
    (default: when the model's strategy needs them, i.e. on TPU) every batch is ``[batch_size rounded up to
    the replicas, info.sequence_length]``, the last one filled with empty rows whose logits are dropped,
    so XLA compiles one program: the same logits.

    Example:
        >>> model, tokenizer, info = load("runs/sst2")  # doctest: +SKIP
        >>> predict_logits(model, tokenizer, info, ["a gripping film"]).shape  # doctest: +SKIP
        (1, 2)
    """
    from ptft_keras.data.batching import static_batch_size
    from ptft_keras.data.truncation import encode_texts, fitted_dataset, pool_window_logits
    from ptft_keras.training.strategy import needs_static_shapes

    fitted = encode_texts(
        tokenizer, texts, pairs, sequence_length=info.sequence_length, truncation=info.truncation,
        head_tokens=info.head_tokens, window_stride=info.window_stride, text_normalization=info.text_normalization,
    )
    if static_shapes is None:
        static_shapes = needs_static_shapes(model.distribute_strategy)
    if static_shapes:
        batch_size = static_batch_size(batch_size, model.distribute_strategy)
        dataset = fitted_dataset(fitted.padded_to(batch_size), tokenizer, batch_size=batch_size,
                                 sequence_length=info.sequence_length, padding="fixed", drop_remainder=True)
    else:
        dataset = fitted_dataset(fitted, tokenizer, batch_size=batch_size, sequence_length=info.sequence_length)
    logits = np.asarray(model.predict(dataset, verbose=0), np.float32)[:len(fitted)]
    if len(fitted) != fitted.num_documents:
        logits = np.asarray(pool_window_logits(logits, fitted.document_ids, fitted.num_documents, info.window_pooling))
    return logits


def score_examples(model, tokenizer, info, examples, *, batch_size: int = DEFAULT_BATCH_SIZE, skip_bad_rows=False,
                   history=None, **context) -> dict:
    """The `jobs.report.task_report` of `model` on labelled `examples` (from `sources.read_examples`).

    Example:
        >>> report = score_examples(model, tokenizer, info, examples)  # doctest: +SKIP
    """
    from ptft_keras.jobs.report import task_report

    targets, examples = targets_for(info, examples, skip_bad_rows=skip_bad_rows)
    logits = predict_logits(model, tokenizer, info, examples.texts, examples.pairs, batch_size=batch_size)
    return task_report(
        info.task, targets, logits, info.label_names, history=history,
        threshold=info.training_config.get("threshold", 0.5),
        data=", ".join(examples.files), sequence_length=info.sequence_length, truncation=info.truncation, **context,
    )


def predictions_from_logits(task: str, logits: np.ndarray, label_names, *, threshold: float = 0.5) -> dict:
    """`{"prediction": [...], "score": [...] or None, "ids": ...}` for `task` (see the module table)."""
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


def predict_texts(loaded, texts, pairs=None, *, batch_size: int = DEFAULT_BATCH_SIZE, threshold=None) -> dict:
    """`predictions_from_logits(...)` plus ``"logits"`` for `texts` with a loaded `(model, tokenizer, info)`."""
    model, tokenizer, info = loaded
    logits = predict_logits(model, tokenizer, info, list(texts), None if pairs is None else list(pairs),
                            batch_size=batch_size)
    if threshold is None:
        threshold = info.training_config.get("threshold", 0.5)
    out = predictions_from_logits(info.task, logits, info.label_names, threshold=threshold)
    out["logits"] = logits
    return out


# --------------------------------------------------------------------------- writing the output file
def single_file(data) -> str:
    """The one file `data` names (a path or a glob matching one file)."""
    from ptft_keras.data.sources import expand_files

    files = expand_files(data)
    if len(files) != 1:
        raise ConfigError(f"predict reads one file and writes one; {data!r} matches {len(files)} files: {', '.join(files[:3])}")
    return files[0]


def output_format(input_format: str, output) -> str:
    """The format `ptft predict` writes: the input's, which the output's extension must agree with.

    Example:
        >>> output_format("tsv", "preds.tsv"), output_format("text", "preds.jsonl")
        ('tsv', 'jsonl')
        >>> output_format("tsv", "preds.csv")
        Traceback (most recent call last):
        ...
        ptft_keras.errors.ConfigError: output: preds.csv ends in .csv, but predictions of a tsv file are written as tsv (the input's columns plus prediction and score); name the output preds.tsv
    """
    written = "jsonl" if input_format in ("jsonl", "text") else input_format
    suffix = Path(str(output)).suffix.lower()
    if suffix and suffix not in (".txt", ".out") and OUTPUT_FORMATS.get(suffix) != written:
        stem = Path(str(output)).with_suffix(f".{written}")
        described = "the input's columns plus prediction and score" if written != "jsonl" else "JSON Lines"
        raise ConfigError(f"output: {output} ends in {suffix}, but predictions of a {input_format} file are written "
                          f"as {written} ({described}); name the output {stem}")
    return written


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

    fmt = detect_format(path)
    output_format(fmt, output)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
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


# ------------------------------------------------------------------------------------------ the kind
class ValidationScorer(keras.callbacks.Callback):
    """Scores the validation set at each epoch end exactly as `ptft evaluate` does (`predict_logits`: per
    document, windows pooled) and logs ``val_loss`` and the model's metrics (``val_accuracy``, ...), so
    early stopping watches them; it keeps each epoch's logits, so the final report needs no second pass.
    Use it instead of `fit(validation_data=...)`."""

    def __init__(self, tokenizer, info, examples, *, batch_size: int = DEFAULT_BATCH_SIZE, skip_bad_rows=False):
        super().__init__()
        self.tokenizer, self.info, self.batch_size = tokenizer, info, batch_size
        self.targets, self.examples = targets_for(info, examples, skip_bad_rows=skip_bad_rows)
        self.logits: dict[int, np.ndarray] = {}

    def on_epoch_end(self, epoch, logs=None):
        model = self.model
        logits = predict_logits(model, self.tokenizer, self.info, self.examples.texts, self.examples.pairs,
                                batch_size=self.batch_size)
        self.logits[epoch] = logits
        if logs is None:
            return
        targets = np.asarray(self.targets)
        logs["val_loss"] = float(np.mean(keras.ops.convert_to_numpy(model.default_loss()(targets, logits))))
        for metric in model.default_metrics():
            metric.update_state(targets, logits)
            logs[f"val_{metric.name}"] = float(keras.ops.convert_to_numpy(metric.result()))

    def best_logits(self, values, mode: str):
        """The logits of the epoch early stopping kept (the best of `values`, the first on ties), or None when
        that epoch was not scored by this callback (it ran before a resume)."""
        if not values or len(values) - 1 not in self.logits:
            return None
        pick = np.argmin if mode == "min" else np.argmax
        return self.logits.get(int(pick(np.asarray(values))))


def info_config(info):
    """The options of a run as attributes (`task`, `monitor`), from its `ModelInfo`."""
    from types import SimpleNamespace

    return SimpleNamespace(task=info.task, monitor=info.training_config.get("monitor"))


class SequenceKind(TaskKind):
    """Classification, multi-label classification and regression of texts or text pairs."""

    tasks = tuple(SEQUENCE_TASKS)
    unit = "rows"
    default_padding = "bucket"

    def read_splits(self, config) -> Splits:
        from ptft_keras.data.sources import read_examples

        columns = read_columns(config)
        train = first_rows(read_examples(config.train, **columns), config.max_train_examples)
        train, validation, name = split_rows(config, train, lambda path: read_examples(path, **columns), self.unit)
        return Splits(train, validation, name, label_names_for(config.task, train, config.label_separator))

    def describe(self, config, splits: Splits) -> list[str]:
        lines = [f"validation: {splits.validation_name or 'none (early stopping off)'}"
                 + (f", {len(splits.validation)} rows" if splits.validation is not None else "")]
        names = splits.label_names
        if names:
            lines.append(f"labels ({len(names)}): {', '.join(names[:20])}{' ...' if len(names) > 20 else ''}")
        return lines

    def choose_sequence_length(self, config, tokenizer, splits: Splits, limit: int) -> tuple[int, str]:
        from ptft_keras.data.sequence_length import DEFAULT_PERCENTILE, sequence_length_from_data

        train = splits.train
        length = sequence_length_from_data(tokenizer, train.texts, train.pairs, max_length=limit, seed=config.seed,
                                           text_normalization=config.text_normalization)
        return length, (f"the {DEFAULT_PERCENTILE:g}th percentile of the training lengths, rounded up to a multiple "
                        f"of 8, capped at {limit}; set --sequence-length to change it")

    def resolve_fit(self, config, sequence_length: int, splits: Splits):
        import dataclasses

        budget = content_budget(sequence_length)
        truncation, head_tokens = resolve_truncation(config.truncation, budget, pairs=splits.train.pairs is not None,
                                                     head_tokens=config.head_tokens)
        config = dataclasses.replace(config, truncation=truncation, head_tokens=head_tokens)
        check_truncation(truncation, budget, head_tokens=head_tokens, stride=config.window_stride)
        detail = describe_truncation(truncation, budget, head_tokens=head_tokens, window_stride=config.window_stride,
                                     window_pooling=config.window_pooling)
        print(f"truncation: {truncation} ({detail})")
        return config

    def encoded_dataset(self, config, tokenizer, info, examples, targets, *, padding: str, shuffle: bool,
                        drop_remainder: bool):
        """`(dataset, rows)`: `examples` fitted as training fits them (truncation, windows), batched with `targets`."""
        from ptft_keras.data.truncation import encode_texts, fitted_dataset

        fitted = encode_texts(
            tokenizer, examples.texts, examples.pairs, sequence_length=info.sequence_length,
            truncation=config.truncation, head_tokens=config.head_tokens, window_stride=config.window_stride,
            text_normalization=config.text_normalization,
        )
        ds = fitted_dataset(fitted, tokenizer, targets, batch_size=config.batch_size,
                            sequence_length=info.sequence_length, padding=padding, shuffle=shuffle,
                            seed=config.seed, drop_remainder=drop_remainder)
        return ds, len(fitted)

    def sharded_input(self, config, tokenizer, info, examples, targets, *, padding: str, global_batch_size: int):
        """`(ShardedInput, rows)`: the training rows as one pipeline per worker (`data.batching.ShardedInput`).

        Each pipeline tokenizes only its share of the texts (`batching.pipeline_rows`: a seeded split, the
        same on every worker), shuffles it with the run's seed each epoch and cuts it into full batches:
        ``ceil(rows / global batch)`` steps on every worker, the last step filled up with rows already seen
        in the epoch. A worker's batch is padded as `padding` says and split among its replicas; with
        several workers every batch is padded to the sequence length (`batching.worker_padding`). With ``--truncation windows`` the windows are counted before the split,
        so every worker tokenizes every text then (and trains on its share of the windows).
        """
        from ptft_keras.data.batching import ShardedInput, equal_steps, pipeline_rows, worker_padding
        from ptft_keras.data.truncation import encode_texts, fitted_dataset

        def encode(part):
            return encode_texts(
                tokenizer, part.texts, part.pairs, sequence_length=info.sequence_length,
                truncation=config.truncation, head_tokens=config.head_tokens, window_stride=config.window_stride,
                text_normalization=config.text_normalization,
            )

        windows = encode(examples) if config.truncation == "windows" else None
        rows = len(windows) if windows is not None else len(examples)
        targets = np.asarray(targets)

        def pipeline(context, worker_batch):
            picked = pipeline_rows(rows, global_batch_size, context, seed=config.seed)
            if windows is not None:
                fitted, labels = windows.select(picked), targets
            else:
                fitted, labels = encode(examples.select(picked.tolist())), targets[picked]
            return fitted_dataset(fitted, tokenizer, labels, batch_size=worker_batch,
                                  sequence_length=info.sequence_length, padding=worker_padding(padding, context),
                                  shuffle=True, seed=config.seed, drop_remainder=True)

        return ShardedInput(pipeline, equal_steps(rows, global_batch_size), global_batch_size), rows

    def datasets(self, config, tokenizer, splits: Splits, info, *, padding: str, drop_remainder: bool,
                 strategy=None) -> Prepared:
        """The training batches and the validation scorer.

        With one replica (`strategy` None or the default one) a plain shuffled `tf.data` pipeline. With
        several replicas or workers, one pipeline per worker (`sharded_input`, fed through
        `strategy.distribute_datasets_from_function`): each tokenizes its share of the rows and every
        batch is full, so `drop_remainder` is moot there.
        """
        from ptft_keras.data.batching import per_replica_batch_size

        per_worker = strategy is not None and strategy.num_replicas_in_sync > 1
        if per_worker:
            per_replica_batch_size(config.batch_size, strategy)  # a ConfigError naming the batch sizes that split
        targets, examples = targets_for(info, splits.train, skip_bad_rows=config.skip_bad_rows)
        if per_worker:
            sharded, rows = self.sharded_input(config, tokenizer, info, examples, targets, padding=padding,
                                               global_batch_size=config.batch_size)
            prepared = Prepared(sharded.distribute(strategy), sharded.steps, rows)
        else:
            train, rows = self.encoded_dataset(config, tokenizer, info, examples, targets, padding=padding,
                                               shuffle=True, drop_remainder=drop_remainder)
            prepared = Prepared(train, max(int(train.cardinality()), 1), rows)
        if config.truncation == "windows":
            print(f"windows: {rows} training windows from {len(splits.train)} texts")
        if splits.validation is not None:
            scorer = ValidationScorer(tokenizer, info, splits.validation, skip_bad_rows=config.skip_bad_rows)
            prepared.callbacks.append(scorer)
            prepared.state["scorer"] = scorer
        return prepared

    def build_model(self, backbone, config, label_names):
        from ptft_keras.tasks.sequence_classifier import SequenceClassifier

        return SequenceClassifier(backbone, label_names=label_names or None, num_labels=None if label_names else 1,
                                  problem_type=SEQUENCE_TASKS[config.task], pooling=config.pooling, dropout=config.head_dropout)

    def monitor(self, config) -> tuple[str, str]:
        return super().monitor(config) if config.monitor or config.task != "classification" else ("val_accuracy", "max")

    def score(self, model, tokenizer, info, splits: Splits, prepared: Prepared, history: dict) -> dict:
        """The validation report of the epoch whose weights the model holds: from the logits scored at that
        epoch's end when there are some (no second pass over the validation set), else scored now."""
        if splits.validation is None:
            return {"task": info.task, "metrics": {}, "history": history}
        scorer = prepared.state.get("scorer")
        monitor, mode = self.monitor(info_config(info))
        logits = scorer.best_logits(history.get(monitor), mode) if scorer is not None else None
        if logits is None:
            return score_examples(model, tokenizer, info, splits.validation, history=history, split="validation",
                                  skip_bad_rows=info.training_config.get("skip_bad_rows", False))
        from ptft_keras.jobs.report import task_report

        return task_report(
            info.task, scorer.targets, logits, info.label_names, history=history,
            threshold=info.training_config.get("threshold", 0.5), data=", ".join(scorer.examples.files),
            sequence_length=info.sequence_length, truncation=info.truncation, split="validation",
        )

    def evaluate(self, loaded, config) -> tuple[dict, str]:
        import dataclasses

        from ptft_keras.data.sources import read_examples

        model, tokenizer, info = loaded
        info = dataclasses.replace(
            info, text_column=config.text_column or info.text_column,
            text_pair_column=config.text_pair_column or info.text_pair_column,
            label_column=config.label_column or info.label_column,
        )
        examples = read_examples(config.data, text_column=info.text_column, text_pair_column=info.text_pair_column,
                                 label_column=info.label_column, skip_bad_rows=config.skip_bad_rows)
        report = score_examples(model, tokenizer, info, examples, batch_size=config.batch_size,
                                skip_bad_rows=config.skip_bad_rows, model_dir=str(info.directory))
        return report, f"evaluated {config.model} on {report['data']} ({report['count']} examples)"

    def predict(self, loaded, config) -> str:
        from ptft_keras.data.sources import detect_format, read_examples

        _, _, info = loaded
        path = single_file(config.data)
        output_format(detect_format(path), config.output)
        if Path(config.output).resolve() == Path(path).resolve():
            raise ConfigError(f"--output {config.output} is the input file; write the predictions elsewhere")
        examples = read_examples(path, text_column=config.text_column or info.text_column,
                                 text_pair_column=config.text_pair_column or info.text_pair_column)
        out = predict_texts(loaded, examples.texts, examples.pairs, batch_size=config.batch_size,
                            threshold=config.threshold)
        written = write_predictions(path, config.output, out, [line for _, line in examples.locations])
        return f"predicted {len(examples)} rows of {path} with {config.model}\npredictions written to {written}"
