"""Gradient accumulation that works under every `tf.distribute` strategy: micro-batches inside one step.

Keras' own `optimizer(gradient_accumulation_steps=N)` applies the update in a conditional branch of
the replica function, which `MirroredStrategy` rejects (keras-team/keras#20582). Here each train step
receives the whole (per-replica) batch, splits it into N micro-batches along the batch axis, sums
their gradients in a `tf.while_loop` (one micro-batch's activations alive at a time) and applies one
optimizer update. So a step is still one update: the learning-rate schedule, `optimizer.iterations`,
checkpoints and the data position all count updates, and nothing branches on the strategy.

Each micro-batch's loss is normalised on its own (as with a smaller batch) and the N gradients are
averaged. A model that defines `loss_normalizer(y, sample_weight, parts)` (e.g. `MaskedLM`: the
global count of masked tokens) gets the denominators of the *whole* batch instead, computed once per
step before the loop, so the update equals the full batch's exactly.

Gradient clipping, too, must see the whole batch: Keras 3 clips each replica's *share* of the
gradient before summing the shares, so under `MirroredStrategy` a global-norm clip of 1.0 acts
on partial gradients and the update differs from one device's. `compile()` makes the optimizer
clip the summed gradient instead (`clip_after_all_reduce`), with the same single all-reduce.

The mixin also carries two fixes for Keras 3 `fit`/`evaluate` under `MultiWorkerMirroredStrategy`
(keras-team/keras#20585): Keras reduces a sample batch across workers before the first step, which
fails on dict inputs (skipped when there is nothing left to build: no compiled loss or metrics, the
optimizer built), and reduces the scalar step results with `axis=0`, which fails on scalars (they
are given a leading axis of 1 there).

Example:
    >>> import keras, numpy as np
    >>> class Regressor(AccumulatingTrainStep, keras.Sequential):
    ...     pass
    >>> model = Regressor([keras.Input((3,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse", gradient_accumulation_steps=2)
    >>> history = model.fit(np.ones((8, 3)), np.ones((8, 1)), batch_size=8, verbose=0)
    >>> model.gradient_accumulation_steps, int(model.optimizer.iterations)
    (2, 1)
"""
from __future__ import annotations

import keras
import tensorflow as tf

from ptft_keras.errors import ConfigError


def split_batch(tensor, parts: int):
    """`tensor` `[B, ...]` reshaped to `[parts, B / parts, ...]` (None stays None)."""
    if tensor is None:
        return None
    shape = tf.shape(tensor)
    static = tensor.shape
    micro = None if static[0] is None else static[0] // parts
    split = tf.reshape(tensor, tf.concat([[parts, shape[0] // parts], shape[1:]], axis=0))
    return tf.ensure_shape(split, [parts, micro, *static[1:]])


def clip_after_all_reduce(optimizer):
    """Make a Keras optimizer clip the gradient summed over replicas, not each replica's share; returns it.

    Keras 3 calls `_clip_gradients` before `_all_reduce_sum_gradients`. Here the clip moves after the
    sum (the optimizer's config, and so its saved form, is unchanged). Outside `tf.distribute`, and
    for an optimizer without clipping, nothing changes.

    Example:
        >>> import keras
        >>> optimizer = clip_after_all_reduce(keras.optimizers.SGD(1.0, global_clipnorm=1.0))
        >>> grads = optimizer._clip_gradients([keras.ops.ones((4,))])  # not clipped here any more ...
        >>> float(keras.ops.sum(grads[0]))
        4.0
        >>> pairs = optimizer._all_reduce_sum_gradients([(keras.ops.ones((4,)), None)])  # ... but after the sum
        >>> round(float(keras.ops.sum(pairs[0][0] ** 2)), 4)
        1.0
    """
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer updates through its inner one
    if optimizer is None or getattr(inner, "_clips_after_all_reduce", False):
        return optimizer
    clip, all_reduce = inner._clip_gradients, inner._all_reduce_sum_gradients

    def all_reduce_then_clip(grads_and_vars):
        pairs = list(all_reduce(grads_and_vars))
        return list(zip(clip([g for g, _ in pairs]), [v for _, v in pairs]))

    inner._clip_gradients = lambda grads: grads
    inner._all_reduce_sum_gradients = all_reduce_then_clip
    inner._clips_after_all_reduce = True
    return optimizer


class AccumulatingTrainStep:
    """Mixin for `keras.Model` subclasses: `compile(..., gradient_accumulation_steps=N)` accumulates N micro-batches.

    Put it before `keras.Model` in the bases. With N = 1 the step is Keras' own `train_step`. The
    per-replica batch must be divisible by N.

    Example:
        >>> import keras
        >>> class Classifier(AccumulatingTrainStep, keras.Model):
        ...     pass
        >>> inputs = keras.Input((4,))
        >>> model = Classifier(inputs, keras.layers.Dense(2)(inputs))
        >>> model.compile(optimizer="adam", loss="mse", gradient_accumulation_steps=4)
        >>> model.gradient_accumulation_steps
        4
    """

    gradient_accumulation_steps = 1

    def compile(self, *args, gradient_accumulation_steps: int = 1, **kwargs):
        if int(gradient_accumulation_steps) < 1:
            raise ConfigError(f"gradient_accumulation_steps must be >= 1, got {gradient_accumulation_steps}")
        self.gradient_accumulation_steps = int(gradient_accumulation_steps)
        super().compile(*args, **kwargs)
        clip_after_all_reduce(self.optimizer)

    def train_step(self, data):
        return _for_multi_worker(self._accumulating_train_step(data))

    def test_step(self, data):
        return _for_multi_worker(super().test_step(data))

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        built = self.optimizer is not None and self.optimizer.built
        if built and getattr(self, "_compile_loss", None) is None and getattr(self, "_compile_metrics", None) is None:
            return  # nothing to build, and Keras' sample-batch reduce would fail under multi-worker
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def _accumulating_train_step(self, data):
        steps = self.gradient_accumulation_steps
        if steps == 1:
            return super().train_step(data)
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        micro = tf.nest.map_structure(lambda t: split_batch(t, steps), (x, y, sample_weight))
        variables = self.trainable_variables
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        extra = {}
        if hasattr(self, "loss_normalizer"):
            extra["normalizer"] = self.loss_normalizer(y, sample_weight, parts=steps)

        def accumulate(i, gradients):
            x_i, y_i, w_i = tf.nest.map_structure(lambda t: None if t is None else t[i], micro)
            with tf.GradientTape() as tape:
                y_pred = self(x_i, training=True)
                loss = self.compute_loss(x=x_i, y=y_i, y_pred=y_pred, sample_weight=w_i, training=True, **extra)
                scaled = self.optimizer.scale_loss(loss / steps)
            new = tape.gradient(scaled, variables)
            unused.update(k for k, gradient in enumerate(new) if gradient is None)
            # Keras' convention: `loss` is this replica's share; the tracker wants the replica-mean value.
            batch = tf.shape(tf.nest.flatten(x_i)[0])[0]
            self._loss_tracker.update_state(loss * replicas, sample_weight=batch)
            self.compute_metrics(x_i, y_i, y_pred, sample_weight=w_i)
            return i + 1, [g if n is None else g + tf.convert_to_tensor(n) for g, n in zip(gradients, new)]

        unused = set()  # variables the loss does not reach: no gradient, as in Keras' own step
        zeros = [tf.zeros(v.shape, dtype=v.dtype) for v in variables]
        _, gradients = tf.while_loop(
            lambda i, _: i < steps, accumulate, (tf.constant(0), zeros), parallel_iterations=1
        )
        self.optimizer.apply([None if k in unused else g for k, g in enumerate(gradients)], variables)
        return self.get_metrics_result()


def _for_multi_worker(logs: dict) -> dict:
    """Give scalar step results a leading axis under multi-worker, where Keras reduces them with `axis=0`."""
    extended = tf.distribute.get_strategy().extended
    if not getattr(extended, "_in_multi_worker_mode", lambda: False)():
        return logs
    return {name: tf.reshape(value, [1]) if value.shape.rank == 0 else value for name, value in logs.items()}
