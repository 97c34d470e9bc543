"""The options of `ptft pretrain` (`PretrainConfig`), apart from the job so `ptft pretrain --help` loads no
TensorFlow, and the defaults that depend on the case (`with_defaults`).

Learning rate and warmup, when left unset, depend on where the weights come from:

| case | `--model` | learning rate | warmup |
|---|---|---|---|
| from scratch | a size name | `FROM_SCRATCH_LEARNING_RATES[size]`: tiny 1e-3, mini 5e-4, small 3e-4, medium 2e-4, base and large 1e-4 | 1% |
| continued pretraining | a checkpoint | `CONTINUED_LEARNING_RATE`: 1e-4 | 1% |

Measured from scratch (benchmarks/pretrain_memory.py, benchmarks/RESULTS.md): held-out masked-LM
loss after 300 steps of 32 x 64 tokens of SST-2 sentences. `tiny`: 7.52 with the old default (1e-4),
6.77 / 6.72 / 6.76 with 5e-4 / 1e-3 / 2e-3; `mini`: 6.87 / 6.64 / 6.82 with 1e-4 / 5e-4 / 1e-3. The
best rate halves from one size to the next; small and medium continue that (unmeasured) down to
BERT's 1e-4, which base and large keep. A longer warmup did not help (`tiny` at 1e-3: 6.69 with 1%,
6.72 with 5%), so both cases keep 1%. A checkpoint already encodes language: continuing it takes
BERT's own 1e-4, which keeps what it knows.

Backups (`backup_schedule`): every `save_every` steps (default: a tenth of `max_steps`, but at most one
a minute, so fast steps do not spend their time saving) and every `save_minutes` minutes, so a short
run killed at any point resumes near where it was. With several workers, only `save_every` (every
worker must back up at the same steps).

Example:
    >>> config = PretrainConfig(corpus="corpus.txt", output="runs/tiny")
    >>> config.model, config.batch_size, config.sequence_length
    ('tiny', 32, 128)
    >>> resolved = with_defaults(config)
    >>> resolved.learning_rate, resolved.warmup_ratio
    (0.001, 0.01)
    >>> with_defaults(PretrainConfig(model="runs/tiny/backbone", max_steps=40)).learning_rate
    0.0001
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, Optional

from ptft_keras.config import option
from ptft_keras.models.sizes import NAMED_SIZES
from ptft_keras.training.strategy import STRATEGIES

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
OBJECTIVES = ("mlm", "autoencoder", "word2vec")
FROM_SCRATCH_LEARNING_RATES = {"tiny": 1e-3, "mini": 5e-4, "small": 3e-4, "medium": 2e-4, "base": 1e-4, "large": 1e-4}
FROM_SCRATCH_WARMUP_RATIO = 0.01  # measured: no better with 5% (see above)
CONTINUED_LEARNING_RATE, CONTINUED_WARMUP_RATIO = 1e-4, 0.01
SAVES_PER_RUN = 10  # default save_every: max_steps / SAVES_PER_RUN
MIN_BACKUP_GAP_SECONDS = 60  # the default save_every waits this long after the last backup
CORPUS_HELP = ("text file(s) or glob (.gz too): one sentence per line; a document ends at a blank line or after "
               "--document-lines lines (a file without blank lines is read as documents of that many lines). "
               "Streamed: memory is bounded by the model, the batch and --shuffle-buffer-size, not by the corpus")


@dataclass
class PretrainConfig:
    """Options of `ptft pretrain` (flags `--max-steps` etc., or keys of a `--config` YAML file)."""

    corpus: Optional[str] = option(None, CORPUS_HELP)
    output: Optional[str] = option(None, "output directory; rerun with the same one to resume")
    model: str = option("tiny", f"a size ({'|'.join(NAMED_SIZES)}) to pretrain from scratch, or a checkpoint "
                                "path / Hub id to continue pretraining, or `bilstm` (a fresh BiLSTM; see --objective) "
                                "or a BiLSTM directory")
    model_type: Literal["bert", "distilbert"] = option("bert", "architecture of a from-scratch model")
    vocab_size: int = option(8000, "WordPiece vocabulary trained on the corpus, at most 32 MiB of it spread over "
                                   "its windows (from scratch only)", positive=True)
    max_steps: int = option(1000, "optimizer updates in total (a resumed run counts the ones done)", positive=True)
    batch_size: int = option(32, "global batch size: all replicas and accumulation micro-batches", positive=True)
    sequence_length: int = option(128, "tokens per sequence (documents are packed into full sequences)",
                                  positive=True)
    mlm_probability: float = option(0.15, "fraction of tokens to predict (80% [MASK], 10% random, 10% kept)",
                                    positive=True)
    max_predictions_per_seq: int = option(20, "masked positions scored per sequence", positive=True)
    whole_word_masking: bool = option(False, "mask all pieces of a word together")
    nsp: bool = option(False, "add next-sentence prediction (BERT only)")
    learning_rate: Optional[float] = option(
        None, "peak learning rate (AdamW); default from scratch by size: "
              + ", ".join(f"{size} {rate:g}" for size, rate in FROM_SCRATCH_LEARNING_RATES.items())
              + f"; {CONTINUED_LEARNING_RATE:g} when continuing a checkpoint", positive=True)
    warmup_steps: Optional[int] = option(None, "linear warmup steps (default: warmup_ratio of max_steps)")
    warmup_ratio: Optional[float] = option(
        None, f"warmup as a fraction of max_steps when warmup_steps is not set; default "
              f"{FROM_SCRATCH_WARMUP_RATIO:g} from scratch, {CONTINUED_WARMUP_RATIO:g} when continuing")
    decay: Literal["linear", "cosine", "constant"] = option("linear", "learning-rate decay after warmup")
    weight_decay: float = option(0.01, "AdamW weight decay (not on LayerNorm and bias)")
    clip_norm: Optional[float] = option(1.0, "clip gradients to this global norm (none: no clipping)")
    gradient_accumulation_steps: int = option(1, "micro-batches per update (batch_size is split into them)",
                                              positive=True)
    precision: str = option("float32", "compute dtype policy (mixed_float16 adds loss scaling)", choices=PRECISIONS)
    jit_compile: bool = option(False, "compile the train step with XLA (off for Mirrored on CPUs, which cannot)")
    strategy: str = option("default", "tf.distribute strategy", choices=STRATEGIES)
    tpu: Optional[str] = option(None, "TPU name or grpc:// address (with --strategy tpu)")
    seed: int = option(0, "seed of initialisation, data order, masking and dropout")
    deterministic: bool = option(False, "bitwise-reproducible kernels (enable_op_determinism; slower)")
    save_every: Optional[int] = option(None, f"steps between backups that a rerun resumes from (default: "
                                             f"max_steps / {SAVES_PER_RUN}, at most one backup a minute)",
                                       positive=True)
    save_minutes: float = option(10.0, "also back up when this many minutes have passed since the last backup "
                                       "(0: only by steps; one worker only)")
    eval_every: int = option(1000, "steps between held-out evaluations and checkpoints (a Keras epoch)",
                             positive=True)
    log_every: int = option(100, "steps between TensorBoard step scalars", positive=True)
    heldout_lines: int = option(500, "the first lines of the corpus, held out for evaluation (at most 10% of "
                                     "the lines read to find them; only these are read)", positive=True)
    eval_corpus: Optional[str] = option(None, "held-out text instead of the corpus' first lines (its first "
                                              "--heldout-lines lines are used)")
    document_lines: int = option(128, "a document ends at a blank line or after this many lines", positive=True)
    shuffle_buffer_size: int = option(10_000, "sequences shuffled together: the input reads about "
                                              "4 x sequence_length x this many bytes of text at a time",
                                      positive=True)
    objective: str = option("mlm", "pretraining objective: mlm (masked LM, transformers and BiLSTMs), autoencoder "
                            "(Dai & Le sequence autoencoder) or word2vec (gensim skip-gram into the embedding); the "
                            "last two need --model bilstm", choices=OBJECTIVES)
    vectors: Optional[str] = option(None, "--model bilstm: initialise the embedding from word vectors (word2vec "
                                    "text/.bin or GloVe) before pretraining; embedding_dim defaults to their dimension")
    encoder_options: Optional[str] = option(None, "--model bilstm: sizes as key=value pairs, e.g. 'embedding_dim=128,"
                                            "lstm_units=128,num_layers=1,dropout=0.1,pooling=max'")


def with_defaults(config: PretrainConfig) -> PretrainConfig:
    """`config` with the options left unset filled in for its case (from scratch or continued; see above)."""
    scratch = config.model in NAMED_SIZES
    learning_rate = config.learning_rate or (FROM_SCRATCH_LEARNING_RATES[config.model] if scratch
                                             else CONTINUED_LEARNING_RATE)
    warmup_ratio = config.warmup_ratio
    if warmup_ratio is None:
        warmup_ratio = FROM_SCRATCH_WARMUP_RATIO if scratch else CONTINUED_WARMUP_RATIO
    return replace(config, learning_rate=learning_rate, warmup_ratio=warmup_ratio)


def backup_schedule(config: PretrainConfig, workers: int = 1) -> dict:
    """When the job backs up (`training.callbacks.PreemptionBackup` arguments; see the module docstring).

    Example:
        >>> backup_schedule(PretrainConfig(max_steps=60))
        {'save_freq': 6, 'save_seconds': 600.0, 'min_seconds': 60}
        >>> backup_schedule(PretrainConfig(max_steps=60, save_every=5), workers=2)
        {'save_freq': 5, 'save_seconds': None, 'min_seconds': None}
    """
    alone = workers == 1
    return {"save_freq": config.save_every or max(1, config.max_steps // SAVES_PER_RUN),
            "save_seconds": config.save_minutes * 60 if config.save_minutes > 0 and alone else None,
            "min_seconds": MIN_BACKUP_GAP_SECONDS if config.save_every is None and alone else None}
