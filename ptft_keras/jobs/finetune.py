"""`ptft finetune`: fine-tune a checkpoint on a labelled file and write a model directory with its report.

One skeleton for every task (`run_finetune`); what differs between tasks is a `TaskKind` (`jobs.task_kind`,
registered in `jobs.kinds`): sequence tasks in `jobs.sequence_kind`, token classification in
`jobs.token_kind`. What a run does, with the defaults a user who passes nothing gets:

1. Read the training rows (errors name the file and line); `--max-train-examples N` keeps the first N
   rows in file order (no shuffling before the cut, so a run is reproducible and cheap to shrink).
   Validation rows come from `--validation`, else a seeded 10% of the training rows is held out.
   Labels are learned from the training rows; a validation label outside them is an error.
2. Choose the sequence length from the training data (the kind's rule) unless `--sequence-length` is
   given, capped at the checkpoint's maximum, and resolve how long texts are fitted (`--truncation`).
3. Batch with little padding: length buckets for sequence tasks, length-grouped batches for tokens;
   fixed shapes on TPU.
4. Train with AdamW (warmup over the first 10% of steps, linear decay, weight decay 0.01, gradient
   clipping 1.0) and freeze-then-unfreeze: the head trains alone for the warmup steps, then everything
   with layer-wise LR decay 0.9 and a fresh warmup (`training.freezing`); 3 epochs, batch 32. With LLRD
   the encoder's blocks get 0.9..0.28 (12 layers) of the peak, as in ELECTRA's recipe; on SST-2 (2,000
   rows, all-MiniLM-L6-v2) 1e-4 gave 79.7% dev accuracy against 78.0% for 5e-5. A kind may replace
   these defaults (token classification: 2e-4, no head-only stage, no LLRD). Early stopping watches the
   kind's validation metric and the best epoch's weights are restored.
5. Score the validation set and write the model directory (`jobs.model_dir`): model, tokenizer, labels,
   training config, `metrics.json`, `report.txt` and `curves.png`.

One code path for every `--strategy` (variables are created under `strategy.scope()`) and for
`--jit-compile`.

Example:
    $ ptft finetune --train train.tsv --validation dev.tsv --text-column sentence --output runs/sst2

    >>> from ptft_keras.jobs.finetune import finetune
    >>> result = finetune(train="train.tsv", validation="dev.tsv", text_column="sentence",
    ...                   output="runs/sst2")  # doctest: +SKIP
    >>> result.report["metrics"]["accuracy"]  # doctest: +SKIP
    0.91
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ptft_keras.config import from_dict, option, to_dict
from ptft_keras.data.text_rewrites import MODES as TEXT_NORMALIZATIONS
from ptft_keras.data.truncation_rules import AUTO, TRUNCATIONS, WINDOW_POOLINGS
from ptft_keras.errors import ConfigError
from ptft_keras.jobs.kinds import TASKS, kind_for
from ptft_keras.jobs.remote import Workdir
from ptft_keras.training.strategy import STRATEGIES

PADDINGS = ("auto", "dynamic", "bucket", "fixed")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
LOG_DIR = "logs"
BACKUP_DIR = ".resume"
#: options a resumed run may change (they do not change what is trained)
RESUMABLE_CHANGES = ("verbose", "overwrite", "output", "save_every", "log_every", "steps_per_execution")


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
    pooling: str = option(
        "auto", "sequence tasks: what the head reads: 'pooled' (BERT's pooler over [CLS], as transformers' "
        "BertForSequenceClassification), 'cls' (the [CLS] vector), 'mean' (over real tokens); auto: the checkpoint's "
        "own pooling when it is a sentence-transformers model (mean for the default all-MiniLM-L6-v2), else pooled "
        "when the encoder has a pooler, cls on other transformers and mean on other encoders",
        choices=("auto", "pooled", "cls", "mean"))
    head_dropout: float = option(0.1, "dropout rate on the head's input (classification and token tasks)")
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
    steps_per_execution: int = option(1, "optimizer steps per call into the compiled train step (TPUs: 32 or more "
                                      "saves a host round trip per step; backups and logs still count steps)",
                                      positive=True)
    deterministic: bool = option(False, "bitwise-reproducible kernels (enable_op_determinism; slower), e.g. to "
                                 "compare a resumed run with an unbroken one exactly")
    precision: str = option("float32", "compute dtype of the encoder: mixed_bfloat16 on TPUs and recent GPUs, "
                            "mixed_float16 on older GPUs (adds loss scaling); float32 on CPUs", choices=PRECISIONS)
    log_every: int = option(10, "optimizer steps between TensorBoard step scalars and points of the loss curve",
                            positive=True)
    skip_bad_rows: bool = option(False, "leave out malformed rows (counted in one warning) instead of stopping")
    allow_pickle: bool = option(False, "read a pickled pytorch_model.bin checkpoint (unpickling can run code: only "
                                "for checkpoints you trust; safetensors needs no such flag)")
    overwrite: bool = option(False, "replace a finished model directory at --output (without it, such a run is "
                             "refused; an unfinished one with the same options is resumed)")
    save_every: Optional[int] = option(
        None, "optimizer steps between backups that a rerun resumes from (and at every epoch end); default: a "
        "quarter epoch, between 20 and 500 steps", positive=True)
    verbose: int = option(1, "Keras progress output: 0 silent, 1 progress bars (one line per epoch when the output is "
                          "not a terminal), 2 one line per epoch")
    encoder_options: Optional[str] = option(
        None, "--model bilstm: sizes of the fresh encoder as key=value pairs, e.g. 'embedding_dim=128,lstm_units=128,"
        "num_layers=1,dropout=0.1,pooling=max' (pooling: max, mean or last; those are the defaults)")
    vocab_size: Optional[int] = option(
        None, "--model bilstm: entries of the WordPiece vocabulary trained on the training texts (default 8000)",
        positive=True)
    word_vectors: Optional[str] = option(
        None, "BiLSTM encoders: initialise the embedding rows of the vocabulary entries found in this word2vec "
        "(text or .bin) or GloVe file; a fresh encoder's embedding_dim defaults to their dimension")


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
    config = from_dict(FinetuneConfig, {**(to_dict(config) if config else {}), **options})
    if not config.train:
        raise ConfigError("finetune needs training data: pass train=FILE (--train FILE)")
    if not config.output:
        raise ConfigError("finetune needs an output directory: pass output=DIR (--output DIR)")
    if not 0 <= config.head_dropout < 1:
        raise ConfigError(f"head_dropout must be in [0, 1), got {config.head_dropout}")
    return run_finetune(config, kind_for(config.task))


def run(config: FinetuneConfig) -> int:
    finetune(config)
    return 0


# ------------------------------------------------------------------------------------- the skeleton
def run_finetune(config: FinetuneConfig, kind) -> FinetuneResult:
    """The one fine-tuning skeleton: `kind` (a `TaskKind`) says what differs between tasks."""
    import keras

    from ptft_keras.jobs.timing import PhaseClock
    from ptft_keras.training.strategy import resolve

    clock = PhaseClock()
    clock.mark_startup()
    config = kind.with_defaults(config)
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    strategy = resolve(config.strategy, tpu=config.tpu)
    check_strategy(config, strategy)
    checkpoint = config.model or str(default_checkpoint())
    from ptft_keras.storage import local_copy

    checkpoint = str(local_copy(checkpoint, "model"))  # gs://...: fetched once (Keras, safetensors read local files)
    workdir = Workdir(config.output)  # gs://, ram://, ...: a local mirror, pushed after each backup and at the end
    try:
        return finetune_in(workdir, config, kind, clock, strategy, checkpoint)
    finally:
        workdir.close()


def finetune_in(workdir, config: FinetuneConfig, kind, clock, strategy, checkpoint: str) -> FinetuneResult:
    """`run_finetune` writing into `workdir` (a `jobs.remote.Workdir`)."""
    from ptft_keras.jobs.encoder_loading import load_finetune_encoder
    from ptft_keras.training.strategy import is_chief, needs_static_shapes

    output = workdir.local
    chief = is_chief(strategy)
    options = {**fingerprint(config), **kind.fingerprint_extra(config)}
    workdir.pull()  # every worker: a resumed run restores the chief's backup on each of them
    # before any work: a finished dir is refused (by the chief; the other workers only read the backup)
    resume = resume_state(output, config, options) if chief else worker_resume_state(output, config)

    with clock.phase("data"):
        splits = kind.read_splits(config)
    with clock.phase("build"), strategy.scope():
        backbone, tokenizer, config = load_finetune_encoder(checkpoint, config, splits)
    print(f"fine-tuning {checkpoint} ({type(backbone).__name__}, {backbone.num_layers} layers, hidden "
          f"{backbone.hidden_dim}) for {config.task} on {len(splits.train)} {kind.unit} of {config.train}")
    for line in kind.describe(config, splits):
        print(line)

    with clock.phase("data"):
        sequence_length = resolve_sequence_length(config, kind, tokenizer, backbone, splits)
        config = kind.resolve_fit(config, sequence_length, splits)
        padding = choose_padding(config.padding, strategy, kind.default_padding)
        info = model_info(config, splits.label_names, sequence_length, output, model=checkpoint, padding=padding,
                          **kind.info_extra(config))
        prepared = kind.training_datasets(config, tokenizer, splits, info, padding=padding,
                                          drop_remainder=needs_static_shapes(strategy), strategy=strategy)

    with clock.phase("build"), strategy.scope():
        model = kind.build_model(backbone, config, splits.label_names)
        model.compile(optimizer=finetune_optimizer(config, prepared.steps_per_epoch), jit_compile=config.jit_compile,
                      steps_per_execution=config.steps_per_execution)
        model(tokenizer(["a"], sequence_length=8), training=False)  # built before fit, so a backup can load
    with clock.phase("train"):
        history = fit_resumably(model, config, kind, prepared, output, resume, chief=chief, options=options,
                                on_backup=lambda: workdir.push(last=(f"{BACKUP_DIR}/state.json",)))
    epochs_run = len(next(iter(history.values()), []))
    step_log = history.pop("_step_log")

    with clock.phase("evaluate"):
        report = kind.score(model, tokenizer, info, splits, prepared, history)
    report["steps"] = {"step": step_log.steps, "loss": [round(v, 6) for v in step_log.losses]}
    files = {}
    if chief:
        with clock.phase("save"):
            report["timing"] = clock.as_dict()
            files = write_outputs(output, model, tokenizer, info, report)
            remove_tree(output / BACKUP_DIR)  # finished: nothing left to resume
            workdir.push()
            if workdir.remote:
                print(f"copied to {workdir.target}")
    print(closing_summary(clock, rows=prepared.train_rows * epochs_run, unit=kind.unit, output=workdir.target,
                          logs=f"{workdir.target.rstrip('/')}/{LOG_DIR}" if chief else None))
    return FinetuneResult(model=model, tokenizer=tokenizer, info=info, report=report, history=history, files=files)


def fingerprint(config: FinetuneConfig) -> dict:
    """The options a resumed run must share with the run it continues."""
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in RESUMABLE_CHANGES}


def remove_tree(path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def resume_state(output: Path, config: FinetuneConfig, options: dict) -> dict | None:
    """What a run at `output` starts from: a backup state to resume, or None to start afresh.

    A finished model directory is refused unless `--overwrite`; an unfinished run with other options too
    (naming the options that differ); `--overwrite` clears the old backup and logs.
    """
    from ptft_keras.jobs.model_dir import is_model_dir
    from ptft_keras.training.finetune_backup import read_backup_state

    if output.exists() and not output.is_dir():
        raise ConfigError(f"output: {output} is a file; pass a directory to --output")
    backup = output / BACKUP_DIR
    if config.overwrite:
        remove_tree(backup)
        remove_tree(output / LOG_DIR)
        return None
    state = read_backup_state(backup)
    if state is None:
        if is_model_dir(output):
            raise ConfigError(f"output: {output} holds a finished model; pass --overwrite to replace it, or choose "
                              "another --output")
        remove_tree(output / LOG_DIR)  # a run killed before its first backup: its curves start over too
        return None
    wanted, saved = options, state.get("fingerprint") or {}
    # an option added after the backup was written counts as unchanged at its default
    defaults = {f.name: f.default for f in dataclasses.fields(FinetuneConfig)}
    changed = sorted(k for k in set(wanted) | set(saved) if wanted.get(k) != saved.get(k, defaults.get(k)))
    if changed:
        raise ConfigError(f"output: {output} holds an unfinished run with other options ({', '.join(changed)}); "
                          "rerun with the same options to resume it, or pass --overwrite to start over")
    return state


def worker_resume_state(output: Path, config: FinetuneConfig) -> dict | None:
    """`resume_state` of a non-chief worker of a multi-worker job: the chief's backup state, read only (the
    chief alone checks, clears and writes the directory). Without it such a worker would start from step 0
    while the chief resumes, and the job would hang on mismatched steps."""
    from ptft_keras.training.finetune_backup import read_backup_state

    return None if config.overwrite else read_backup_state(output / BACKUP_DIR)


def fit_resumably(model, config: FinetuneConfig, kind, prepared, output: Path, resume: dict | None, *,
                  chief: bool, options: dict, on_backup=None) -> dict:
    """`model.fit` with backups every `--save-every` steps and at each epoch end, continuing `resume` (a backup
    state) at its exact batch: the weights, optimizer, dropout generators, early-stopping counters, freeze
    stage, learning-rate schedule and the data order are those of the run it continues. Returns the Keras
    history of the whole run (with its `StepLog` under ``"_step_log"``)."""
    from ptft_keras.training.finetune_backup import (
        FinetuneBackup,
        ResumableEarlyStopping,
        best_weights,
        restore_backup,
    )
    from ptft_keras.training.freezing import FreezeThenUnfreeze, layer_groups, set_trainable_groups
    from ptft_keras.training.step_log import StepLog

    steps = prepared.steps_per_epoch
    total = steps * config.epochs
    log_every = min(config.log_every, max(1, total // 50))
    step_log = StepLog(output / LOG_DIR if chief else None, every=log_every)
    schedule = freeze_schedule(config, steps)
    freeze = FreezeThenUnfreeze(schedule)
    validating = prepared.validation_data is not None or bool(prepared.callbacks)
    stopping = None
    if validating:
        monitor, mode = kind.monitor(config)
        stopping = ResumableEarlyStopping(monitor=monitor, mode=mode, restore_best_weights=True, verbose=1,
                                          patience=config.early_stopping_patience or config.epochs)
    start, history = (0, 0, 0), {}
    if resume is not None:
        with model.distribute_strategy.scope():
            set_trainable_groups(model, len(layer_groups(model)))
            model.optimizer.build(model.trainable_variables)
        restore_backup(model, output / BACKUP_DIR, resume)
        start, history = (resume["step"], resume["epoch"], resume["batch"]), resume["history"]
        step_log.step = resume["step"]
        saved_log = resume.get("step_log") or {}
        step_log.steps, step_log.losses = list(saved_log.get("steps", [])), list(saved_log.get("losses", []))
        if stopping is not None:
            stopping.resume_with(resume.get("early_stopping"), best_weights(output / BACKUP_DIR, resume))
        freeze.resume_from = resume["step"] if schedule.unit == "step" else resume["epoch"]
        print(f"resuming from the backup in {output / BACKUP_DIR}: epoch {resume['epoch'] + 1}, batch "
              f"{resume['batch']} of {steps} (optimizer step {resume['step']} of {total})")
        for _ in range(resume["epoch"]):  # the shuffle's seed stream, advanced as the finished epochs did
            iter(prepared.train)
    save_every = config.save_every or min(max(math.ceil(steps / 4), 20), 500)
    backup = FinetuneBackup(output / BACKUP_DIR, save_every=save_every if chief else 10**12,
                            fingerprint=options, early_stopping=stopping, step_log=step_log,
                            start=start, history=history)
    if not chief:
        backup.save = lambda: None
    backup.on_saved = on_backup
    callbacks = [freeze, *prepared.callbacks, *([stopping] if stopping else []), step_log, backup]
    fit = dict(validation_data=prepared.validation_data, callbacks=callbacks,
               verbose=progress_verbosity(config.verbose), shuffle=False)  # the dataset shuffles itself
    epoch, batch = start[1], start[2]
    if batch and epoch < config.epochs:  # the rest of a partly trained epoch, then the others
        if stopping is not None:
            stopping.defer_restore = True
        model.fit(prepared.train.skip(batch), initial_epoch=epoch, epochs=epoch + 1, **fit)
        epoch += 1
        if stopping is not None:
            stopping.defer_restore = False
            stopping.resume_with(stopping.resume_state(), stopping.best_weights)
        freeze.resume_from = int(keras_step(model)) if schedule.unit == "step" else epoch
    stopped = model.stop_training or (stopping is not None and stopping.stopped_before_resume())
    if epoch < config.epochs and not stopped:
        model.fit(prepared.train, initial_epoch=epoch, epochs=config.epochs, **fit)
    elif stopping is not None:  # nothing left to train (resumed at the last epoch's end or an early stop)
        stopping.restore_without_fit(model)
    return {**backup.history, "_step_log": step_log}


def keras_step(model) -> int:
    """The optimizer's step count."""
    import keras

    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


def check_strategy(config: FinetuneConfig, strategy) -> None:
    """Settings that cannot work under `strategy`: float16 on TPU, a batch that does not split across replicas."""
    from ptft_keras.training.strategy import needs_static_shapes

    if config.precision == "mixed_float16" and needs_static_shapes(strategy):
        raise ConfigError("precision: TPUs compute in bfloat16, not float16; use --precision mixed_bfloat16")
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ConfigError(f"batch_size {config.batch_size} must be divisible by the {replicas} replicas of "
                          f"--strategy {config.strategy}; use a multiple of {replicas}")


def finetune_optimizer(config: FinetuneConfig, steps_per_epoch: int):
    """AdamW with warmup + linear decay over the run (loss scaling added for mixed_float16)."""
    import keras

    from ptft_keras.training.optimizer import make_optimizer

    optimizer = make_optimizer(config.learning_rate, warmup_ratio=config.warmup_ratio,
                               total_steps=steps_per_epoch * config.epochs, weight_decay=config.weight_decay)
    if config.precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def progress_verbosity(verbose: int) -> int:
    """Keras' `verbose`: progress bars (1) only on a terminal; one line per epoch (2) when the output is a
    file or a pipe, where `\r` bars would fill the log."""
    import sys

    return 2 if verbose == 1 and not sys.stdout.isatty() else verbose


def closing_summary(clock, *, rows: int, unit: str, output, logs=None) -> str:
    """The last lines of a run: wall time, throughput, the breakdown, where things went.

    Example:
        >>> from ptft_keras.jobs.timing import PhaseClock
        >>> clock = PhaseClock(start=0.0); clock.add("train", 10.0)
        >>> print(closing_summary(clock, rows=500, unit="rows", output="runs/x"))  # doctest: +ELLIPSIS
        done in ... 500 rows trained at 50.0 rows/s
          time: train 10.0 s
          model directory: runs/x
    """
    from ptft_keras.jobs.timing import format_seconds

    train = clock.phases.get("train", 0.0)
    rate = f" at {rows / train:.1f} {unit}/s" if train > 0 else ""
    lines = [f"done in {format_seconds(clock.total())}: {rows} {unit} trained{rate}",
             f"  time: {clock.breakdown()}", f"  model directory: {output}"]
    if logs is not None:
        lines.append(f"  TensorBoard: tensorboard --logdir {logs}")
    return "\n".join(lines)


def default_checkpoint():
    """The offline default checkpoint (all-MiniLM-L6-v2), used when `--model` is not given."""
    from ptft_keras.models.default_checkpoint import default_checkpoint_path

    return default_checkpoint_path()


def checkpoint_limit(tokenizer, backbone) -> int:
    """The most positions the checkpoint takes."""
    return min(int(getattr(backbone, "max_sequence_length", tokenizer.model_max_length)), tokenizer.model_max_length)


def resolve_sequence_length(config: FinetuneConfig, kind, tokenizer, backbone, splits) -> int:
    """--sequence-length (checked against the checkpoint), or the length the kind picks from the training data;
    printed either way."""
    limit = checkpoint_limit(tokenizer, backbone)
    if config.sequence_length is not None:
        if config.sequence_length > limit:
            raise ConfigError(f"sequence_length {config.sequence_length} exceeds the checkpoint's maximum of {limit} "
                              f"positions; use at most {limit}")
        print(f"sequence length: {config.sequence_length} (--sequence-length)")
        return config.sequence_length
    length, why = kind.choose_sequence_length(config, tokenizer, splits, limit)
    print(f"sequence length: {length} ({why})")
    return length


def choose_padding(padding: str, strategy, default: str = "bucket") -> str:
    """The batch padding: the configured one, or fixed when shapes must be static (TPU), else the kind's default.

    Length buckets pad each batch to the next of a few lengths: on SST-2 that leaves 20% padding against 67%
    for padding to the longest sentence of a shuffled batch (benchmarks/input_pipeline.py), and XLA
    compiles only a few shapes.

    Example:
        >>> import tensorflow as tf
        >>> choose_padding("auto", tf.distribute.get_strategy(), "grouped"), choose_padding("fixed", None)
        ('grouped', 'fixed')
    """
    from ptft_keras.training.strategy import needs_static_shapes

    if padding != "auto":
        return padding
    return "fixed" if needs_static_shapes(strategy) else default


def model_info(config: FinetuneConfig, label_names, sequence_length: int, output, **resolved):
    """The `ModelInfo` of this run; its `training_config` (training_config.json) is the config with the
    values chosen at run time (`sequence_length`, and any `resolved` ones such as `padding`)."""
    from ptft_keras.jobs.model_dir import ModelInfo

    resolved = {**dataclasses.asdict(config), "sequence_length": sequence_length, **resolved}
    return ModelInfo(
        directory=str(output), task=config.task, label_names=list(label_names), sequence_length=sequence_length,
        truncation=config.truncation, head_tokens=config.head_tokens, window_stride=config.window_stride,
        window_pooling=config.window_pooling, text_normalization=config.text_normalization,
        text_column=config.text_column, text_pair_column=config.text_pair_column, label_column=config.label_column,
        training_config=resolved,
    )


# ------------------------------------------------------------------------------------------ training
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
    if steps_per_epoch:  # the fresh warmup after an unfreeze: a tenth of an epoch, also in a resumed partial epoch
        top["warmup_steps"] = max(1, steps_per_epoch // 10)
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


def write_outputs(output: Path, model, tokenizer, info, report: dict) -> dict:
    """Write the model directory and its report; print where everything went."""
    from ptft_keras.jobs import model_dir
    from ptft_keras.jobs.report import format_report, write_report

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
