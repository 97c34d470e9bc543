"""The token-classification branch of `ptft finetune`, `ptft evaluate` and `ptft predict`: CoNLL in, entity F1 out.

The generic jobs call these functions when the task is ``token-classification``:

    finetune  `finetune_token_classification(config)`   (``_RUNNERS["token-classification"]``)
    evaluate  `run_evaluate(config)`                     (when the model directory's task is token classification)
    predict   `run_predict(config)`                      (likewise)

What a fine-tuning run does:

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
3. Batch windows of similar length together, each batch padded to its longest (CoNLL-2003: ~5%
   padding instead of ~160% for randomly drawn batches).
4. Train a `TokenClassifier` with AdamW, warmup + linear decay, and -- unlike the sequence tasks --
   no head-only stage, no layer-wise LR decay and a peak learning rate of 2e-4
   (`TOKEN_CLASSIFICATION_DEFAULTS`, used where those options are left at the generic defaults):
   a frozen-encoder epoch teaches an NER head little and costs a whole epoch, and in two epochs a
   small encoder is still underfit. Measured on the first 5,000 CoNLL-2003 sentences, 2 epochs,
   all-MiniLM-L6-v2, F1 on 1,000 validation sentences: lr 1e-4 0.839, 2e-4 0.858, 3e-4 0.860; and
   on 2,000 sentences at 1e-4, LLRD 0.9 gave 0.633 against 0.662 without.
5. After each epoch, score the validation set with entity-level precision/recall/F1 (conlleval
   rules, `training.metrics.entity_f1`); early stopping and the best-epoch restore watch ``val_f1``.
6. Write the model directory (`training.model_dir`) with the per-type report.

Example:
    $ ptft finetune --task token-classification --model sentence-transformers/all-MiniLM-L6-v2 \\
        --train conll2003/train.txt --validation conll2003/valid.txt --output runs/ner --epochs 2
    $ ptft evaluate --model runs/ner --data conll2003/valid.txt | tail -n 1
    {"f1": 0.90, "precision": 0.89, "recall": 0.91, "accuracy": 0.98}
    $ ptft predict --model runs/ner --data conll2003/valid.txt --output valid.predicted.txt

    >>> from ptft_keras.training.token_classification_job import evaluate_token_classification
    >>> evaluate_token_classification("runs/ner", "valid.txt")["metrics"]["f1"]  # doctest: +SKIP
    0.9012
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np

from ptft_keras.errors import ConfigError, DataError

TASK = "token-classification"
#: Options whose generic default is replaced for token classification (when left at that default).
TOKEN_CLASSIFICATION_DEFAULTS = {"learning_rate": 2e-4, "freeze_epochs": 0, "freeze_steps": 0, "layer_lr_decay": 1.0}
#: Columns of the CoNLL files (first and last), recorded in the model directory.
COLUMNS = {"token_column": 0, "tag_column": -1}
DEFAULT_BATCH_SIZE = 64


# ------------------------------------------------------------------------------------------ helpers
def with_task_defaults(config):
    """`config` with `TOKEN_CLASSIFICATION_DEFAULTS` where it holds the generic `FinetuneConfig` default.

    Example:
        >>> from ptft_keras.training.finetune import FinetuneConfig
        >>> config = with_task_defaults(FinetuneConfig(task="token-classification", learning_rate=3e-5))
        >>> config.learning_rate, config.freeze_steps, config.layer_lr_decay
        (3e-05, 0, 1.0)
    """
    generic = {f.name: f.default for f in dataclasses.fields(config)}
    changes = {name: value for name, value in TOKEN_CLASSIFICATION_DEFAULTS.items()
               if getattr(config, name) == generic[name]}
    return dataclasses.replace(config, **changes)


def prepare(tokenizer, sentences, label_names=None, *, sequence_length: int, window_stride=None):
    """`AlignedWords` of `ConllSentences` (with label ids when `label_names` is given)."""
    from ptft_keras.data.word_alignment import align_words, tokenize_words

    labels = sentences.label_ids(label_names) if label_names is not None else None
    return align_words(tokenize_words(tokenizer, sentences.words), labels, sequence_length=sequence_length,
                       window_stride=window_stride)


def word_logits(model, tokenizer, aligned, *, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """Logits ``[words, labels]`` of every word (corpus order), from its first piece in its best window."""
    from ptft_keras.data.word_alignment import predict_words

    return predict_words(model.predict_on_batch, aligned, tokenizer, batch_size=batch_size).astype(np.float32)


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
    from ptft_keras.training.metrics import entity_f1

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


# ------------------------------------------------------------------------------------------ finetune
def _read_splits(config):
    """`(train, validation or None, label names)` as `ConllSentences`."""
    from ptft_keras.data.conll import read_conll

    train = read_conll(config.train)
    if config.max_train_examples is not None and config.max_train_examples < len(train):
        train = train.select(range(config.max_train_examples))
    label_names = train.label_names()
    if config.validation:
        return train, read_conll(config.validation, label_names=label_names), label_names
    if not 0 <= config.validation_fraction < 1:
        raise ConfigError(f"validation_fraction must be in [0, 1), got {config.validation_fraction}")
    held_out = int(round(len(train) * config.validation_fraction))
    if held_out == 0:
        return train, None, label_names
    if held_out >= len(train):
        raise DataError(f"only {len(train)} training sentences: too few to hold out a validation set; pass "
                        "--validation FILE", path=config.train)
    order = np.random.default_rng(config.seed).permutation(len(train))
    return train.select(sorted(order[held_out:])), train.select(sorted(order[:held_out])), label_names


def _padding(config, strategy) -> str:
    """`word_alignment` padding: grouped by length unless shapes must be static or it was chosen."""
    from ptft_keras.training.finetune import choose_padding

    padding = choose_padding(config, strategy)
    return "grouped" if padding == "dynamic" and config.padding == "auto" else padding


def _callbacks(config, steps_per_epoch, tokenizer, label_names, validation, aligned_validation) -> list:
    from ptft_keras.training.finetune import training_callbacks

    callbacks = training_callbacks(config, has_validation=False, steps_per_epoch=steps_per_epoch)
    if validation is not None:
        monitor = config.monitor or "val_f1"
        better = "min" if monitor.endswith("loss") else "max"
        callbacks += [
            EntityF1Callback(tokenizer, label_names, validation, aligned_validation),
            keras.callbacks.EarlyStopping(monitor=monitor, mode=better, restore_best_weights=True, verbose=1,
                                          patience=config.early_stopping_patience or config.epochs),
        ]
    return callbacks


def finetune_token_classification(config):
    """Fine-tune for token classification on CoNLL files (see the module docstring); a `FinetuneResult`.

    Example:
        >>> from ptft_keras.training.finetune import FinetuneConfig
        >>> result = finetune_token_classification(FinetuneConfig(
        ...     task="token-classification", train="train.txt", validation="valid.txt", output="runs/ner",
        ...     epochs=2))  # doctest: +SKIP
        >>> result.report["metrics"]["f1"]  # doctest: +SKIP
        0.9012
    """
    from ptft_keras.data.tokenizer import Tokenizer
    from ptft_keras.data.word_alignment import (
        align_words,
        longest_sequence_length,
        num_batches,
        tokenize_words,
        windows_dataset,
    )
    from ptft_keras.models.backbone import Backbone
    from ptft_keras.tasks.token_classifier import TokenClassifier
    from ptft_keras.training.finetune import FinetuneResult, _default_checkpoint, _write_outputs, model_info
    from ptft_keras.training.optimizer import make_optimizer
    from ptft_keras.training.strategy import is_chief, needs_static_shapes, resolve

    config = with_task_defaults(config)
    keras.utils.set_random_seed(config.seed)
    strategy = resolve(config.strategy, tpu=config.tpu)
    checkpoint = config.model or str(_default_checkpoint())
    output = Path(config.output)

    train, validation, label_names = _read_splits(config)
    with strategy.scope():
        backbone = Backbone.from_pretrained(checkpoint)
    tokenizer = Tokenizer.from_pretrained(checkpoint)
    print(f"fine-tuning {checkpoint} ({type(backbone).__name__}, {backbone.num_layers} layers, hidden "
          f"{backbone.hidden_dim}) for {TASK} on {len(train)} sentences ({train.num_words} words) of {config.train} "
          f"(tags read as {train.scheme}, converted to IOB2)")
    print(f"validation: {validation.path + f', {len(validation)} sentences' if validation is not None else 'none'}"
          + (" (held out)" if validation is not None and not config.validation else ""))
    print(f"labels ({len(label_names)}): {', '.join(label_names)}")
    head_only = f"{config.freeze_epochs} epoch(s)" if config.freeze_epochs else f"{config.freeze_steps} step(s)"
    print(f"learning rate {config.learning_rate:g}, head-only training for {head_only}, layer-wise LR decay "
          f"{config.layer_lr_decay:g}")

    train_pieces = tokenize_words(tokenizer, train.words)
    limit = min(int(getattr(backbone, "max_sequence_length", tokenizer.model_max_length)), tokenizer.model_max_length)
    if config.sequence_length is not None and config.sequence_length > limit:
        raise ConfigError(f"sequence_length {config.sequence_length} exceeds the checkpoint's maximum of {limit} "
                          f"positions; use at most {limit}")
    sequence_length = config.sequence_length or longest_sequence_length(train_pieces, limit)
    chosen = "--sequence-length" if config.sequence_length else f"the longest training sentence, capped at {limit}"
    print(f"sequence length: {sequence_length} ({chosen}); longer sentences are split into overlapping windows")
    aligned_train = align_words(train_pieces, train.label_ids(label_names), sequence_length=sequence_length,
                                window_stride=config.window_stride)
    aligned_validation = None
    if validation is not None:
        aligned_validation = prepare(tokenizer, validation, label_names, sequence_length=sequence_length,
                                     window_stride=config.window_stride)
    padding = _padding(config, strategy)
    drop_remainder = needs_static_shapes(strategy)
    train_ds = windows_dataset(aligned_train, tokenizer, batch_size=config.batch_size, padding=padding, shuffle=True,
                               seed=config.seed, drop_remainder=drop_remainder)
    steps = max(num_batches(aligned_train, config.batch_size, drop_remainder), 1)
    if len(aligned_train) != len(train):
        print(f"windows: {len(aligned_train)} training windows from {len(train)} sentences")

    info = model_info(dataclasses.replace(config, truncation="windows"), label_names, sequence_length, output,
                      padding=padding, **COLUMNS)
    with strategy.scope():
        model = TokenClassifier(backbone, label_names=label_names)
        model.compile(
            optimizer=make_optimizer(config.learning_rate, warmup_ratio=config.warmup_ratio,
                                     total_steps=steps * config.epochs, weight_decay=config.weight_decay),
            jit_compile=config.jit_compile,
        )
    history = model.fit(train_ds, epochs=config.epochs, verbose=config.verbose, shuffle=False,
                        callbacks=_callbacks(config, steps, tokenizer, label_names, validation, aligned_validation))
    history = {k: [float(v) for v in values] for k, values in history.history.items()}

    report = {"task": TASK, "metrics": {}, "history": history}
    if validation is not None:
        report = score_sentences(model, tokenizer, label_names, validation, sequence_length=sequence_length,
                                 aligned=aligned_validation, history=history, split="validation")
    files = _write_outputs(output, model, tokenizer, info, report) if is_chief(strategy) else {}
    return FinetuneResult(model=model, tokenizer=tokenizer, info=info, report=report, history=history, files=files)


# ------------------------------------------------------------------------------------ evaluate, predict
def _loaded(model, sequence_length=None):
    from ptft_keras.training.predict import load, with_sequence_length

    model, tokenizer, info = load(model)
    if info.task != TASK:
        raise ConfigError(f"the model in {info.directory} was fine-tuned for {info.task!r}, not {TASK}")
    return model, tokenizer, with_sequence_length(info, sequence_length)


def _read(info, data, *, labelled: bool):
    from ptft_keras.data.conll import read_conll

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
    from ptft_keras.data.conll import ConllSentences

    model, tokenizer, info = _loaded(model, sequence_length)
    if not isinstance(sentences, ConllSentences):
        sentences = ConllSentences("<sentences>", [list(words) for words in sentences], None, [[]] * len(sentences))
    aligned = prepare(tokenizer, sentences, sequence_length=info.sequence_length, window_stride=info.window_stride)
    return tags_from_logits(word_logits(model, tokenizer, aligned, batch_size=batch_size), aligned, info.label_names)


def predict_token_classification(model, data, output, *, sequence_length: int | None = None,
                                 batch_size: int = DEFAULT_BATCH_SIZE) -> Path:
    """Write CoNLL file `data` to `output` with the predicted tag appended to every token line.

    Example:
        >>> predict_token_classification("runs/ner", "valid.txt", "valid.pred.txt")  # doctest: +SKIP
        PosixPath('valid.pred.txt')
    """
    from ptft_keras.data.conll import append_column

    loaded = _loaded(model, sequence_length)
    sentences = _read(loaded[2], data, labelled=False)
    tags = predict_tags(loaded, sentences, batch_size=batch_size)
    by_line = {line: tag for lines, row in zip(sentences.lines, tags) for line, tag in zip(lines, row)}
    return append_column(data, output, by_line)


def run_evaluate(config) -> int:
    """`ptft evaluate` for a token-classification model (an `EvaluateConfig`): the per-type table, then the
    metrics as one JSON line."""
    from ptft_keras.training.report import print_evaluation

    report = evaluate_token_classification(config.model, config.data, sequence_length=config.sequence_length,
                                           batch_size=config.batch_size)
    print_evaluation(report, f"evaluated {config.model} on {report['data']} ({report['sentences']} sentences, "
                             f"{report['count']} entities)", config.output)
    return 0


def run_predict(config) -> int:
    """`ptft predict` for a token-classification model (a `PredictConfig`): CoNLL with a predicted-tag column."""
    written = predict_token_classification(config.model, config.data, config.output,
                                           sequence_length=config.sequence_length, batch_size=config.batch_size)
    print(f"predicted the tags of {config.data} with {config.model}")
    print(f"predictions written to {written}")
    return 0
