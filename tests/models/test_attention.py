import keras
import numpy as np
import pytest
import tensorflow as tf

from ptft_keras.models.attention import use_fast_attention
from ptft_keras.models.backbone import Backbone


def _pair(dropout=0.0, **kwargs):
    """Two MultiHeadAttention layers with the same weights, the second with the fast path."""
    keras_layer = keras.layers.MultiHeadAttention(num_heads=3, key_dim=4, dropout=dropout, **kwargs)
    fast_layer = keras.layers.MultiHeadAttention(num_heads=3, key_dim=4, dropout=dropout, **kwargs)
    x = np.random.default_rng(0).normal(size=(2, 5, 12)).astype("float32")
    keras_layer(x, x)
    fast_layer(x, x)
    fast_layer.set_weights(keras_layer.get_weights())
    assert use_fast_attention(fast_layer)
    return keras_layer, fast_layer, x


def _padding_mask():
    mask = np.ones((2, 1, 5), bool)
    mask[1, :, 3:] = False  # the second sequence has two padding positions
    return mask


def test_outputs_and_scores_equal_keras_with_a_padding_mask():
    keras_layer, fast_layer, x = _pair()
    mask = _padding_mask()
    expected, expected_scores = keras_layer(x, x, attention_mask=mask, return_attention_scores=True)
    got, scores = fast_layer(x, x, attention_mask=mask, return_attention_scores=True)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-6)
    assert float(np.max(np.asarray(scores)[1, :, :, 3:])) == 0.0  # padding keys get no attention


def test_gradients_equal_keras():
    keras_layer, fast_layer, x = _pair()
    mask = _padding_mask()
    grads = []
    for layer in (keras_layer, fast_layer):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x, x, attention_mask=mask, training=True) ** 2)
        grads.append(tape.gradient(loss, layer.trainable_variables))
    for expected, got in zip(*grads):
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_attention_dropout_applies_in_training_only():
    _, fast_layer, x = _pair(dropout=0.5)
    inference = fast_layer(x, x, training=False)
    np.testing.assert_allclose(inference, fast_layer(x, x, training=False), atol=1e-7)
    assert not np.allclose(fast_layer(x, x, training=True), inference, atol=1e-4)


def test_causal_mask_falls_back_to_keras():
    keras_layer, fast_layer, x = _pair()
    np.testing.assert_allclose(fast_layer(x, x, use_causal_mask=True), keras_layer(x, x, use_causal_mask=True),
                               atol=1e-6)


def test_attention_over_two_axes_is_left_alone():
    layer = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, attention_axes=(1, 2))
    assert not use_fast_attention(layer)
    assert "_compute_attention" not in vars(layer)


@pytest.mark.parametrize("model_type", ["bert", "distilbert"])
def test_backbones_use_it_and_match_keras_path(model_type):
    backbone = Backbone.from_size("tiny", model_type=model_type, vocabulary_size=100)
    attention_layers = [layer._self_attention_layer for layer in backbone.transformer_layers]
    assert all("_compute_attention" in vars(layer) for layer in attention_layers)
    inputs = {"token_ids": np.array([[2, 7, 9, 3, 0, 0], [2, 5, 3, 0, 0, 0]]),
              "padding_mask": np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]])}
    if model_type == "bert":
        inputs["segment_ids"] = np.zeros((2, 6), "int32")
    fast = backbone(inputs)["sequence_output"]
    for layer in attention_layers:
        del layer._compute_attention  # back to the class's (Keras') method
    keras_path = backbone(inputs)["sequence_output"]
    real = np.asarray(inputs["padding_mask"], bool)
    np.testing.assert_allclose(np.asarray(fast)[real], np.asarray(keras_path)[real], atol=1e-5)


def test_a_reloaded_backbone_has_it_again(tmp_path):
    backbone = Backbone.from_size("tiny", vocabulary_size=100)
    backbone.save(tmp_path / "b.keras")
    reloaded = Backbone.from_pretrained(tmp_path / "b.keras")
    assert all("_compute_attention" in vars(layer._self_attention_layer) for layer in reloaded.transformer_layers)
