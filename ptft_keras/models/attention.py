"""Self-attention scores without a transposed [batch, heads, T, T] copy: same results, less time.

Keras' `MultiHeadAttention` computes its scores with `einsum("aecd,abcd->acbe", key, query)`. TensorFlow's
Einsum op lowers that equation to a batched matmul whose output comes out as [batch, heads, S, T] and is
then transposed into [batch, heads, T, S]: one extra pass over the largest tensor of the layer, in the
forward and in the backward pass. At 512 tokens that transpose costs more than the matmul itself.

`use_fast_attention(layer)` replaces the layer's `_compute_attention` (the override point Keras documents
for custom attention) with one that transposes the small [batch, T, heads, head_dim] inputs instead and
multiplies `query @ key^T` straight into the [batch, heads, T, S] layout; the padding mask is added as a
[batch, 1, 1, S] bias instead of selected into every score. Everything else is Keras' own:
the scaling, the layer's `Softmax` and its large negative number for masked keys, its attention-dropout layer (so training behaves the same) and
the returned scores. The backbones install it on every self-attention layer when they are built;
outputs equal Keras' path to float rounding (`tests/models/test_attention.py`).

Example:
    >>> import keras, numpy as np
    >>> from ptft_keras.models.attention import use_fast_attention
    >>> layer = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)
    >>> x = np.random.default_rng(0).normal(size=(1, 3, 8)).astype("float32")
    >>> before = layer(x, x)
    >>> use_fast_attention(layer)
    True
    >>> bool(np.allclose(before, layer(x, x), atol=1e-6))
    True
"""
from __future__ import annotations

import types

import keras
from keras import ops
from keras.src.layers.activations.softmax import _large_negative_number


def use_fast_attention(layer: keras.layers.MultiHeadAttention) -> bool:
    """Give `layer` the transpose-free score computation; False (layer unchanged) where it does not apply.

    It applies to attention over one sequence axis (`attention_axes` left at its default), the case of
    every BERT and DistilBERT layer.
    """
    axes = layer._attention_axes
    if axes is not None and tuple(axes) not in ((1,), (-3,)):
        return False
    layer._compute_attention = types.MethodType(_compute_attention, layer)
    return True


def _compute_attention(self, query, key, value, attention_mask=None, training=None,
                       return_attention_scores=False, use_causal_mask=False):
    if len(query.shape) != 4 or use_causal_mask:
        # Not a BERT encoder's call: Keras' own path.
        return type(self)._compute_attention(self, query, key, value, attention_mask=attention_mask,
                                             training=training, return_attention_scores=return_attention_scores,
                                             use_causal_mask=use_causal_mask)
    query = ops.multiply(query, ops.cast(self._inverse_sqrt_key_dim, query.dtype))
    # [B, T, N, H] -> [B, N, T, H]; key straight to [B, N, H, S] so the matmul gives [B, N, T, S].
    scores = ops.matmul(ops.transpose(query, (0, 2, 1, 3)), ops.transpose(key, (0, 2, 3, 1)))
    if attention_mask is not None:
        for _ in range(len(scores.shape) - len(attention_mask.shape)):
            attention_mask = ops.expand_dims(attention_mask, axis=-3)  # the heads axis, as Keras does
        # Keras' Softmax selects (`where`) its large negative number into masked places, broadcasting the mask
        # over every score; adding it as a bias built on the small mask is cheaper. Masked keys get probability
        # 0 either way; rows could differ only where every key is masked, which a padding mask never gives.
        large_negative = _large_negative_number(scores.dtype)
        bias = ops.where(ops.cast(attention_mask, "bool"), ops.zeros((), scores.dtype), large_negative)
        scores = ops.add(scores, bias)
    scores = self._softmax(scores)
    probabilities = self._dropout_layer(scores, training=training) if self._dropout > 0.0 else scores
    output = ops.matmul(probabilities, ops.transpose(value, (0, 2, 1, 3)))  # [B, N, T, H]
    return ops.transpose(output, (0, 2, 1, 3)), scores
