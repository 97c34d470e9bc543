"""Gradient accumulation inside one step: N micro-batches give the update of the full batch."""
import doctest

import keras
import numpy as np
import pytest
import tensorflow as tf

from ptft_keras.errors import ConfigError
from ptft_keras.models.backbone import Backbone
from ptft_keras.tasks.masked_lm import MaskedLM
from ptft_keras.training import accumulation
from ptft_keras.training.accumulation import AccumulatingTrainStep, split_batch


def test_docstring_examples():
    result = doctest.testmod(accumulation, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_split_batch():
    x = tf.reshape(tf.range(24), (6, 4))
    parts = split_batch(x, 3)
    assert parts.shape == (3, 2, 4)
    np.testing.assert_array_equal(parts[1], x[2:4])
    assert split_batch(None, 3) is None


def test_steps_must_be_positive():
    class Model(AccumulatingTrainStep, keras.Sequential):
        pass

    with pytest.raises(ConfigError, match=">= 1"):
        Model([keras.Input((2,)), keras.layers.Dense(1)]).compile(optimizer="sgd", loss="mse",
                                                                  gradient_accumulation_steps=0)


def _masked_lm_batch(seed=0, size=8, length=10, slots=3, vocab=40):
    rng = np.random.default_rng(seed)
    features = {"token_ids": rng.integers(5, vocab, (size, length)).astype("int32"),
                "segment_ids": np.zeros((size, length), "int32"), "padding_mask": np.ones((size, length), "int32"),
                "mask_positions": np.stack([rng.choice(length, slots, replace=False)
                                            for _ in range(size)]).astype("int32")}
    weights = np.ones((size, slots), "float32")
    weights[:3, 1:] = 0.0  # the first micro-batch has far fewer real slots than the second
    labels = {"mlm": rng.integers(5, vocab, (size, slots)).astype("int32"),
              "nsp": rng.integers(0, 2, size).astype("int32")}
    return features, labels, {"mlm": weights}


def _train_masked_lm(steps):
    keras.utils.set_random_seed(3)
    backbone = Backbone.from_size(None, vocabulary_size=40, num_layers=1, hidden_dim=16, num_heads=2,
                                  intermediate_dim=32, max_sequence_length=16, dropout=0.0)
    model = MaskedLM(backbone, nsp=True)
    model.compile(optimizer=keras.optimizers.SGD(1.0), gradient_accumulation_steps=steps)
    start = [w.copy() for w in model.get_weights()]
    data = tf.data.Dataset.from_tensors(_masked_lm_batch()).repeat(2)
    history = model.fit(data, epochs=1, steps_per_epoch=2, verbose=0)
    updates = [w - s for w, s in zip(model.get_weights(), start)]
    return history.history, updates, int(model.optimizer.iterations)


def test_masked_lm_accumulation_equals_the_full_batch():
    """MaskedLM normalises by the whole batch's masked-slot count, so uneven micro-batches still add up exactly."""
    full, full_updates, full_iterations = _train_masked_lm(1)
    accumulated, accumulated_updates, iterations = _train_masked_lm(4)
    assert iterations == full_iterations == 2  # one optimizer update per step, not per micro-batch
    assert max(np.abs(u).max() for u in full_updates) > 1e-3
    for a, b in zip(full_updates, accumulated_updates):
        np.testing.assert_allclose(a, b, atol=2e-6)
    for name in ("loss", "mlm_loss", "mlm_accuracy", "nsp_loss"):
        assert accumulated[name][0] == pytest.approx(full[name][0], rel=1e-5), name


def test_any_model_averages_equal_micro_batches():
    class Regressor(AccumulatingTrainStep, keras.Sequential):
        pass

    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5]], "float32")
    results = []
    for steps in (1, 2):
        keras.utils.set_random_seed(0)
        model = Regressor([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", gradient_accumulation_steps=steps)
        model.fit(x, y, batch_size=8, epochs=3, verbose=0, shuffle=False)
        results.append(model.get_weights())
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_clipping_sees_the_sum_of_the_replicas_gradients(two_cpus):
    """Keras 3 clips each replica's share; after `compile` the clip applies to the summed gradient, as on one device."""
    class Regressor(AccumulatingTrainStep, keras.Sequential):
        pass

    x = np.random.default_rng(1).normal(size=(8, 3)).astype("float32")
    y = x @ np.array([[3.0], [-2.0], [1.0]], "float32")
    results = []
    for strategy in (tf.distribute.get_strategy(),
                     tf.distribute.MirroredStrategy(two_cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())):
        with strategy.scope():
            keras.utils.set_random_seed(0)
            model = Regressor([keras.Input((3,)), keras.layers.Dense(1)])
            model.compile(optimizer=keras.optimizers.SGD(0.1, global_clipnorm=0.05), loss="mse")
        model.fit(x, y, batch_size=8, epochs=3, verbose=0, shuffle=False)
        results.append(model.get_weights())
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, atol=1e-6)
