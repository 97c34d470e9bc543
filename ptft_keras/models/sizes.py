"""Named model sizes: layers and hidden width, with heads = hidden / 64 and intermediate = 4 * hidden.

Example:
    >>> from ptft_keras.models.sizes import size_config
    >>> size_config("mini")
    {'num_layers': 4, 'hidden_dim': 256, 'num_heads': 4, 'intermediate_dim': 1024}
"""
from __future__ import annotations

from ptft_keras.errors import ConfigError

# name -> (num_layers, hidden_dim), the BERT miniatures grid (Turc et al., 2019) plus base/large.
NAMED_SIZES = {
    "tiny": (2, 128),
    "mini": (4, 256),
    "small": (4, 512),
    "medium": (8, 512),
    "base": (12, 768),
    "large": (24, 1024),
}


def size_config(size: str) -> dict:
    """Backbone constructor arguments (`num_layers`, `hidden_dim`, `num_heads`, `intermediate_dim`) of a named size."""
    try:
        num_layers, hidden_dim = NAMED_SIZES[size]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown model size {size!r}; use one of {list(NAMED_SIZES)} or pass the dimensions yourself"
        ) from None
    return {
        "num_layers": num_layers,
        "hidden_dim": hidden_dim,
        "num_heads": hidden_dim // 64,
        "intermediate_dim": 4 * hidden_dim,
    }
