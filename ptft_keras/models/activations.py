"""Hugging Face activation names (`hidden_act`) and the Keras functions that compute them exactly.

keras-hub's BertBackbone hard-codes the tanh approximation of GELU, while HF BERT's `"gelu"` is
the exact erf form; the difference reaches 1e-3 after six layers. This table is the one place
that decides which Keras function an HF name means.

The exact form is `gelu_erf`, written as transformers and PyTorch write it (`0.5 x (1 + erf(x / sqrt 2))`)
rather than `keras.activations.gelu(approximate=False)`: TensorFlow computes the latter through `erfc`, which
its CPU kernels evaluate about 3x slower than `erf` (a fifth of a MiniLM forward pass at 512 tokens went to
it). The two agree to float rounding.

Example:
    >>> from ptft_keras.models.activations import keras_activation
    >>> import numpy as np
    >>> round(float(keras_activation("gelu")(np.float32(1.0))), 4)
    0.8413
    >>> round(float(keras_activation("gelu_new")(np.float32(1.0))), 4)
    0.8412
"""
from __future__ import annotations

import keras
from keras_hub.src.utils.keras_utils import gelu_approximate

from ptft_keras.errors import ConfigError


@keras.saving.register_keras_serializable(package="ptft_keras")
def gelu_erf(x):
    """The exact (erf) GELU, as transformers' `"gelu"` computes it (in float32 for 16-bit inputs, as PyTorch does)."""
    x = keras.ops.convert_to_tensor(x)
    dtype = keras.backend.standardize_dtype(x.dtype)
    if dtype in ("float16", "bfloat16"):
        # 1 + erf(x) cancels for negative x: in 16 bits that costs most of the digits.
        return keras.ops.cast(gelu_erf(keras.ops.cast(x, "float32")), dtype)
    return 0.5 * x * (1.0 + keras.ops.erf(x * 0.7071067811865476))


# The HF names: transformers.activations.ACT2FN. Aliases compute the same function up to float
# rounding (gelu_new, gelu_fast and gelu_pytorch_tanh are all the tanh approximation).
HF_ACTIVATIONS = {
    "gelu": gelu_erf,
    "gelu_python": gelu_erf,
    "gelu_new": gelu_approximate,
    "gelu_fast": gelu_approximate,
    "gelu_pytorch_tanh": gelu_approximate,
    "relu": keras.activations.relu,
    "silu": keras.activations.silu,
    "swish": keras.activations.silu,
}


def keras_activation(hidden_act: str):
    """The Keras activation function for an HF `hidden_act` name; ConfigError if unsupported."""
    try:
        return HF_ACTIVATIONS[hidden_act]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unsupported hidden_act {hidden_act!r}; use one of {sorted(HF_ACTIVATIONS)}"
        ) from None
