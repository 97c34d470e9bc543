"""The options of `ptft pretrain` (`PretrainConfig`), apart from the job so `ptft pretrain --help` loads no
TensorFlow.

Example:
    >>> config = PretrainConfig(corpus="corpus.txt", output="runs/tiny")
    >>> config.model, config.batch_size, config.sequence_length
    ('tiny', 32, 128)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from ptft_keras.config import option
from ptft_keras.models.sizes import NAMED_SIZES
from ptft_keras.training.strategy import STRATEGIES

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


@dataclass
class PretrainConfig:
    """Options of `ptft pretrain` (flags `--max-steps` etc., or keys of a `--config` YAML file)."""

    corpus: Optional[str] = option(None, "text file(s) or glob: one sentence per line, a blank line between documents")
    output: Optional[str] = option(None, "output directory; rerun with the same one to resume")
    model: str = option("tiny", f"a size ({'|'.join(NAMED_SIZES)}) to pretrain from scratch, or a checkpoint "
                                "path / Hub id to continue pretraining")
    model_type: Literal["bert", "distilbert"] = option("bert", "architecture of a from-scratch model")
    vocab_size: int = option(8000, "WordPiece vocabulary trained on the corpus (from scratch only)", positive=True)
    max_steps: int = option(1000, "optimizer updates in total (a resumed run counts the ones done)", positive=True)
    batch_size: int = option(32, "global batch size: all replicas and accumulation micro-batches", positive=True)
    sequence_length: int = option(128, "tokens per sequence (documents are packed into full sequences)",
                                  positive=True)
    mlm_probability: float = option(0.15, "fraction of tokens to predict (80% [MASK], 10% random, 10% kept)",
                                    positive=True)
    max_predictions_per_seq: int = option(20, "masked positions scored per sequence", positive=True)
    whole_word_masking: bool = option(False, "mask all pieces of a word together")
    nsp: bool = option(False, "add next-sentence prediction (BERT only)")
    learning_rate: float = option(1e-4, "peak learning rate (AdamW)", positive=True)
    warmup_steps: Optional[int] = option(None, "linear warmup steps (default: warmup_ratio of max_steps)")
    warmup_ratio: float = option(0.01, "warmup as a fraction of max_steps when warmup_steps is not set")
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
    save_every: int = option(500, "steps between backups that a rerun resumes from", positive=True)
    eval_every: int = option(1000, "steps between held-out evaluations and checkpoints (a Keras epoch)",
                             positive=True)
    log_every: int = option(100, "steps between TensorBoard step scalars", positive=True)
    heldout_lines: int = option(500, "lines at the end of the corpus held out for evaluation (at most 10%)",
                                positive=True)
    eval_corpus: Optional[str] = option(None, "held-out text instead of the corpus' last lines "
                                              "(for corpora too large to read into memory)")
