"""The token-classification task kind: CoNLL in, entity F1 out (`TokenKind`, plugged into `jobs.finetune`).

What a fine-tuning run does (the skeleton's steps, with this kind's hooks):

1. Read the CoNLL training and validation files (`data.conll`: token in the first column, tag in
   the last, IOB1/IOB2/BIOES read as IOB2). The label set comes from the training file; a
   validation tag outside it is an error naming the line. Without ``--validation`` a seeded
   ``--validation-fraction`` of the training sentences is held out.
2. Tokenize each word into word pieces; its label goes on its first piece, -100 on the others
   (`data.word_alignment`). The sequence length defaults to the longest training sentence (rounded
   up to a multiple of 8, capped at the checkpoint's maximum): dynamic padding makes a long limit
   free, and a truncated word would lose its label. Longer sentences (in any file) are split into
   overlapping windows (``--window-stride``) and each word is predicted from the window where it has
   the most context.
3. Batch windows of similar length together, each batch padded to its longest (``--padding auto``
   is ``grouped`` here, fixed on TPU; CoNLL-2003: ~5% padding instead of ~160% for randomly drawn batches).
4. Train a `TokenClassifier` with AdamW, warmup + linear decay, and -- unlike the sequence tasks --
   no head-only stage, no layer-wise LR decay and a peak learning rate of 2e-4
   (`TOKEN_CLASSIFICATION_DEFAULTS`, used where those options are left at the generic defaults):
   a frozen-encoder epoch teaches an NER head little and costs a whole epoch, and in two epochs a
   small encoder is still underfit. Measured on the first 5,000 CoNLL-2003 sentences, 2 epochs,
   all-MiniLM-L6-v2, F1 on 1,000 validation sentences: lr 1e-4 0.839, 2e-4 0.858, 3e-4 0.860; and
   on 2,000 sentences at 1e-4, LLRD 0.9 gave 0.633 against 0.662 without.
5. After each epoch, score the validation set with entity-level precision/recall/F1 (conlleval
   rules, `training.metrics.entity_f1`); early stopping and the best-epoch restore watch ``val_f1``.
6. Write the model directory (`jobs.model_dir`) with the per-type report.

`ptft predict` on a token-classification model reads CoNLL (a predicted-tag column is appended), plain
text (one sentence a line, words split on white space; JSON Lines out) or CSV/TSV/JSONL (a text
column; the input's format with a ``prediction`` column of space-separated tags), by what the file
is (`input_kind`), and says which it used.

Example:
    $ ptft finetune --task token-classification --model sentence-transformers/all-MiniLM-L6-v2 \\
        --train conll2003/train.txt --validation conll2003/valid.txt --output runs/ner --epochs 2
    $ ptft evaluate --model runs/ner --data conll2003/valid.txt | tail -n 1
    {"f1": 0.90, "precision": 0.89, "recall": 0.91, "accuracy": 0.98}
    $ ptft predict --model runs/ner --data conll2003/valid.txt --output valid.predicted.txt

    >>> from ptft_keras.jobs.token_kind import evaluate_token_classification
    >>> evaluate_token_classification("runs/ner", "valid.txt")["metrics"]["f1"]  # doctest: +SKIP
    0.9012
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ptft_keras.data.batching import static_batch_size, with_empty_rows
from ptft_keras.data.conll import ConllSentences, append_column, read_conll
from ptft_keras.data.sources import detect_format, read_examples
from ptft_keras.data.word_alignment import (
    align_words,
    longest_sequence_length,
    num_batches,
    predict_words,
    tokenize_words,
    windows_dataset,
)
from ptft_keras.errors import ConfigError
from ptft_keras.jobs.sequence_kind import output_format, single_file, write_predictions
from ptft_keras.jobs.task_kind import Prepared, Splits, TaskKind, first_rows, load, split_rows, with_sequence_length
from ptft_keras.tasks.token_classifier import TokenClassifier
from ptft_keras.training.metrics import entity_f1

TASK = "token-classification"
#: Options whose generic default is replaced for token classification (when left at that default).
TOKEN_CLASSIFICATION_DEFAULTS = {"learning_rate": 2e-4, "freeze_epochs": 0, "freeze_steps": 0, "layer_lr_decay": 1.0}
#: Columns of the CoNLL files (first and last), recorded in the model directory.
COLUMNS = {"token_column": 0, "tag_column": -1}
DEFAULT_BATCH_SIZE = 64


# ------------------------------------------------------------------------------------------ helpers
def prepare(tokenizer, sentences, label_names=None, *, sequence_length: int, window_stride=None):
    """`AlignedWords` of `ConllSentences` (with label ids when `label_names` is given)."""
    labels = sentences.label_ids(label_names) if label_names is not None else None
    return align_words(tokenize_words(tokenizer, sentences.words), labels, sequence_length=sequence_length,
                       window_stride=window_stride)


def select_windows(aligned, rows):
    """The windows of `AlignedWords` at indices `rows` (repeats allowed), in that order."""
    rows = np.asarray(rows, np.int64)

    def pick(values):
        return None if values is None else tf.gather(values, rows)

    return dataclasses.replace(aligned, piece_ids=pick(aligned.piece_ids), labels=pick(aligned.labels),
                               pick_positions=pick(aligned.pick_positions), pick_words=pick(aligned.pick_words),
                               window_sentence_ids=np.asarray(aligned.window_sentence_ids)[rows])


def padded_windows(aligned, multiple: int):
    """`aligned` followed by empty windows (packed as ``[CLS] [SEP]``, predicting no word) up to a multiple of
    `multiple` windows."""
    extra = -len(aligned) % int(multiple)
    if not extra:
        return aligned

    def pad(values):
        return None if values is None else with_empty_rows(values, extra)

    return dataclasses.replace(aligned, piece_ids=pad(aligned.piece_ids), labels=pad(aligned.labels),
                               pick_positions=pad(aligned.pick_positions), pick_words=pad(aligned.pick_words),
                               window_sentence_ids=np.concatenate([aligned.window_sentence_ids,
                                                                   np.full(extra, -1, np.int64)]))


def word_logits(model, tokenizer, aligned, *, batch_size: int = DEFAULT_BATCH_SIZE,
                static_shapes: bool | None = None) -> np.ndarray:
    """Logits ``[words, labels]`` of every word (corpus order), from its first piece in its best window.

    Windows run sorted by length, each batch padded to its longest. With `static_shapes` (default: when the
    model's strategy needs them, i.e. on TPU) they run in corpus order as ``[batch_size rounded up to the
    replicas, sequence_length]`` batches, the last one filled with empty windows, so XLA compiles one
    program: the same logits.
    """
    from ptft_keras.training.strategy import needs_static_shapes

    if static_shapes is None:
        static_shapes = needs_static_shapes(model.distribute_strategy)
    if not static_shapes:
        return predict_words(model.predict_on_batch, aligned, tokenizer, batch_size=batch_size).astype(np.float32)
    batch_size = static_batch_size(batch_size, model.distribute_strategy)
    dataset = windows_dataset(padded_windows(aligned, batch_size), tokenizer, batch_size=batch_size, padding="fixed",
                              with_labels=False, drop_remainder=True)
    logits = np.asarray(model.predict(dataset, verbose=0), np.float32)  # [windows, sequence_length, labels]
    positions = aligned.pick_positions
    out = np.zeros((aligned.num_words,) + logits.shape[2:], np.float32)
    out[aligned.pick_words.flat_values.numpy()] = logits[positions.value_rowids().numpy(),
                                                         positions.flat_values.numpy()]
    return out


def tags_from_logits(logits: np.ndarray, aligned, label_names) -> list[list[str]]:
    """One list of predicted tags per sentence.

    Example:
        >>> from types import SimpleNamespace
        >>> aligned = SimpleNamespace(per_sentence=lambda v: [v[:2], v[2:]])
        >>> tags_from_logits(np.eye(3)[[1, 2, 0]], aligned, ["O", "B-PER", "I-PER"])
        [['B-PER', 'I-PER'], ['O']]
    """
    names = np.asarray(label_names, dtype=object)
    return [names[ids].tolist() for ids in aligned.per_sentence(np.argmax(logits, axis=-1))]


def word_loss(logits: np.ndarray, label_ids: np.ndarray) -> float:
    """Mean cross-entropy of the words' gold labels (the training loss, over the labelled pieces).

    Example:
        >>> round(word_loss(np.log(np.array([[0.5, 0.5], [0.9, 0.1]])), np.array([0, 0])), 4)
        0.3993
    """
    logits = logits.astype(np.float64)
    top = logits.max(axis=-1, keepdims=True)
    log_norm = np.log(np.exp(logits - top).sum(axis=-1)) + top[:, 0]
    return float(np.mean(log_norm - logits[np.arange(len(label_ids)), label_ids]))


def entity_report(gold, predicted, *, history: dict | None = None, **context) -> dict:
    """The report of `ptft evaluate` for NER: entity-level ``metrics`` (``f1``, ``precision``, ``recall``,
    plus token ``accuracy``) and ``per_class`` numbers per entity type, in `training.report`'s layout.

    Example:
        >>> report = entity_report([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "O", "O"]])
        >>> report["metrics"]["f1"], report["per_class"]["LOC"]["recall"], report["count"]
        (0.666667, 0.0, 2)
    """
    scores = entity_f1(gold, predicted)

    def rounded(values):
        return {k: (int(v) if k == "support" else round(float(v), 6)) for k, v in values.items()}

    report = {
        "task": TASK,
        **context,
        "metrics": rounded({k: scores[k] for k in ("f1", "precision", "recall", "accuracy")}),
        "per_class": {kind: rounded(values) for kind, values in scores["per_type"].items()},
        "count": scores["count"],
    }
    if history:
        report["history"] = {k: [round(float(v), 6) for v in values] for k, values in history.items()}
    return report


def score_sentences(model, tokenizer, label_names, sentences, *, sequence_length: int, window_stride=None,
                    batch_size: int = DEFAULT_BATCH_SIZE, aligned=None, **context) -> dict:
    """`entity_report` of `model` on labelled `ConllSentences` (plus ``loss``, the mean word cross-entropy)."""
    if aligned is None:
        aligned = prepare(tokenizer, sentences, label_names, sequence_length=sequence_length,
                          window_stride=window_stride)
    logits = word_logits(model, tokenizer, aligned, batch_size=batch_size)
    gold_ids = np.concatenate(sentences.label_ids(label_names))
    report = entity_report(sentences.tags, tags_from_logits(logits, aligned, label_names), data=sentences.path,
                           sentences=len(sentences), words=aligned.num_words, sequence_length=sequence_length,
                           **context)
    report["metrics"]["loss"] = round(word_loss(logits, gold_ids), 6)
    return report


class EntityF1Callback(keras.callbacks.Callback):
    """Adds ``val_f1``, ``val_precision``, ``val_recall`` and ``val_loss`` (entity level, conlleval) to
    each epoch's logs, so early stopping and the curves can watch them. Put it before `EarlyStopping`.

    Example:
        ``model.fit(train, callbacks=[EntityF1Callback(tokenizer, names, dev, aligned_dev),
        EarlyStopping("val_f1", mode="max")])``
    """

    def __init__(self, tokenizer, label_names, sentences, aligned, *, batch_size: int = DEFAULT_BATCH_SIZE):
        super().__init__()
        self.tokenizer, self.label_names, self.sentences, self.aligned = tokenizer, label_names, sentences, aligned
        self.batch_size = batch_size

    def on_epoch_end(self, epoch, logs=None):
        report = score_sentences(self.model, self.tokenizer, self.label_names, self.sentences,
                                 sequence_length=self.aligned.sequence_length, aligned=self.aligned,
                                 batch_size=self.batch_size)
        if logs is not None:
            logs.update({f"val_{k}": report["metrics"][k] for k in ("loss", "f1", "precision", "recall")})


# ------------------------------------------------------------------------------------------ the kind
class TokenKind(TaskKind):
    """Token classification (NER) on CoNLL files; see the module docstring."""

    tasks = (TASK,)
    unit = "sentences"
    default_padding = "grouped"
    defaults = TOKEN_CLASSIFICATION_DEFAULTS

    def read_splits(self, config) -> Splits:
        train = first_rows(read_conll(config.train), config.max_train_examples)
        label_names = train.label_names()
        train, validation, name = split_rows(
            config, train, lambda path: read_conll(path, label_names=label_names), self.unit)
        return Splits(train, validation, name, label_names)

    def describe(self, config, splits: Splits) -> list[str]:
        train, validation = splits.train, splits.validation
        head_only = f"{config.freeze_epochs} epoch(s)" if config.freeze_epochs else f"{config.freeze_steps} step(s)"
        return [
            f"{train.num_words} training words (tags read as {train.scheme}, converted to IOB2)",
            f"validation: {splits.validation_name + f', {len(validation)} sentences' if validation is not None else 'none'}",
            f"labels ({len(splits.label_names)}): {', '.join(splits.label_names)}",
            f"learning rate {config.learning_rate:g}, head-only training for {head_only}, layer-wise LR decay "
            f"{config.layer_lr_decay:g}",
        ]

    def choose_sequence_length(self, config, tokenizer, splits: Splits, limit: int) -> tuple[int, str]:
        pieces = tokenize_words(tokenizer, splits.train.words)
        return (longest_sequence_length(pieces, limit),
                f"the longest training sentence, capped at {limit}; longer sentences are split into overlapping windows")

    def resolve_fit(self, config, sequence_length: int, splits: Splits):
        """Sentences over the budget are always split into windows: `--truncation auto` (or windows) resolves
        to ``windows``; another strategy would drop words' labels and is refused."""
        if config.truncation not in ("auto", "windows"):
            raise ConfigError(f"truncation: token classification splits long sentences into overlapping windows "
                              f"(every word keeps its label); --truncation {config.truncation} is not available for "
                              "it, leave --truncation at auto")
        print("truncation: windows (sentences over the sequence length are split into overlapping windows)")
        return dataclasses.replace(config, truncation="windows", head_tokens=None)

    def sharded_input(self, config, tokenizer, aligned, *, padding: str, global_batch_size: int):
        """The training windows as one pipeline per worker (`data.batching.ShardedInput`): each worker's seeded
        share of the windows (`batching.pipeline_rows`), shuffled each epoch and cut into full batches,
        ``ceil(windows / global batch)`` steps on every worker (padded to the sequence length when there are
        several workers, `batching.worker_padding`). The windows are counted first, so
        every worker aligns every sentence (as it does to choose the sequence length)."""
        from ptft_keras.data.batching import ShardedInput, equal_steps, pipeline_rows, worker_padding

        def pipeline(context, worker_batch):
            picked = pipeline_rows(len(aligned), global_batch_size, context, seed=config.seed)
            return windows_dataset(select_windows(aligned, picked), tokenizer, batch_size=worker_batch,
                                   padding=worker_padding(padding, context), shuffle=True, seed=config.seed,
                                   drop_remainder=True)

        return ShardedInput(pipeline, equal_steps(len(aligned), global_batch_size), global_batch_size)

    def datasets(self, config, tokenizer, splits: Splits, info, *, padding: str, drop_remainder: bool,
                 strategy=None) -> Prepared:
        """Length-grouped training batches and the entity-F1 validation callback; with several replicas or
        workers, one input pipeline per worker (`sharded_input`, every batch full)."""
        from ptft_keras.data.batching import per_replica_batch_size

        names, length = splits.label_names, info.sequence_length
        aligned = prepare(tokenizer, splits.train, names, sequence_length=length, window_stride=config.window_stride)
        if len(aligned) != len(splits.train):
            print(f"windows: {len(aligned)} training windows from {len(splits.train)} sentences")
        if strategy is not None and strategy.num_replicas_in_sync > 1:
            per_replica_batch_size(config.batch_size, strategy)  # a ConfigError naming the batch sizes that split
            sharded = self.sharded_input(config, tokenizer, aligned, padding=padding,
                                         global_batch_size=config.batch_size)
            prepared = Prepared(sharded.distribute(strategy), sharded.steps, len(aligned))
        else:
            train = windows_dataset(aligned, tokenizer, batch_size=config.batch_size, padding=padding, shuffle=True,
                                    seed=config.seed, drop_remainder=drop_remainder)
            prepared = Prepared(train, max(num_batches(aligned, config.batch_size, drop_remainder), 1), len(aligned))
        if splits.validation is not None:
            aligned_validation = prepare(tokenizer, splits.validation, names, sequence_length=length,
                                         window_stride=config.window_stride)
            prepared.callbacks.append(EntityF1Callback(tokenizer, names, splits.validation, aligned_validation))
            prepared.state["aligned_validation"] = aligned_validation
        return prepared

    def build_model(self, backbone, config, label_names):
        return TokenClassifier(backbone, label_names=label_names, dropout=config.head_dropout)

    def monitor(self, config) -> tuple[str, str]:
        monitor = config.monitor or "val_f1"
        return monitor, "min" if monitor.endswith("loss") else "max"

    def info_extra(self, config) -> dict:
        return dict(COLUMNS)

    def score(self, model, tokenizer, info, splits: Splits, prepared: Prepared, history: dict) -> dict:
        if splits.validation is None:
            return {"task": TASK, "metrics": {}, "history": history}
        return score_sentences(model, tokenizer, info.label_names, splits.validation,
                               sequence_length=info.sequence_length, aligned=prepared.state["aligned_validation"],
                               history=history, split="validation")

    def evaluate(self, loaded, config) -> tuple[dict, str]:
        report = evaluate_token_classification(loaded, config.data, sequence_length=config.sequence_length,
                                               batch_size=config.batch_size)
        return report, (f"evaluated {config.model} on {report['data']} ({report['sentences']} sentences, "
                        f"{report['count']} entities)")

    def predict(self, loaded, config) -> str:
        return predict_token_file(loaded, config.data, config.output, sequence_length=config.sequence_length,
                                  batch_size=config.batch_size, data_format=getattr(config, "data_format", "auto"),
                                  text_column=config.text_column)


# ------------------------------------------------------------------------------------ evaluate, predict
def _loaded(model, sequence_length=None):
    model, tokenizer, info = load(model)
    if info.task != TASK:
        raise ConfigError(f"the model in {info.directory} was fine-tuned for {info.task!r}, not {TASK}")
    return model, tokenizer, with_sequence_length(info, sequence_length)


def _read(info, data, *, labelled: bool):
    config = info.training_config
    return read_conll(data, token_column=config.get("token_column", COLUMNS["token_column"]),
                      tag_column=config.get("tag_column", COLUMNS["tag_column"]) if labelled else None,
                      label_names=info.label_names if labelled else None)


def evaluate_token_classification(model, data, *, sequence_length: int | None = None,
                                  batch_size: int = DEFAULT_BATCH_SIZE) -> dict:
    """Entity-level report of a fine-tuned model directory (or a loaded `(model, tokenizer, info)`) on a CoNLL file.

    Example:
        >>> evaluate_token_classification("runs/ner", "valid.txt")["per_class"]["PER"]["f1"]  # doctest: +SKIP
        0.95
    """
    model, tokenizer, info = _loaded(model, sequence_length)
    sentences = _read(info, data, labelled=True)
    return score_sentences(model, tokenizer, info.label_names, sentences, sequence_length=info.sequence_length,
                           window_stride=info.window_stride, batch_size=batch_size, model_dir=str(info.directory))


def predict_tags(model, sentences, *, sequence_length: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE):
    """Predicted IOB2 tags for pre-split sentences (lists of words, or `ConllSentences`).

    Example:
        >>> predict_tags("runs/ner", [["Peter", "Blackburn", "visited", "Paris"]])  # doctest: +SKIP
        [['B-PER', 'I-PER', 'O', 'B-LOC']]
    """
    model, tokenizer, info = _loaded(model, sequence_length)
    if not isinstance(sentences, ConllSentences):
        sentences = ConllSentences("<sentences>", [list(words) for words in sentences], None, [[]] * len(sentences))
    aligned = prepare(tokenizer, sentences, sequence_length=info.sequence_length, window_stride=info.window_stride)
    return tags_from_logits(word_logits(model, tokenizer, aligned, batch_size=batch_size), aligned, info.label_names)


#: file endings read as CoNLL without looking inside
CONLL_SUFFIXES = (".conll", ".conllu", ".iob", ".iob2", ".bio", ".bioes")
_TAG = re.compile(r"^(O|[BIESUL]-\S+)$")
INPUT_KINDS = ("auto", "conll", "text", "columns")


def input_kind(path, data_format: str = "auto") -> str:
    """How `ptft predict` reads a file for a token model: ``conll``, ``text`` (one sentence a line) or
    ``columns`` (CSV/TSV/JSONL with a text column).

    By extension first (.csv/.tsv/.jsonl: columns; .conll/.iob/...: CoNLL); any other file is CoNLL when
    its first non-blank lines look like it: every line one token (with blank lines between sentences or a
    ``-DOCSTART-``), or at least 90% of lines ending in an IOB tag column; else plain text.

    Example:
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "a.txt").write_text("EU B-ORG\\nrejects O\\n\\nPeter B-PER\\n")
        >>> _ = (folder / "b.txt").write_text("EU rejects German call\\nPeter Blackburn\\n")
        >>> input_kind(folder / "a.txt"), input_kind(folder / "b.txt"), input_kind(folder / "c.tsv")
        ('conll', 'text', 'columns')
    """
    if data_format != "auto":
        if data_format not in INPUT_KINDS:
            raise ConfigError(f"data_format {data_format!r} is not one of {', '.join(INPUT_KINDS)}")
        return data_format
    name = str(path)
    if detect_format(name) != "text":
        return "columns"
    if name.lower().removesuffix(".gz").endswith(CONLL_SUFFIXES):
        return "conll"
    lines, blank = [], False
    with open(name, encoding="utf-8", errors="replace") as stream:
        for raw in stream:
            fields = raw.split()
            if not fields:
                blank = True
                continue
            lines.append(fields)
            if len(lines) >= 200:
                break
    if not lines:
        return "text"
    docstart = any(fields[0] == "-DOCSTART-" for fields in lines)
    if all(len(fields) == 1 for fields in lines) and (blank or docstart):
        return "conll"
    tagged = sum(1 for fields in lines if len(fields) >= 2 and _TAG.match(fields[-1]))
    return "conll" if docstart or tagged >= 0.9 * len(lines) else "text"


def predict_token_file(model, data, output, *, sequence_length: int | None = None,
                       batch_size: int = DEFAULT_BATCH_SIZE, data_format: str = "auto", text_column=None) -> str:
    """`ptft predict` for a token model: read `data` by what it is (`input_kind`), write the tags to `output`.

    Returns what it did, in words (which reading was used, where the predictions went).

    Example:
        >>> print(predict_token_file("runs/ner", "valid.txt", "valid.pred.txt"))  # doctest: +SKIP
        read valid.txt as CoNLL (a token a line)
        predicted the tags of 3250 sentences with runs/ner
        predictions written to valid.pred.txt
    """
    loaded = _loaded(model, sequence_length)
    path = single_file(data)
    if Path(output).resolve() == Path(path).resolve():
        raise ConfigError(f"--output {output} is the input file; write the predictions elsewhere")
    kind = input_kind(path, data_format)
    if kind == "conll":
        sentences = _read(loaded[2], path, labelled=False)
        tags = predict_tags(loaded, sentences, batch_size=batch_size)
        by_line = {line: tag for lines, row in zip(sentences.lines, tags) for line, tag in zip(lines, row)}
        written = append_column(path, output, by_line)
        how = "CoNLL (a token a line; the predicted tag appended as the last column)"
        count = len(sentences)
    elif kind == "columns":
        output_format(detect_format(path), output)
        column = text_column or loaded[2].training_config.get("text_column") or "text"
        examples = read_examples(path, text_column=column)
        words = [text.split() for text in examples.texts]
        tags = predict_tags(loaded, words, batch_size=batch_size)
        predictions = {"prediction": [" ".join(row) for row in tags], "score": None}
        written = write_predictions(path, output, predictions, [line for _, line in examples.locations])
        how = f"rows with a text column {column!r} (words split on white space; tags joined by spaces in 'prediction')"
        count = len(examples)
    else:
        output_format("text", output)
        with open(path, encoding="utf-8") as stream:
            texts = [line.rstrip("\r\n") for line in stream]
        rows = [(i, text.split()) for i, text in enumerate(texts) if text.strip()]
        tags = predict_tags(loaded, [words for _, words in rows], batch_size=batch_size)
        written = Path(output)
        written.parent.mkdir(parents=True, exist_ok=True)
        with open(written, "w", encoding="utf-8") as stream:
            for (i, words), row in zip(rows, tags):
                stream.write(json.dumps({"line": i + 1, "text": texts[i], "words": words, "tags": row},
                                        ensure_ascii=False) + "\n")
        how = "plain text (one sentence a line, words split on white space; JSON Lines out)"
        count = len(rows)
    return (f"read {path} as {how}\npredicted the tags of {count} {'sentences' if kind != 'columns' else 'rows'} "
            f"with {loaded[2].directory}\npredictions written to {written}")
