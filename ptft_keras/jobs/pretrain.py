"""The pretraining job: masked-LM (+NSP) from scratch or continued from a checkpoint, resumable after a kill.

    $ ptft pretrain --model tiny --corpus 'books/*.txt' --output runs/tiny --max-steps 10000
    $ ptft pretrain --model runs/tiny/backbone --corpus 'domain/*.txt' --output runs/domain   # continue

`--model` is a size name (`tiny`, `mini`, `small`, `medium`, `base`, `large`: a random backbone and a
WordPiece vocabulary trained on a sample of the corpus, at most `VOCAB_SAMPLE_BYTES` spread over it) or
anything `Backbone.from_pretrained` accepts (its own masked-LM head is loaded when the checkpoint has
one). Unset learning rate and warmup take the defaults of the case (`pretrain_config.with_defaults`).

The corpus is streamed (`data.corpus`): never read whole, sharded across workers by file (or by window
of a file, or by document), documents packed as they come. Peak memory is the model and optimizer,
the batch, and a few shuffle groups of about `4 x sequence_length x shuffle_buffer_size` bytes of text
with their token ids; not the corpus, and not its longest document. The first `heldout_lines` lines
of the corpus (or of `--eval-corpus`) are held out, reading only those, and masked once with a fixed
seed: the same held-out batches in every run. The masked-LM loss on them is evaluated every
`eval_every` steps (it picks `checkpoints/best.keras`) and at the end, and printed as the last line of
output, a JSON object with at least `steps` and `mlm_loss`.

Resuming: the run backs up weights, optimizer state, dropout RNG and each worker's input position
every `save_every` steps (default: a tenth of `max_steps`, at most one a minute) and every
`save_minutes` minutes (`pretrain_config.backup_schedule`) under
`OUTPUT/backup/`. Rerunning the same command resumes from the last backup; its input starts at the
saved position (one seek and one shuffle group re-read, however far the run had got), so it sees the
batches an uninterrupted run sees and ends with its weights. A backup without an input position
(written by an older version) is resumed by replaying the batches already seen.

Output (`OUTPUT/`): `backbone/` (Hugging Face `*ForMaskedLM` directory with the tokenizer: `ptft
finetune --model OUTPUT/backbone` and transformers load it), `backbone.keras` (our format),
`tokenizer/` (from scratch), `checkpoints/`, `logs/` (TensorBoard), `backup/`, `result.json`.

Example:
    >>> from ptft_keras.jobs.pretrain import PretrainConfig
    >>> config = PretrainConfig(corpus="corpus.txt", output="runs/tiny", max_steps=200)
    >>> config.model, config.batch_size, config.sequence_length
    ('tiny', 32, 128)
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import keras
import tensorflow as tf

from ptft_keras.config import to_dict
from ptft_keras.jobs.pretrain_config import (  # noqa: F401 - this job's API
    PRECISIONS, PretrainConfig, backup_schedule, with_defaults,
)
from ptft_keras.data.corpus import InputPositions, TextCorpus
from ptft_keras.data.pipeline import corpus_sizes, make_pretraining_dataset
from ptft_keras.data.tokenizer import Tokenizer
from ptft_keras.errors import ConfigError, DataError, PtftError
from ptft_keras.models.backbone import Backbone
from ptft_keras.models.hf_checkpoint import read_hf_tensors
from ptft_keras.models.locate import locate_checkpoint
from ptft_keras.models.sizes import NAMED_SIZES
from ptft_keras.tasks.masked_lm import MaskedLM
from ptft_keras.training import strategy as strategies
from ptft_keras.training.callbacks import (
    BACKUP_DIR, INPUTS_DIR, LOG_DIR, POINTER_FILE, PreemptionBackup, pretraining_callbacks, read_json, staged,
    write_json_atomic,
)
from ptft_keras.jobs.remote import Workdir, is_remote
from ptft_keras.training.optimizer import make_optimizer

RESULT_FILE, INITIAL_EVAL_FILE, TOKENIZER_DIR = "result.json", "initial_eval.json", "tokenizer"
VOCAB_SAMPLE_BYTES = 32 << 20  # text a from-scratch vocabulary is trained on, spread over the corpus


@dataclass
class PretrainResult:
    """What `pretrain` returns: the metrics of the JSON line, plus the trained model and tokenizer.

    Example:
        >>> result = PretrainResult(steps=100, start_step=40, mlm_loss=5.2, mlm_accuracy=0.2, initial_mlm_loss=9.1,
        ...                         tokens_per_second=5e3, output="runs/tiny", backbone="runs/tiny/backbone")
        >>> result.summary()["steps"], "model" in result.summary()
        (100, False)
    """

    steps: int
    start_step: int
    mlm_loss: float
    mlm_accuracy: float
    initial_mlm_loss: Optional[float]
    tokens_per_second: Optional[float]
    output: str
    backbone: Optional[str]
    model: MaskedLM = dataclasses.field(repr=False, default=None)
    tokenizer: Tokenizer = dataclasses.field(repr=False, default=None)

    def summary(self) -> dict:
        """The JSON-able metrics (everything but the model and tokenizer)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("model", "tokenizer")}


# --- data --------------------------------------------------------------------------------------
def split_heldout(documents: list[list[str]], lines: int) -> tuple[list[list[str]], list[list[str]]]:
    """`(train, heldout)` of documents in memory: the last `lines` sentences (at most 10% of them) go to
    `heldout` (the job itself holds out the *first* lines of a streamed corpus: `TextCorpus.split_heldout`).

    Whole documents are moved from the end; the document at the boundary is cut between sentences.

    Example:
        >>> train, heldout = split_heldout([["s1", "s2"], ["s3", "s4", "s5"]] * 4, lines=2)
        >>> len(train), train[-1], heldout
        (8, ['s3'], [['s4', 's5']])
    """
    total = sum(len(d) for d in documents)
    want = min(lines, total // 10)
    if want < 1:
        raise DataError(f"the corpus has {total} lines: too few to hold out an evaluation slice; add text or "
                        "pass --eval-corpus")
    train, heldout = [list(d) for d in documents], []
    while want > 0:
        last = train.pop()
        if len(last) <= want:
            heldout.insert(0, last)
            want -= len(last)
        else:
            train.append(last[: len(last) - want])
            heldout.insert(0, last[len(last) - want:])
            want = 0
    return train, heldout


def _corpora(config: PretrainConfig) -> tuple[TextCorpus, list[list[str]]]:
    """`(training corpus, held-out documents)`, reading only the held-out lines."""
    _, window_bytes = corpus_sizes(config.shuffle_buffer_size, config.sequence_length)
    corpus = TextCorpus(config.corpus, document_lines=config.document_lines, window_bytes=window_bytes)
    if config.eval_corpus:
        heldout = TextCorpus(config.eval_corpus, document_lines=config.document_lines).head(config.heldout_lines)
    else:
        heldout, corpus = corpus.split_heldout(config.heldout_lines)
    if next(corpus.groups(shuffle=False, group_bytes=1), None) is None:
        raise DataError("the corpus has no text to train on" + ("" if config.eval_corpus else
                        " after the held-out lines; add text or lower --heldout-lines"), path=config.corpus)
    return corpus, heldout


def _dataset_options(config: PretrainConfig) -> dict:
    return dict(sequence_length=config.sequence_length, mlm_probability=config.mlm_probability,
                max_predictions_per_seq=config.max_predictions_per_seq, whole_word_masking=config.whole_word_masking,
                nsp=config.nsp, padding="fixed", seed=config.seed, document_lines=config.document_lines,
                shuffle_buffer_size=config.shuffle_buffer_size)


def _train_dataset(config: PretrainConfig, tokenizer, corpus: TextCorpus, strategy, restored: dict | None,
                   positions: dict, start_step: int):
    """The training input, one pipeline per worker (`distribute_datasets_from_function`).

    Each pipeline makes the worker's share of a step's batch (masked as one batch, so one device and
    several replicas see the same masks), split into per-replica batches. It starts at its position
    saved in the backup (`restored`), or replays `start_step` batches when there is none, and records
    where every batch ends in `positions[pipeline id]` for the next backup.
    """
    saved = (restored or {}).get("pipelines", {})

    def dataset_fn(context: tf.distribute.InputContext):
        pipelines = context.num_input_pipelines
        worker_batch = config.batch_size // pipelines
        start = saved.get(str(context.input_pipeline_id)) if start_step else None
        recorder = positions.setdefault(context.input_pipeline_id, InputPositions())
        dataset = make_pretraining_dataset(
            corpus, tokenizer, batch_size=worker_batch, shuffle=True, repeat=True, drop_remainder=True,
            input_context=context if pipelines > 1 else None, start=start, positions=recorder,
            **_dataset_options(config))
        if start_step and start is None:
            dataset = dataset.skip(start_step)
        per_replica = context.get_per_replica_batch_size(config.batch_size)
        return dataset if per_replica == worker_batch else dataset.unbatch().batch(per_replica, drop_remainder=True)

    return strategy.distribute_datasets_from_function(dataset_fn)


def _heldout_dataset(config: PretrainConfig, tokenizer, documents, static_eval: bool):
    """Held-out batches with fixed masks: the same at every evaluation and in every run."""
    heldout = make_pretraining_dataset(documents, tokenizer, batch_size=config.batch_size, shuffle=False,
                                       repeat=False, drop_remainder=static_eval, **_dataset_options(config)).cache()
    batches = sum(1 for _ in heldout)  # one pass fills the cache and counts the batches
    if not batches:
        raise DataError(f"the held-out slice makes no batch of {config.batch_size} sequences of "
                        f"{config.sequence_length} tokens; raise --heldout-lines or lower --batch-size")
    return heldout.apply(tf.data.experimental.assert_cardinality(batches))


def input_state(positions: dict, steps: int) -> dict | None:
    """What a backup after `steps` steps records of the input: each pipeline's position (None if unknown).

    Example:
        >>> from ptft_keras.data.corpus import InputPositions
        >>> recorder = InputPositions()
        >>> recorder.record(0, [0, 1, 0, 32])
        >>> input_state({0: recorder}, 1)
        {'pipelines': {'0': {'epoch': 0, 'window': 1, 'offset': 0, 'skip': 32, 'batch': 1}}}
    """
    cursors = {str(pipeline): recorder.after(steps) for pipeline, recorder in positions.items()}
    if not cursors or any(cursor is None for cursor in cursors.values()):
        return None
    return {"pipelines": cursors}


def _describe_input(restored: dict | None, start: int) -> str:
    cursors = list((restored or {}).get("pipelines", {}).values())
    if not cursors:
        return f"no saved input position: replaying {start} batches"
    c = cursors[0]
    more = f" (and {len(cursors) - 1} more workers)" if len(cursors) > 1 else ""
    return (f"input restored at epoch {c['epoch']}, window {c['window']}, byte {c['offset']}, "
            f"after {c['skip']} sequences of its group{more}")


def _workers(strategy) -> tuple[int, int]:
    """`(workers, this worker's index)` of a multi-worker strategy ((1, 0) otherwise)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return 1, 0
    spec = resolver.cluster_spec().as_dict()
    workers = sum(len(spec.get(kind, [])) for kind in ("chief", "worker")) or 1
    chief = 1 if spec.get("chief") and resolver.task_type == "worker" else 0
    return workers, int(resolver.task_id or 0) + chief


# --- model -------------------------------------------------------------------------------------
def _tokenizer_and_backbone(config: PretrainConfig, corpus: TextCorpus, dtype, output: Path, writer: bool):
    """`(tokenizer, backbone, hf_dir or None, description)` for a size name or a checkpoint."""
    if config.model in NAMED_SIZES:
        tokenizer_dir = output / TOKENIZER_DIR
        if tokenizer_dir.is_dir():  # resuming: the vocabulary the backup was trained with
            tokenizer = Tokenizer.from_pretrained(tokenizer_dir, model_type=config.model_type)
        else:
            tokenizer = _train_tokenizer(config, corpus)
            if writer:
                with staged(tokenizer_dir) as tmp:
                    tokenizer.save_pretrained(tmp)
        backbone = Backbone.from_size(config.model, model_type=config.model_type,
                                      vocabulary_size=tokenizer.vocab_size,
                                      max_sequence_length=max(512, config.sequence_length), dtype=dtype)
        description = f"from scratch: {config.model} {config.model_type}, vocabulary of {tokenizer.vocab_size}"
        return tokenizer, backbone, None, description
    backbone = Backbone.from_pretrained(config.model, dtype=dtype)
    tokenizer = Tokenizer.from_pretrained(config.model, model_type=backbone.model_type)
    location = locate_checkpoint(config.model)
    hf_dir = location.path if location.kind == "hf_dir" else None
    return tokenizer, backbone, hf_dir, f"continued from {config.model}"


def _train_tokenizer(config: PretrainConfig, corpus: TextCorpus) -> Tokenizer:
    """A WordPiece vocabulary trained on a sample of the training corpus (`TextCorpus.sample`), streamed
    to the trainer through a temporary file so no list of the corpus' lines is built."""
    from ptft_keras.data.vocab import train_wordpiece_vocabulary

    with tempfile.TemporaryDirectory(prefix="ptft-vocabulary-") as folder:
        sample = Path(folder) / "sample.txt"
        with sample.open("w", encoding="utf-8") as stream:
            for line in corpus.sample(VOCAB_SAMPLE_BYTES):
                stream.write(line + "\n")
        vocabulary = train_wordpiece_vocabulary(str(sample), vocab_size=config.vocab_size)
    return Tokenizer.from_vocabulary(vocabulary, model_type=config.model_type,
                                     model_max_length=max(512, config.sequence_length))


def _jit_allowed(strategy) -> bool:
    """XLA cannot compile a step whose collectives span several CPU devices (Mirrored on virtual CPUs)."""
    if strategy.num_replicas_in_sync == 1:
        return True
    return not all("CPU" in device.upper() for device in strategy.extended.worker_devices)


def _optimizer(config: PretrainConfig):
    optimizer = make_optimizer(
        config.learning_rate, warmup_steps=config.warmup_steps or 0,
        warmup_ratio=None if config.warmup_steps is not None else config.warmup_ratio,
        total_steps=config.max_steps, decay=config.decay, weight_decay=config.weight_decay,
        global_clipnorm=config.clip_norm,
    )
    if config.precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def _check(config: PretrainConfig, strategy) -> None:
    if not config.corpus:
        raise ConfigError("corpus: pass --corpus FILE_OR_GLOB (text, one sentence per line)")
    if not config.output:
        raise ConfigError("output: pass --output DIR (rerun with the same directory to resume)")
    parts = strategy.num_replicas_in_sync * config.gradient_accumulation_steps
    if config.batch_size % parts:
        raise ConfigError(
            f"batch_size {config.batch_size} must be divisible by replicas x gradient_accumulation_steps "
            f"= {strategy.num_replicas_in_sync} x {config.gradient_accumulation_steps}"
        )
    if config.nsp and config.model_type == "distilbert" and config.model in NAMED_SIZES:
        raise ConfigError("nsp: DistilBERT has no pooled output; pretrain it with the masked-LM objective only")


# --- the job -----------------------------------------------------------------------------------
def _build(config: PretrainConfig, strategy, corpus: TextCorpus, positions: dict, output: Path, writer: bool):
    """`(model, tokenizer, backup, steps done, description)`: everything that owns variables, under the scope."""
    dtype = None if config.precision == "float32" else config.precision
    with strategy.scope():
        tokenizer, backbone, hf_dir, description = _tokenizer_and_backbone(config, corpus, dtype, output, writer)
        model = MaskedLM(backbone, nsp=config.nsp)
        head = "new masked-LM head"
        if hf_dir is not None and model.load_hf_head(read_hf_tensors(hf_dir), path=hf_dir):
            head = "masked-LM head from the checkpoint"
        jit = config.jit_compile
        if jit and not _jit_allowed(strategy):
            warnings.warn("jit_compile is off: XLA cannot compile collectives across several CPU devices "
                          f"({type(strategy).__name__} over {strategy.num_replicas_in_sync} CPU replicas)")
            jit = False
        model.compile(optimizer=_optimizer(config), jit_compile=jit,
                      gradient_accumulation_steps=config.gradient_accumulation_steps)
        model.optimizer.build(model.trainable_variables)
        workers, worker = _workers(strategy)
        backup = PreemptionBackup(output / BACKUP_DIR, **backup_schedule(config, workers), writer=writer,
                                  input_state=lambda steps: input_state(positions, steps),
                                  input_name=f"worker-{worker}")
        backup.set_model(model)
        start = backup.restore()
    return model, tokenizer, backup, start, f"{description} ({model.count_params():,} parameters, {head})"


def _train(model, config: PretrainConfig, train, heldout, backup, start: int, output: Path, writer: bool,
           verbose) -> Optional[float]:
    """Fit the remaining steps; returns the tokens per second of this run (None when nothing was left)."""
    remaining = config.max_steps - start
    if remaining <= 0:
        return None
    steps_per_epoch = min(config.eval_every, remaining)
    tokens_per_step = config.batch_size * config.sequence_length
    callbacks = pretraining_callbacks(output, backup=backup, steps=remaining, tokens_per_step=tokens_per_step,
                                      start_step=start, log_every=config.log_every, writer=writer)
    began = time.perf_counter()
    history = model.fit(train, epochs=math.ceil(remaining / steps_per_epoch), steps_per_epoch=steps_per_epoch,
                        validation_data=heldout, callbacks=callbacks, verbose=verbose, shuffle=False)
    losses = history.history.get("loss", [])
    if losses and not math.isfinite(losses[-1]):
        raise PtftError(
            f"training diverged (loss {losses[-1]}) before step {backup.steps}: lower --learning-rate, raise "
            f"--warmup-steps or use --precision mixed_bfloat16; the last good backup in {output / BACKUP_DIR} "
            "is kept, rerun to resume from it"
        )
    return (backup.steps - start) * tokens_per_step / (time.perf_counter() - began)


def pretrain(config: PretrainConfig | None = None, *, strategy=None, verbose: int | str = "auto",
             **overrides) -> PretrainResult:
    """Run (or resume) a pretraining job; `overrides` are `PretrainConfig` fields.

    `strategy` is a strategy name (as `config.strategy`) or a `tf.distribute.Strategy` object to use.
    Seeds Python, NumPy and TensorFlow with `config.seed` (`keras.utils.set_random_seed`).

    Example:
        >>> result = pretrain(corpus="corpus.txt", output="runs/tiny", max_steps=100)  # doctest: +SKIP
        >>> result.steps, round(result.mlm_loss, 2)  # doctest: +SKIP
        (100, 6.12)
    """
    if isinstance(strategy, str):
        overrides["strategy"], strategy = strategy, None
    config = with_defaults(dataclasses.replace(config or PretrainConfig(), **overrides))
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    strategy = strategy or strategies.resolve(config.strategy, tpu=config.tpu)
    _check(config, strategy)
    writer = strategies.is_chief(strategy)
    if verbose == "auto":  # a live progress bar on a terminal, one line per epoch in a log file
        verbose = 1 if sys.stdout.isatty() else 2
    # gs://, ram://, ...: a local mirror, pushed after every backup and at the end. Other workers publish
    # their input positions into the same backup folder, so the chief never prunes them.
    workdir = Workdir(config.output, shared=(f"{BACKUP_DIR}/{INPUTS_DIR}/",))
    try:
        workdir.pull()  # every worker: the backup and vocabulary to resume with
        return _pretrain_in(workdir, config, strategy, writer, verbose)
    finally:
        workdir.close()


def _join(base: str, *parts: str) -> str:
    """`base/parts...` for a local path or a URL (`Path` would fold ``gs://`` into ``gs:/``)."""
    return "/".join([str(base).rstrip("/"), *parts])


def _pretrain_in(workdir, config: PretrainConfig, strategy, writer: bool, verbose) -> PretrainResult:
    """`pretrain` writing into `workdir` (a `jobs.remote.Workdir`)."""
    output = workdir.local
    target = workdir.target if workdir.remote else str(output)
    say = print if verbose else (lambda *args: None)

    corpus, heldout_documents = _corpora(config)
    positions: dict = {}
    model, tokenizer, backup, start, description = _build(config, strategy, corpus, positions, output, writer)
    if workdir.remote:
        backup.on_saved = (lambda: workdir.push(last=(f"{BACKUP_DIR}/{POINTER_FILE}",))) if writer else (
            lambda: workdir.push(only=f"{BACKUP_DIR}/{INPUTS_DIR}/{backup.input_name}-"))
    train = _train_dataset(config, tokenizer, corpus, strategy, backup.restored_input, positions, start)
    heldout = _heldout_dataset(config, tokenizer, heldout_documents,
                               static_eval=strategies.needs_static_shapes(strategy))
    say(f"pretraining {description}; {strategy.num_replicas_in_sync} replica(s), "
        f"batch {config.batch_size} x {config.sequence_length} tokens, learning rate {config.learning_rate:g}")
    say(f"resuming at step {start} of {config.max_steps} (backup in {_join(target, BACKUP_DIR)}; "
        f"{_describe_input(backup.restored_input, start)})" if start
        else f"starting at step 0 of {config.max_steps}")
    gap = " (at most one a minute)" if backup.min_seconds else ""
    by_time = f" and every {config.save_minutes:g} minutes" if backup.save_seconds else ""
    say(f"backups every {backup.save_every} steps{gap}{by_time} to {_join(target, BACKUP_DIR)}")

    initial = read_json(output / INITIAL_EVAL_FILE, default={}).get("mlm_loss")
    if start == 0:
        initial = model.evaluate(heldout, verbose=0, return_dict=True)["mlm_loss"]
        if writer:
            write_json_atomic(output / INITIAL_EVAL_FILE, {"mlm_loss": initial})
    tokens_per_second = _train(model, config, train, heldout, backup, start, output, writer, verbose)

    final = model.evaluate(heldout, verbose=0, return_dict=True)
    backbone = None
    if writer:
        export(model, tokenizer, output)
        backbone = _join(target, "backbone")
    result = PretrainResult(
        steps=max(backup.steps, start), start_step=start, mlm_loss=float(final["mlm_loss"]),
        mlm_accuracy=float(final["mlm_accuracy"]), initial_mlm_loss=None if initial is None else float(initial),
        tokens_per_second=tokens_per_second, output=target, backbone=backbone, model=model, tokenizer=tokenizer,
    )
    if writer:
        write_json_atomic(output / RESULT_FILE, {**result.summary(), "config": to_dict(config)})
        workdir.push(last=(RESULT_FILE,))
    return result


def export(model: MaskedLM, tokenizer, output) -> Path:
    """Save `OUTPUT/backbone/` (HF, with the head and tokenizer) and `OUTPUT/backbone.keras`, atomically.

    Example:
        >>> export(result.model, result.tokenizer, "runs/tiny")  # doctest: +SKIP
        PosixPath('runs/tiny/backbone')
    """
    output = Path(output)
    directory = model.save_pretrained(output / "backbone", tokenizer=tokenizer)
    with staged(output / "backbone.keras") as tmp:
        model.backbone.save(tmp)
    return directory


def run(config: PretrainConfig) -> int:
    """The `ptft pretrain` command: train, report where everything went, end with one JSON line.

    Example:
        >>> run(PretrainConfig(corpus="corpus.txt", output="runs/tiny", max_steps=100))  # doctest: +SKIP
        0
    """
    from ptft_keras.jobs.pretrain_classic import is_classic_pretraining, run_classic

    if is_classic_pretraining(config):  # --model bilstm / a BiLSTM dir, or --objective autoencoder|word2vec
        if not (config.output and is_remote(config.output)):
            return run_classic(config)
        workdir = Workdir(config.output)  # a remote output: resumes from it, receives the result at the end
        try:
            workdir.pull()
            code = run_classic(dataclasses.replace(config, output=str(workdir.local)))
            workdir.push()
            print(f"copied {workdir.local} to {workdir.target}", file=sys.stderr)
            return code
        finally:
            workdir.close()
    result = pretrain(config)
    output = result.output
    if result.backbone:
        print(f"backbone (Hugging Face, with masked-LM head and tokenizer): {result.backbone}")
        print(f"backbone (Keras): {_join(output, 'backbone.keras')}")
        print(f"checkpoints: {_join(output, 'checkpoints')}   resume state: {_join(output, BACKUP_DIR)}")
        print(f"TensorBoard: tensorboard --logdir {_join(output, LOG_DIR)}")
    print(json.dumps(result.summary()))
    return 0
