"""HF activation names map to Keras functions that compute the same values as transformers."""
import math

import numpy as np
import pytest

from ptft_keras.errors import ConfigError
from ptft_keras.models.activations import HF_ACTIVATIONS, keras_activation

X = np.linspace(-4.0, 4.0, 33, dtype="float32")


def exact_gelu(x):
    return np.array([0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))) for v in x])


def tanh_gelu(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


@pytest.mark.parametrize(
    "name, formula",
    [
        ("gelu", exact_gelu),
        ("gelu_new", tanh_gelu),
        ("gelu_pytorch_tanh", tanh_gelu),
        ("relu", lambda x: np.maximum(x, 0.0)),
        ("silu", lambda x: x / (1.0 + np.exp(-x))),
    ],
)
def test_activation_matches_its_formula(name, formula):
    got = np.asarray(keras_activation(name)(X))
    np.testing.assert_allclose(got, formula(X.astype("float64")), atol=2e-6)


def test_exact_and_approximate_gelu_differ():
    # The difference keras-hub's hard-coded tanh GELU makes against HF's "gelu": it must be visible.
    difference = np.abs(np.asarray(keras_activation("gelu")(X)) - np.asarray(keras_activation("gelu_new")(X)))
    assert difference.max() > 1e-4


def test_unknown_name_is_a_config_error_listing_the_choices():
    with pytest.raises(ConfigError, match="quick_gelu.*gelu_new"):
        keras_activation("quick_gelu")
    assert "gelu" in HF_ACTIVATIONS


def test_exact_gelu_in_16_bits_is_computed_in_float32():
    import keras

    from ptft_keras.models.activations import gelu_erf

    x16 = keras.ops.cast(X, "bfloat16")
    got = keras.ops.convert_to_numpy(gelu_erf(x16))
    assert keras.backend.standardize_dtype(got.dtype) == "bfloat16"
    # Within one bfloat16 rounding of the float64 value at the rounded inputs: no cancellation in 1 + erf(x).
    rounded = keras.ops.convert_to_numpy(keras.ops.cast(x16, "float32")).astype("float64")
    expected = exact_gelu(rounded)
    np.testing.assert_allclose(got.astype("float64"), expected, rtol=2 ** -8, atol=1e-6)


def test_exact_gelu_is_serializable_by_name():
    import keras

    from ptft_keras.models.activations import gelu_erf

    assert keras.activations.deserialize(keras.activations.serialize(gelu_erf)) is gelu_erf
