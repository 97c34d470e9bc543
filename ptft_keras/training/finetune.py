"""`ptft finetune`: fine-tune a checkpoint on a labelled file and write a model directory with its report.

What a run does, with the defaults a user who passes nothing gets:

1. Read the training rows (CSV/TSV/JSONL, errors name the file and line); `--max-train-examples N`
   keeps the first N rows in file order (no shuffling before the cut, so a run is reproducible
   and cheap to shrink). Validation rows come from `--validation`, else a seeded 10% of the
   training rows is held out.
2. Learn the label vocabulary from the training labels (strings or integers); a validation label
   outside it is an error naming the file and line.
3. Choose the sequence length from the training data (95th percentile of the tokenized lengths,
   rounded up to a multiple of 8, capped at the checkpoint's maximum; `data.sequence_length`)
   unless `--sequence-length` is given, and fit long texts with `--truncation` (auto by default:
   head_tail for single texts at 256 tokens and more, else head; see `data.truncation.resolve_truncation`).
4. Batch in length buckets (each batch padded to the next of a few lengths; fixed shapes on TPU): SST-2
   sentences of ~13 tokens are not padded to 64.
5. Train with AdamW (peak 1e-4, warmup over the first 10% of steps, linear decay, weight decay
   0.01, gradient clipping 1.0) and freeze-then-unfreeze: the head trains alone for the warmup steps,
   then everything with layer-wise LR decay 0.9 and a fresh warmup (`training.freezing`); 3 epochs,
   batch 32, Keras progress bars. With LLRD the encoder's blocks get 0.9..0.28 (12 layers) of
   the peak, as in ELECTRA's recipe (1e-4 with decay 0.8); on SST-2 (2,000 rows, all-MiniLM-L6-v2)
   1e-4 gave 79.7% dev accuracy against 78.0% for 5e-5. Early stopping watches the validation
   metric (accuracy for classification, loss otherwise) and the best epoch's weights are restored.
6. Score the validation set (window logits pooled per document), and write the model directory
   (`training.model_dir`): model, tokenizer, labels, training config, `metrics.json`,
   `report.txt` (per-class precision/recall/F1, confusion matrix) and `curves.png`.

One code path for every `--strategy` (variables are created under `strategy.scope()`) and for
`--jit-compile`. Tasks are dispatched by `--task` (`_RUNNERS`): ``token-classification`` reads
CoNLL files in `training.token_classification_job`; question answering has a task model but no
job yet.

Example:
    $ ptft finetune --model sentence-transformers/all-MiniLM-L6-v2 --train train.tsv --validation dev.tsv \\
        --text-column sentence --label-column label --output runs/sst2

    >>> from ptft_keras.training.finetune import finetune
    >>> result = finetune(train="train.tsv", validation="dev.tsv", text_column="sentence",
    ...                   output="runs/sst2")  # doctest: +SKIP
    >>> result.report["metrics"]["accuracy"]  # doctest: +SKIP
    0.91
"""
from __future__ import annotations

import math

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ptft_keras.config import option
from ptft_keras.data.truncation import (
    AUTO,
    TRUNCATIONS,
    WINDOW_POOLINGS,
    check_truncation,
    content_budget,
    describe_truncation,
    resolve_truncation,
)
from ptft_keras.errors import ConfigError, DataError
from ptft_keras.export.text_normalization import MODES as TEXT_NORMALIZATIONS
from ptft_keras.training.strategy import STRATEGIES

#: --task values -> the SequenceClassifier problem type (tasks without one have no reader here yet)
SEQUENCE_TASKS = {
    "classification": "single_label_classification",
    "multilabel": "multi_label_classification",
    "regression": "regression",
}
TASKS = (*SEQUENCE_TASKS, "token-classification", "question-answering")
PADDINGS = ("auto", "dynamic", "bucket", "fixed")


@dataclass
class FinetuneConfig:
    model: Optional[str] = option(
        None, "checkpoint to fine-tune: HF directory, .keras file, Hub id or keras-hub preset "
        "(the Python API defaults to the offline all-MiniLM-L6-v2)"
    )
    train: Optional[str] = option(None, "training data: a CSV, TSV or JSONL file (or glob, or tfds:NAME@SPLIT)")
    validation: Optional[str] = option(None, "validation data (default: hold out --validation-fraction of the training rows)")
    output: Optional[str] = option(None, "directory for the fine-tuned model, its report and training curves")
    task: str = option("classification", "what to predict", choices=TASKS)
    text_column: str = option("text", "column holding the text")
    text_pair_column: Optional[str] = option(None, "column holding the second text of sentence pairs")
    label_column: str = option("label", "column holding the label (multilabel: 'a|b' or a JSON list)")
    label_separator: str = option("|", "multilabel: separator between the labels of a field")
    max_train_examples: Optional[int] = option(
        None, "use only the first N training rows, in file order (taken before any shuffling)", positive=True
    )
    validation_fraction: float = option(
        0.1, "share of the training rows held out (seeded) for validation when --validation is not given; 0: none"
    )
    epochs: int = option(3, "passes over the training data (including the head-only epochs)", positive=True)
    batch_size: int = option(32, "global batch size (split across replicas)", positive=True)
    learning_rate: float = option(1e-4, "peak AdamW learning rate of the head (LLRD scales each block below by --layer-lr-decay)", positive=True)
    warmup_ratio: float = option(0.1, "share of all training steps with linear warmup, then linear decay to 0")
    weight_decay: float = option(0.01, "AdamW decoupled weight decay (not on biases and LayerNorm)")
    freeze_epochs: int = option(0, "epochs training only the task head before the encoder is unfrozen (0: none; see --freeze-steps)")
    freeze_steps: int = option(
        -1, "with --freeze-epochs 0: optimizer steps training only the head before everything is unfrozen with a "
        "fresh warmup; -1 (default): as many as the warmup (--warmup-ratio of all steps); 0: no head-only stage"
    )
    unfreeze: str = option("all", "after the head-only epochs: unfreeze 'all' blocks at once, or 'gradual'ly (one per epoch, top-down)", choices=("all", "gradual"))
    train_top_blocks: Optional[int] = option(
        None, "unfreeze only the top N transformer blocks (1: the recipe 'freeze every encoder layer but the last'); "
        "the blocks below and the embeddings stay frozen for the whole run (default: everything is unfrozen)"
    )
    layer_lr_decay: float = option(0.9, "layer-wise learning-rate decay: each block further down gets this factor (1: off)", positive=True)
    early_stopping_patience: int = option(
        2, "stop after this many epochs without a better validation metric (0: never stop early); the best epoch's weights are restored either way"
    )
    monitor: Optional[str] = option(
        None, "validation metric for early stopping and best weights, e.g. val_accuracy or val_loss "
        "(default: val_accuracy for classification, val_loss otherwise)"
    )
    sequence_length: Optional[int] = option(
        None, "tokens per sequence (default: the 95th percentile of the training lengths, rounded up to a multiple "
        "of 8, capped at the checkpoint's maximum)", positive=True
    )
    truncation: str = option(
        AUTO, "long single texts: keep the 'head', the 'tail', 'head_tail' (first --head-tokens + the end), or split "
        "into overlapping 'windows' whose logits are pooled per document; auto: head_tail at sequence lengths of 256 "
        "and more (single texts), else head",
        choices=(AUTO, *TRUNCATIONS)
    )
    head_tokens: Optional[int] = option(
        None, "head_tail: tokens kept from the start, the rest of the budget comes from the end (default: 128 at "
        "sequence lengths of 256 and more, else half the budget)", positive=True
    )
    window_stride: Optional[int] = option(None, "windows: tokens between window starts (default: half a window)", positive=True)
    window_pooling: str = option("mean", "windows: pool a document's window logits by 'mean' or 'max'", choices=WINDOW_POOLINGS)
    text_normalization: str = option("none", "rewrite texts before tokenizing, the same in training, evaluation, prediction and export (html_breaks: <br /> -> space)", choices=TEXT_NORMALIZATIONS)
    padding: str = option("auto", "batch padding: dynamic (to the longest in the batch), bucket (to the next of a few lengths), fixed; auto: fixed on TPU, else bucket", choices=PADDINGS)
    threshold: float = option(0.5, "multilabel: a label is predicted when its probability is at least this")
    seed: int = option(0, "seed of the weight init, dropout, shuffling and the validation hold-out")
    strategy: str = option("default", "tf.distribute strategy", choices=STRATEGIES)
    tpu: Optional[str] = option(None, "TPU name or grpc:// address for --strategy tpu")
    jit_compile: bool = option(False, "compile the train and predict steps with XLA")
    skip_bad_rows: bool = option(False, "leave out malformed rows (counted in one warning) instead of stopping")
    verbose: int = option(1, "Keras progress output: 0 silent, 1 progress bars, 2 one line per epoch")


@dataclass
class FinetuneResult:
    """What `finetune` returns: the trained model, its tokenizer, the directory's `ModelInfo`,
    the final report (see `training.report`), the Keras history and the files written."""

    model: object
    tokenizer: object
    info: object
    report: dict
    history: dict
    files: dict


def finetune(config: FinetuneConfig | None = None, /, **options) -> FinetuneResult:
    """Fine-tune as `ptft finetune` does; pass a `FinetuneConfig` or its fields as keywords.

    Example:
        >>> result = finetune(train="train.tsv", text_column="sentence", output="runs/sst2",
        ...                   max_train_examples=2000, epochs=2)  # doctest: +SKIP
    """
    from ptft_keras.config import from_dict, to_dict

    config = from_dict(FinetuneConfig, {**(to_dict(config) if config else {}), **options})
    if not config.train:
        raise ConfigError("finetune needs training data: pass train=FILE (--train FILE)")
    if not config.output:
        raise ConfigError("finetune needs an output directory: pass output=DIR (--output DIR)")
    runner = _RUNNERS.get(config.task)
    if runner is None:
        raise ConfigError(
            f"task {config.task!r} is not available in `ptft finetune` yet (it needs its own file reader); "
            f"use one of {', '.join(_RUNNERS)}, or build the task model from ptft_keras.tasks in Python"
        )
    return runner(config)


def run(config: FinetuneConfig) -> int:
    finetune(config)
    return 0


# --------------------------------------------------------------------------------------------- data
def read_splits(config: FinetuneConfig):
    """`(train, validation or None, validation name)` as `sources.Examples`, with the --max-train-examples cut."""
    import numpy as np

    from ptft_keras.data.sources import read_examples

    columns = dict(text_column=config.text_column, text_pair_column=config.text_pair_column,
                   label_column=config.label_column, skip_bad_rows=config.skip_bad_rows)
    train = read_examples(config.train, **columns)
    if config.max_train_examples is not None and config.max_train_examples < len(train):
        train = train.select(range(config.max_train_examples))
    if config.validation:
        return train, read_examples(config.validation, **columns), str(config.validation)
    if not 0 <= config.validation_fraction < 1:
        raise ConfigError(f"validation_fraction must be in [0, 1), got {config.validation_fraction}")
    held_out = int(round(len(train) * config.validation_fraction))
    if held_out == 0:
        return train, None, None
    if held_out >= len(train):
        raise DataError(f"only {len(train)} training rows: too few to hold out a validation set; pass --validation FILE",
                        path=config.train)
    order = np.random.default_rng(config.seed).permutation(len(train))
    validation_rows, train_rows = sorted(order[:held_out]), sorted(order[held_out:])
    name = f"{held_out} rows held out of {config.train} (seed {config.seed})"
    return train.select(train_rows), train.select(validation_rows), name


def label_names_for(config: FinetuneConfig, train) -> list[str]:
    """Label names in id order, learned from the training labels (none for regression)."""
    from ptft_keras.data.labels import LabelVocabulary

    if config.task == "regression":
        return []
    return LabelVocabulary.learn(train.labels, multilabel=config.task == "multilabel",
                                 separator=config.label_separator).labels


def choose_padding(config: FinetuneConfig, strategy) -> str:
    """The batch padding: the configured one, or fixed on TPU, else length buckets.

    Buckets pad each batch to the next of a few lengths: on SST-2 that leaves 20% padding against 67%
    for padding to the longest sentence of a shuffled batch (benchmarks/input_pipeline.py), and XLA
    compiles only a few shapes.
    """
    from ptft_keras.training.strategy import needs_static_shapes

    if config.padding != "auto":
        return config.padding
    if needs_static_shapes(strategy):
        return "fixed"
    return "bucket"


def resolve_sequence_length(config: FinetuneConfig, tokenizer, backbone, train) -> int:
    """--sequence-length, or the length chosen from the training texts; printed either way."""
    from ptft_keras.data.sequence_length import DEFAULT_PERCENTILE, sequence_length_from_data

    limit = min(int(getattr(backbone, "max_sequence_length", tokenizer.model_max_length)), tokenizer.model_max_length)
    if config.sequence_length is not None:
        if config.sequence_length > limit:
            raise ConfigError(f"sequence_length {config.sequence_length} exceeds the checkpoint's maximum of {limit} "
                              f"positions; use at most {limit}")
        print(f"sequence length: {config.sequence_length} (--sequence-length)")
        return config.sequence_length

    length = sequence_length_from_data(tokenizer, train.texts, train.pairs, max_length=limit, seed=config.seed,
                                       text_normalization=config.text_normalization)
    print(f"sequence length: {length} (the {DEFAULT_PERCENTILE:g}th percentile of the training lengths, rounded up "
          f"to a multiple of 8, capped at {limit}; set --sequence-length to change it)")
    return length


def describe_fit(config: FinetuneConfig, sequence_length: int) -> str:
    """How texts over the budget are fitted, in words (printed when training starts).

    Example:
        >>> describe_fit(FinetuneConfig(truncation="head_tail", head_tokens=128), 512)
        'head_tail (texts over 510 tokens keep their first 128 and last 382)'
    """
    detail = describe_truncation(config.truncation, content_budget(sequence_length), head_tokens=config.head_tokens,
                                 window_stride=config.window_stride, window_pooling=config.window_pooling)
    return f"{config.truncation} ({detail})"


def model_info(config: FinetuneConfig, label_names, sequence_length: int, output, **resolved):
    """The `ModelInfo` of this run; its `training_config` (training_config.json) is the config with the
    values chosen at run time (`sequence_length`, and any `resolved` ones such as `padding`)."""
    from ptft_keras.training.model_dir import ModelInfo

    resolved = {**dataclasses.asdict(config), "sequence_length": sequence_length, **resolved}
    return ModelInfo(
        directory=str(output), task=config.task, label_names=list(label_names), sequence_length=sequence_length,
        truncation=config.truncation, head_tokens=config.head_tokens, window_stride=config.window_stride,
        window_pooling=config.window_pooling, text_normalization=config.text_normalization,
        text_column=config.text_column, text_pair_column=config.text_pair_column, label_column=config.label_column,
        training_config=resolved,
    )


# ------------------------------------------------------------------------------------------ training
def default_monitor(task: str) -> str:
    """The validation metric early stopping watches: accuracy for classification, else the loss."""
    return "val_accuracy" if task == "classification" else "val_loss"


def freeze_schedule(config: FinetuneConfig, steps_per_epoch: int | None = None):
    """The freeze-then-unfreeze schedule of a run: head-only epochs, or else head-only steps.

    The default is a head-only stage as long as the warmup, then everything with LLRD and a fresh
    warmup: on SST-2 (10k rows, all-MiniLM-L6-v2) a whole head-only epoch cost accuracy against plain
    full fine-tuning, while a short one protects the encoder from the random head's first gradients
    (benchmarks/RESULTS.md).
    """
    from ptft_keras.training.freezing import FreezeSchedule

    if config.train_top_blocks is not None and config.train_top_blocks < 0:
        raise ConfigError(f"train_top_blocks: {config.train_top_blocks} must be 0 (head only) or more "
                          "(--train-top-blocks)")
    top = {"top_blocks": config.train_top_blocks}
    if config.freeze_epochs > 0:
        return FreezeSchedule(head_only=config.freeze_epochs, unfreeze=config.unfreeze, lr_decay=config.layer_lr_decay,
                              **top)
    steps = config.freeze_steps
    if steps < 0:
        steps = math.ceil(config.warmup_ratio * steps_per_epoch * config.epochs) if steps_per_epoch else 0
    if config.unfreeze == "gradual":
        every = max(steps_per_epoch or 1, 1)
        return FreezeSchedule(head_only=steps, unfreeze="gradual", every=every, unit="step",
                              lr_decay=config.layer_lr_decay, **top)
    return FreezeSchedule(head_only=steps, unit="step", lr_decay=config.layer_lr_decay, **top)


def training_callbacks(config: FinetuneConfig, has_validation: bool, steps_per_epoch: int | None = None) -> list:
    """Freeze-then-unfreeze (with LLRD), and early stopping with best-weight restore when validating."""
    import keras

    from ptft_keras.training.freezing import FreezeThenUnfreeze

    schedule = freeze_schedule(config, steps_per_epoch)
    callbacks = [FreezeThenUnfreeze(schedule)]
    if has_validation:
        patience = config.early_stopping_patience or config.epochs  # 0: watch, keep the best, never stop
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=config.monitor or default_monitor(config.task), patience=patience, restore_best_weights=True,
            verbose=1,
        ))
    return callbacks


def _finetune_sequence_task(config: FinetuneConfig) -> FinetuneResult:
    """Classification, multi-label classification and regression of single texts or text pairs."""
    import keras

    from ptft_keras.data.tokenizer import Tokenizer
    from ptft_keras.data.truncation import encode_texts, fitted_dataset
    from ptft_keras.models.backbone import Backbone
    from ptft_keras.tasks.sequence_classifier import SequenceClassifier
    from ptft_keras.training.evaluate import score_examples, targets_for
    from ptft_keras.training.optimizer import make_optimizer
    from ptft_keras.training.strategy import is_chief, needs_static_shapes, resolve

    keras.utils.set_random_seed(config.seed)
    strategy = resolve(config.strategy, tpu=config.tpu)
    checkpoint = config.model or str(_default_checkpoint())
    output = Path(config.output)

    train, validation, validation_name = read_splits(config)
    label_names = label_names_for(config, train)
    with strategy.scope():
        backbone = Backbone.from_pretrained(checkpoint)
    tokenizer = Tokenizer.from_pretrained(checkpoint)
    print(f"fine-tuning {checkpoint} ({type(backbone).__name__}, {backbone.num_layers} layers, hidden "
          f"{backbone.hidden_dim}) for {config.task} on {len(train)} rows of {config.train}")
    print(f"validation: {validation_name or 'none (early stopping off)'}"
          + (f", {len(validation)} rows" if validation is not None else ""))
    if label_names:
        print(f"labels ({len(label_names)}): {', '.join(label_names[:20])}{' ...' if len(label_names) > 20 else ''}")

    sequence_length = resolve_sequence_length(config, tokenizer, backbone, train)
    truncation, head_tokens = resolve_truncation(config.truncation, content_budget(sequence_length),
                                                 pairs=train.pairs is not None, head_tokens=config.head_tokens)
    config = dataclasses.replace(config, truncation=truncation, head_tokens=head_tokens)
    check_truncation(config.truncation, content_budget(sequence_length), head_tokens=config.head_tokens,
                     stride=config.window_stride)
    print(f"truncation: {describe_fit(config, sequence_length)}")
    padding = choose_padding(config, strategy)
    info = model_info(config, label_names, sequence_length, output, model=checkpoint, padding=padding)
    train_targets, train = targets_for(info, train, skip_bad_rows=config.skip_bad_rows)
    drop_remainder = needs_static_shapes(strategy)

    def dataset(examples, targets, shuffle):
        fitted = encode_texts(
            tokenizer, examples.texts, examples.pairs, sequence_length=sequence_length, truncation=config.truncation,
            head_tokens=config.head_tokens, window_stride=config.window_stride,
            text_normalization=config.text_normalization,
        )
        ds = fitted_dataset(fitted, tokenizer, targets, batch_size=config.batch_size, sequence_length=sequence_length,
                            padding=padding, shuffle=shuffle, seed=config.seed, drop_remainder=drop_remainder)
        return ds, len(fitted)

    train_ds, train_rows = dataset(train, train_targets, shuffle=True)
    validation_ds = None
    if validation is not None:
        validation_targets, validation = targets_for(info, validation, skip_bad_rows=config.skip_bad_rows)
        validation_ds, _ = dataset(validation, validation_targets, shuffle=False)
    if config.truncation == "windows":
        print(f"windows: {train_rows} training windows from {len(train)} texts")

    steps = max(int(train_ds.cardinality()), 1)
    with strategy.scope():
        model = SequenceClassifier(backbone, label_names=label_names or None,
                                   num_labels=None if label_names else 1, problem_type=SEQUENCE_TASKS[config.task])
        model.compile(
            optimizer=make_optimizer(config.learning_rate, warmup_ratio=config.warmup_ratio,
                                     total_steps=steps * config.epochs, weight_decay=config.weight_decay),
            jit_compile=config.jit_compile,
        )
    history = model.fit(train_ds, validation_data=validation_ds, epochs=config.epochs,
                        callbacks=training_callbacks(config, validation_ds is not None, steps), verbose=config.verbose,
                        shuffle=False)  # the dataset shuffles itself, reproducibly
    history = {k: [float(v) for v in values] for k, values in history.history.items()}

    report = {"task": config.task, "metrics": {}, "history": history}
    if validation is not None:
        report = score_examples(model, tokenizer, info, validation, history=history, split="validation")
    files = {}
    if is_chief(strategy):
        files = _write_outputs(output, model, tokenizer, info, report)
    return FinetuneResult(model=model, tokenizer=tokenizer, info=info, report=report, history=history, files=files)


def _default_checkpoint():
    from ptft_keras.models.default_checkpoint import default_checkpoint_path

    return default_checkpoint_path()


def _write_outputs(output: Path, model, tokenizer, info, report: dict) -> dict:
    from ptft_keras.training import model_dir
    from ptft_keras.training.report import format_report, write_report

    model_dir.save_model_dir(output, model, tokenizer, task=info.task, label_names=info.label_names,
                             training_config=info.training_config)
    files = {
        "model": output / model_dir.MODEL_FILE,
        "tokenizer": output / model_dir.TOKENIZER_DIR,
        "labels": output / model_dir.LABELS_FILE,
        "config": output / model_dir.CONFIG_FILE,
        **write_report(output, report),
    }
    if report.get("metrics"):
        print("\nvalidation: " + format_report(report))
    print(f"\nfine-tuned model directory: {output}")
    for name, path in files.items():
        print(f"  {name:<9} {path}")
    return files


def _finetune_token_classification(config: FinetuneConfig) -> FinetuneResult:
    """CoNLL files, one label per word (`training.token_classification_job`)."""
    from ptft_keras.training.token_classification_job import finetune_token_classification

    return finetune_token_classification(config)


#: --task -> the function that runs it
_RUNNERS = {**{task: _finetune_sequence_task for task in SEQUENCE_TASKS},
            "token-classification": _finetune_token_classification}
