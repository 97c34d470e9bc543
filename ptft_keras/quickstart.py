"""`ptft quickstart` and `ptft embed`: the main job on the offline defaults.

Example:
    >>> from ptft_keras.quickstart import embed
    >>> vectors = embed(["A first sentence.", "Another one."])  # doctest: +SKIP
    >>> vectors.shape  # doctest: +SKIP
    (2, 384)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ptft_keras.config import option

DEFAULT_SENTENCES = ("The movie was a delight from start to finish.", "I would not watch it again.")


@dataclass
class EmbedConfig:
    model: Optional[str] = option(None, "checkpoint path or hub id (default: the offline all-MiniLM-L6-v2)")
    sentences: list[str] = field(
        default_factory=lambda: list(DEFAULT_SENTENCES),
        metadata={"help": "comma-separated sentences to embed"},
    )
    sequence_length: Optional[int] = option(None, "pad/truncate to this length (default: longest sentence)")


def embed(sentences, model=None, *, sequence_length=None) -> np.ndarray:
    """Mean-pooled, L2-normalised sentence embeddings (the all-MiniLM-L6-v2 recipe)."""
    from ptft_keras.data.tokenizer import Tokenizer
    from ptft_keras.models.backbone import Backbone
    from ptft_keras.models.default_checkpoint import default_checkpoint_path

    model = str(model or default_checkpoint_path())
    tokenizer = Tokenizer.from_pretrained(model)
    backbone = Backbone.from_pretrained(model)
    inputs = tokenizer(list(sentences), sequence_length=sequence_length)
    hidden = backbone(inputs)["sequence_output"].numpy()
    mask = inputs["padding_mask"].numpy()[..., None].astype(hidden.dtype)
    pooled = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
    return pooled / np.linalg.norm(pooled, axis=-1, keepdims=True)


def run_embed(config: EmbedConfig) -> int:
    vectors = embed(config.sentences, config.model, sequence_length=config.sequence_length)
    np.set_printoptions(precision=4, suppress=True, linewidth=110)
    for sentence, vector in zip(config.sentences, vectors):
        print(f"{sentence!r}\n  dim={vector.shape[0]} first 8: {vector[:8]}")
    if len(vectors) > 1:
        print(f"cosine similarity of the first two: {float(vectors[0] @ vectors[1]):.4f}")
    return 0


@dataclass
class QuickstartConfig(EmbedConfig):
    pass


def run(config) -> int:
    return run_embed(config)
