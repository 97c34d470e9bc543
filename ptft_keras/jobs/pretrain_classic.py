"""`ptft pretrain --model bilstm --objective autoencoder|word2vec|mlm`: pretrain a classic encoder on a text corpus.

    $ ptft pretrain --model bilstm --objective autoencoder --corpus sentences.txt --output runs/ae --max-steps 2000
    $ ptft finetune --model runs/ae/backbone --train train.tsv --output runs/sst2

`run_classic(config)` is what `ptft pretrain` runs when `--model` is ``bilstm`` (a fresh `BiLSTMEncoder`,
sized by `--encoder-options`, on a WordPiece vocabulary of `--vocab-size` entries learnt from the corpus)
or a BiLSTM directory (pretraining continues from it, with its vocabulary). `config` is any object with
the fields of `ClassicSettings` it sets (a `PretrainConfig`, a `ClassicSettings`, a namespace); the others
take the defaults below.

The corpus (text files, one sentence per line; `data.sources.read_documents`) is read into memory; its
first `heldout_lines` lines (at most a tenth of them) are held out, the same in every run, and each
objective reports its held-out loss:

| objective | what trains | `loss` (last JSON line) |
|---|---|---|
| ``autoencoder`` | Dai & Le's sequence autoencoder (`tasks.SequenceAutoencoder`, `--token-dropout` for the denoising variant), one sentence per example | mean cross-entropy per real token of the reconstructions |
| ``mlm`` | masked-LM (`tasks.MaskedLM`, output tied to the embedding) on packed `sequence_length`-token sequences | `mlm_loss` on fixed masks |
| ``word2vec`` | gensim skip-gram on the WordPiece tokens, written into the embedding (`word2vec_epochs` passes; `steps` counts them) | negative-sampling loss per (center, context) pair |

`--vectors FILE` (word2vec/GloVe) initialises the embedding first (autoencoder and mlm). Without it, ``mlm`` on a
fresh BiLSTM first trains word2vec on the same lines into the embedding (`word2vec_init`; the summary's
``word2vec_init`` says how many entries got a vector): on SST-2 (3 seeds) that fine-tuned 1.8 points better than
masked-LM from a random embedding and 0.7 better than word2vec alone (benchmarks/RESULTS.md, "Classic encoders").

``autoencoder`` and ``mlm`` train with Adam (1e-3 unless `--learning-rate`, gradient norm clipped at 1)
and back up weights, optimizer state and dropout streams every `save_every` steps (default a tenth of
`max_steps`) and every `save_minutes` minutes (`training.callbacks.PreemptionBackup`, under
``OUTPUT/backup``); rerunning the same command after a kill resumes there, replaying the data order
(the training batches are a seeded function of the step). The held-out loss is evaluated every
`eval_every` steps (``OUTPUT/checkpoints/best.keras``) and TensorBoard logs go to ``OUTPUT/logs``.

Output: ``OUTPUT/backbone`` (`BiLSTMEncoder.save_pretrained` with the tokenizer: what `ptft finetune
--model OUTPUT/backbone` loads), ``OUTPUT/result.json``, ``OUTPUT/logs``; the last line printed is a
JSON object with `objective`, `steps` and `loss` (plus `initial_loss` and the objective's extras).

Example:
    >>> from ptft_keras.jobs.pretrain_classic import ClassicSettings, pretrain_classic
    >>> result = pretrain_classic(ClassicSettings(corpus="sentences.txt", output="runs/ae",
    ...                                           objective="autoencoder", max_steps=500))  # doctest: +SKIP
    >>> result["steps"], result["loss"] < result["initial_loss"]  # doctest: +SKIP
    (500, True)
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ptft_keras.errors import ConfigError, DataError

OBJECTIVES = ("autoencoder", "word2vec", "mlm")
DEFAULT_OBJECTIVE = "mlm"  # as for transformers; from word2vec vectors (`wants_word2vec_init`) the best on SST-2
CLASSIC_LEARNING_RATE = 1e-3
RESULT_FILE, INITIAL_EVAL_FILE, BACKBONE_DIR = "result.json", "initial_eval.json", "backbone"
WORD2VEC_INIT_FILE = "word2vec_init.json"
SAVES_PER_RUN = 10
#: gensim's default of 5 passes is meant for corpora of billions of words; on SST-2's 634k words 25 passes lowered
#: the held-out loss from 2.32 to 2.01 and fine-tuned better (benchmarks/RESULTS.md, "Classic encoders")
WORD2VEC_EPOCHS = 25


@dataclass
class ClassicSettings:
    """What `run_classic` reads from its config (fields missing there take these defaults)."""

    corpus: Optional[str] = None
    output: Optional[str] = None
    model: str = "bilstm"
    objective: Optional[str] = None  # None: DEFAULT_OBJECTIVE (PretrainConfig's choices: mlm | autoencoder | word2vec)
    max_steps: int = 1000
    batch_size: int = 32
    sequence_length: int = 128
    seed: int = 0
    learning_rate: Optional[float] = None  # None: CLASSIC_LEARNING_RATE
    vocab_size: int = 8000
    encoder_options: Optional[str] = None
    vectors: Optional[str] = None
    heldout_lines: int = 500
    document_lines: int = 128
    eval_every: int = 1000
    log_every: int = 100
    save_every: Optional[int] = None  # None: max_steps / SAVES_PER_RUN
    save_minutes: float = 10.0
    mlm_probability: float = 0.15
    max_predictions_per_seq: int = 20
    whole_word_masking: bool = False
    token_dropout: float = 0.0
    word2vec_epochs: int = WORD2VEC_EPOCHS
    word2vec_init: Optional[bool] = None  # None: on for mlm (`wants_word2vec_init`), off for the autoencoder
    word2vec_window: int = 5
    strategy: str = "default"
    tpu: Optional[str] = None


def classic_settings(config) -> ClassicSettings:
    """`ClassicSettings` from any config object: its fields of the same name, defaults for the rest, and the
    run-time defaults resolved (objective, learning rate, save_every); checked.

    Example:
        >>> from types import SimpleNamespace
        >>> settings = classic_settings(SimpleNamespace(corpus="c.txt", output="out", max_steps=50, nsp=False))
        >>> settings.objective, settings.learning_rate, settings.save_every
        ('mlm', 0.001, 5)
    """
    if isinstance(config, ClassicSettings):
        values = dataclasses.asdict(config)
    else:
        values = {f.name: getattr(config, f.name) for f in dataclasses.fields(ClassicSettings) if hasattr(config, f.name)}
    settings = ClassicSettings(**values)
    settings = dataclasses.replace(
        settings, objective=settings.objective or DEFAULT_OBJECTIVE,
        learning_rate=settings.learning_rate or CLASSIC_LEARNING_RATE,
        save_every=settings.save_every or max(1, settings.max_steps // SAVES_PER_RUN))
    if settings.objective not in OBJECTIVES:
        raise ConfigError(f"objective: {settings.objective!r} is not one of {', '.join(OBJECTIVES)}")
    if not settings.corpus:
        raise ConfigError("pretrain needs a corpus: pass --corpus FILE")
    if not settings.output:
        raise ConfigError("pretrain needs an output directory: pass --output DIR")
    if settings.vectors and settings.objective == "word2vec":
        raise ConfigError("--vectors initialises the embedding that word2vec would overwrite; use it with "
                          "--objective autoencoder or mlm (or fine-tune with --word-vectors)")
    from ptft_keras.models.bilstm import is_bilstm_directory
    from ptft_keras.models.encoders import is_classic

    if not (is_classic(settings.model) or is_bilstm_directory(settings.model)):
        raise ConfigError(f"the {settings.objective} objective pretrains a BiLSTM: pass --model bilstm (or a directory "
                          f"a BiLSTM pretraining wrote), not {settings.model!r}; transformers pretrain with "
                          "--objective mlm")
    if getattr(config, "nsp", False):
        raise ConfigError("--nsp is for BERT; a BiLSTM pretrains without next-sentence prediction")
    return settings


def is_classic_pretraining(config) -> bool:
    """Whether `ptft pretrain` should run `run_classic`: `--model` is ``bilstm`` or a BiLSTM directory, or the
    objective is a classic one (`run_classic` then says that it needs a BiLSTM)."""
    from ptft_keras.models.bilstm import is_bilstm_directory
    from ptft_keras.models.encoders import is_classic

    model = getattr(config, "model", None)
    if getattr(config, "objective", None) in ("autoencoder", "word2vec"):
        return True
    return isinstance(model, str) and (is_classic(model) or is_bilstm_directory(model))


# --------------------------------------------------------------------------------------------- data
def split_heldout_lines(documents: list[list[str]], lines: int) -> tuple[list[list[str]], list[list[str]]]:
    """`(heldout, train)` documents: the first `lines` lines (at most a tenth of them) are held out; the
    document at the boundary is cut between lines.

    Example:
        >>> heldout, train = split_heldout_lines([["a", "b"], ["c", "d", "e"]] * 10, 3)
        >>> heldout, train[:2], sum(map(len, train))
        ([['a', 'b'], ['c']], [['d', 'e'], ['a', 'b']], 47)
    """
    total = sum(len(d) for d in documents)
    want = min(int(lines), total // 10)
    if want < 1:
        raise DataError(f"the corpus has {total} lines: too few to hold out an evaluation slice (a tenth of the "
                        "lines, at most --heldout-lines); add text")
    heldout, train = [], []
    for document in documents:
        if want >= len(document):
            heldout.append(list(document))
            want -= len(document)
        elif want > 0:
            heldout.append(document[:want])
            train.append(document[want:])
            want = 0
        else:
            train.append(list(document))
    return heldout, train


def read_corpus(settings: ClassicSettings) -> tuple[list[list[str]], list[list[str]]]:
    """`(heldout, train)` documents of the corpus (`split_heldout_lines`): a document ends at a blank line or
    after `document_lines` lines (masked-LM packs sequences within a document)."""
    from ptft_keras.data.sources import read_documents

    documents = [document[start:start + settings.document_lines] for document in read_documents(settings.corpus)
                 for start in range(0, len(document), settings.document_lines)]
    if not documents:
        raise DataError("the corpus has no text", path=settings.corpus)
    return split_heldout_lines(documents, settings.heldout_lines)


def lines_of(documents) -> list[str]:
    return [line for document in documents for line in document]


def sentence_dataset(lines: list[str], tokenizer, settings: ClassicSettings, *, train: bool):
    """Feature batches of one sentence each, in length buckets (training: shuffled under the seed, repeated)."""
    from ptft_keras.data.pipeline import make_finetune_dataset

    return make_finetune_dataset([{"text": line} for line in lines], tokenizer, batch_size=settings.batch_size,
                                 sequence_length=settings.sequence_length, padding="bucket" if train else "dynamic",
                                 shuffle=train, repeat=train, seed=settings.seed)


def masked_dataset(documents, tokenizer, settings: ClassicSettings, *, train: bool):
    """Masked-LM batches of packed sequences (held out: fixed masks, no shuffling)."""
    from ptft_keras.data.pipeline import make_pretraining_dataset

    return make_pretraining_dataset(
        documents, tokenizer, batch_size=settings.batch_size, sequence_length=settings.sequence_length,
        mlm_probability=settings.mlm_probability, max_predictions_per_seq=settings.max_predictions_per_seq,
        whole_word_masking=settings.whole_word_masking, seed=settings.seed, shuffle=train, repeat=train,
        drop_remainder=train)


# -------------------------------------------------------------------------------------------- the job
def pretrain_classic(config, *, verbose="auto") -> dict:
    """Run (or resume) classic pretraining as `ptft pretrain --model bilstm` does; returns the summary dict
    (what the last JSON line holds). See the module docstring."""
    import keras

    from ptft_keras.jobs.encoder_loading import classic_encoder
    from ptft_keras.training import strategy as strategies

    settings = classic_settings(config)
    output = Path(settings.output)
    keras.utils.set_random_seed(settings.seed)
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    strategy = strategies.resolve(settings.strategy, tpu=settings.tpu)
    heldout_documents, train_documents = read_corpus(settings)
    train_lines = lines_of(train_documents)
    with strategy.scope():
        encoder, tokenizer = classic_encoder(
            settings.model, train_lines, vocab_size=settings.vocab_size, encoder_options=settings.encoder_options,
            word_vectors=settings.vectors, sequence_length=settings.sequence_length)
    print(f"pretraining {settings.model} (BiLSTMEncoder, {encoder.num_layers} layer(s), hidden {encoder.hidden_dim}, "
          f"{encoder.count_params():,} parameters) with the {settings.objective} objective on {len(train_lines)} "
          f"lines of {settings.corpus}; {len(lines_of(heldout_documents))} held out")
    if settings.objective == "word2vec":
        result = word2vec_objective(encoder, tokenizer, settings, train_lines, lines_of(heldout_documents), output)
    else:
        init = None
        if wants_word2vec_init(settings):
            if has_backup(output):  # the backup holds the weights to resume
                init = read_result(output / WORD2VEC_INIT_FILE) or None
            else:
                init = word2vec_init(encoder, tokenizer, settings, train_lines)
                write_result(output / WORD2VEC_INIT_FILE, init)
        result = {"word2vec_init": init, **keras_objective(encoder, tokenizer, settings, train_documents,
                                                           heldout_documents, output, strategy, verbose)}
    backbone = encoder.save_pretrained(output / BACKBONE_DIR, tokenizer=tokenizer)
    summary = {"objective": settings.objective, **result, "output": str(output), "backbone": str(backbone)}
    write_result(output / RESULT_FILE, {**summary, "config": dataclasses.asdict(settings)})
    return summary


def wants_word2vec_init(settings: ClassicSettings) -> bool:
    """Whether the embedding of a fresh BiLSTM gets word2vec vectors of the corpus before the Keras objective:
    `word2vec_init` if set, else for ``mlm`` only; never with `vectors` (a file) or when pretraining continues
    from a BiLSTM directory (its embedding is already trained).

    Masked-LM from word2vec vectors fine-tuned better than either alone (SST-2, 3 seeds: benchmarks/RESULTS.md,
    "Classic encoders"); the autoencoder was not measured so, and keeps its random init.

    Example:
        >>> [wants_word2vec_init(ClassicSettings(objective=o)) for o in ("mlm", "autoencoder", "word2vec")]
        [True, False, False]
        >>> wants_word2vec_init(ClassicSettings(objective="mlm", vectors="glove.txt"))
        False
    """
    from ptft_keras.models.encoders import is_classic

    if settings.objective == "word2vec" or settings.vectors or not is_classic(settings.model):
        return False
    return settings.objective == "mlm" if settings.word2vec_init is None else bool(settings.word2vec_init)


def has_backup(output: Path) -> bool:
    """Whether `output` holds a pretraining backup (a rerun resumes from its weights)."""
    from ptft_keras.training.callbacks import BACKUP_DIR

    backup = output / BACKUP_DIR
    return backup.is_dir() and any(backup.iterdir())


def word2vec_init(encoder, tokenizer, settings: ClassicSettings, train_lines) -> dict:
    """gensim word2vec (`word2vec_epochs` passes) on the training lines into the embedding; `{"epochs", "found"}`."""
    from ptft_keras.tasks.classic_pretraining import pretrain_word2vec

    result = pretrain_word2vec(encoder, tokenizer, train_lines, window=settings.word2vec_window,
                               epochs=settings.word2vec_epochs, seed=settings.seed)
    print(f"embedding initialised by word2vec ({settings.word2vec_epochs} epochs on the training lines): "
          f"{result['found']} of {result['vocabulary_size']} vocabulary entries got a vector")
    return {"epochs": settings.word2vec_epochs, "found": result["found"]}


def keras_objective(encoder, tokenizer, settings: ClassicSettings, train_documents, heldout_documents, output: Path,
                    strategy, verbose) -> dict:
    """The autoencoder or masked-LM objective, fit with backups; `{"steps", "start_step", "loss", ...}`."""
    from ptft_keras.tasks.classic_pretraining import autoencoder_model, encoder_features, masked_lm_model
    from ptft_keras.training.callbacks import BACKUP_DIR, LOG_DIR, PreemptionBackup, pretraining_callbacks

    autoencoder = settings.objective == "autoencoder"
    with strategy.scope():
        if autoencoder:
            model = autoencoder_model(encoder, learning_rate=settings.learning_rate,
                                      token_dropout=settings.token_dropout, noise_token_id=tokenizer.mask_token_id,
                                      seed=settings.seed)
        else:
            model = masked_lm_model(encoder, learning_rate=settings.learning_rate)
    if autoencoder:
        train = sentence_dataset(lines_of(train_documents), tokenizer, settings, train=True)
        heldout = sentence_dataset(lines_of(heldout_documents), tokenizer, settings, train=False)
    else:
        train = encoder_features(masked_dataset(train_documents, tokenizer, settings, train=True), model)
        heldout = encoder_features(masked_dataset(heldout_documents, tokenizer, settings, train=False), model)
    heldout = counted(heldout.cache())
    loss_name = "loss" if autoencoder else "mlm_loss"

    with strategy.scope():
        sample = next(iter(heldout))
        model(sample[0] if isinstance(sample, tuple) else sample, training=False)  # built, so a backup loads
        model.optimizer.build(model.trainable_variables)
        backup = PreemptionBackup(output / BACKUP_DIR, save_freq=settings.save_every,
                                  save_seconds=settings.save_minutes * 60 if settings.save_minutes > 0 else None)
        backup.set_model(model)
        start = backup.restore()
    remaining = settings.max_steps - start
    print(f"resuming at step {start} of {settings.max_steps} (backup in {output / BACKUP_DIR})" if start
          else f"starting at step 0 of {settings.max_steps}; backups every {settings.save_every} steps to "
               f"{output / BACKUP_DIR}")

    initial_path = output / INITIAL_EVAL_FILE
    if start == 0:
        initial = float(model.evaluate(heldout, verbose=0, return_dict=True)[loss_name])
        write_result(initial_path, {loss_name: initial})
    else:
        initial = read_result(initial_path).get(loss_name)
    if remaining > 0:
        steps_per_epoch = min(settings.eval_every, remaining)
        callbacks = pretraining_callbacks(
            output, backup=backup, steps=remaining, tokens_per_step=settings.batch_size * settings.sequence_length,
            start_step=start, log_every=settings.log_every, monitor=f"val_{loss_name}")
        history = model.fit(train.skip(start), epochs=math.ceil(remaining / steps_per_epoch),
                            steps_per_epoch=steps_per_epoch, validation_data=heldout, callbacks=callbacks,
                            verbose=verbose, shuffle=False)
        losses = history.history.get("loss", [])
        if losses and not math.isfinite(losses[-1]):
            raise DataError(f"training diverged (loss {losses[-1]}); lower --learning-rate; the last good backup in "
                            f"{output / BACKUP_DIR} is kept, rerun to resume from it")
    final = model.evaluate(heldout, verbose=0, return_dict=True)
    extra = ({"reconstruction_accuracy": float(final["reconstruction_accuracy"])} if autoencoder
             else {"mlm_accuracy": float(final["mlm_accuracy"])})
    print(f"TensorBoard: tensorboard --logdir {output / LOG_DIR}")
    return {"steps": max(backup.steps, start), "start_step": start, "loss": float(final[loss_name]),
            "initial_loss": initial, **extra}


def counted(dataset):
    """A finite dataset with its number of batches known (one pass fills a cache before it), so Keras does not
    read its end as input that ran out."""
    import tensorflow as tf

    batches = sum(1 for _ in dataset)
    if not batches:
        raise DataError("the held-out lines make no batch; raise --heldout-lines or lower --batch-size")
    return dataset.apply(tf.data.experimental.assert_cardinality(batches))


def word2vec_objective(encoder, tokenizer, settings: ClassicSettings, train_lines, heldout_lines, output: Path) -> dict:
    """gensim word2vec into the embedding (no backups: it is quick); the held-out loss goes to TensorBoard too."""
    import tensorflow as tf

    from ptft_keras.tasks.classic_pretraining import pretrain_word2vec
    from ptft_keras.training.callbacks import LOG_DIR

    result = pretrain_word2vec(encoder, tokenizer, train_lines, heldout_texts=heldout_lines,
                               window=settings.word2vec_window, epochs=settings.word2vec_epochs, seed=settings.seed)
    initial = (1 + 5) * math.log(2)  # an untrained model's loss with gensim's default 5 negatives
    writer = tf.summary.create_file_writer(str(output / LOG_DIR / "validation"))
    with writer.as_default():
        tf.summary.scalar("heldout_loss", initial, step=0)
        tf.summary.scalar("heldout_loss", result["loss"], step=settings.word2vec_epochs)
    writer.close()
    print(f"word2vec: {result['found']} of {result['vocabulary_size']} vocabulary entries got a vector")
    return {"steps": settings.word2vec_epochs, "start_step": 0, "loss": result["loss"], "initial_loss": initial,
            "found": result["found"], "pairs": result["pairs"]}


def write_result(path: Path, data: dict) -> None:
    from ptft_keras.training.callbacks import write_json_atomic

    write_json_atomic(path, data)


def read_result(path: Path) -> dict:
    from ptft_keras.training.callbacks import read_json

    return read_json(path, default={})


def run_classic(config) -> int:
    """The `ptft pretrain` command for classic encoders: train, say where things went, end with one JSON line.

    Example:
        >>> run_classic(ClassicSettings(corpus="corpus.txt", output="runs/ae", max_steps=100))  # doctest: +SKIP
        0
    """
    summary = pretrain_classic(config)
    print(f"backbone (BiLSTMEncoder with its tokenizer): {summary['backbone']}; fine-tune it with "
          f"ptft finetune --model {summary['backbone']} --train FILE --output DIR")
    print(json.dumps(summary))
    return 0
