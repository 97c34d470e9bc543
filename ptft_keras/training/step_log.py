"""`StepLog`: what a fine-tuning run writes as it goes: TensorBoard scalars and a per-step loss curve.

Every `every` optimizer steps it records the training loss, the learning rate and how many variables
train (the freeze-then-unfreeze stage shows as a step in that curve); at each epoch end it writes the
epoch's metrics (``epoch/loss``, ``epoch/val_accuracy``, ...). With `log_dir=None` it only keeps the
per-step curve (`steps`, `losses`), which the report plots, so one epoch still draws a line.

Example:
    >>> import keras, numpy as np, tempfile
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> log = StepLog(tempfile.mkdtemp(), every=2)
    >>> _ = model.fit(np.zeros((8, 2)), np.ones((8, 1)), batch_size=2, epochs=1, verbose=0, callbacks=[log])
    >>> log.steps
    [2, 4]

With ``steps_per_execution=N`` Keras calls the callbacks once per N steps; the steps are the optimizer's,
so the points fall at the first call at or after each multiple of `every`.
"""
from __future__ import annotations

import keras
import numpy as np


def current_learning_rate(optimizer) -> float | None:
    """The optimizer's learning rate now (a schedule evaluated at the current step), or None."""
    try:
        return float(np.asarray(keras.ops.convert_to_numpy(optimizer.learning_rate)))
    except (AttributeError, TypeError, ValueError):
        return None


class StepLog(keras.callbacks.Callback):
    """TensorBoard scalars and a per-step loss curve for `model.fit`; see the module docstring."""

    def __init__(self, log_dir=None, *, every: int = 10, start_step: int = 0):
        super().__init__()
        self.log_dir, self.every = log_dir, max(int(every), 1)
        self.step = int(start_step)
        self.steps: list[int] = []
        self.losses: list[float] = []
        self._writer = None

    def _summary(self):
        if self.log_dir is None:
            return None
        if self._writer is None:
            import tensorflow as tf

            self._writer = tf.summary.create_file_writer(str(self.log_dir))
        return self._writer

    def _write(self, values: dict, step: int) -> None:
        writer = self._summary()
        if writer is None:
            return
        import tensorflow as tf

        with writer.as_default(step=step):
            for name, value in values.items():
                if value is not None:
                    tf.summary.scalar(name, float(value))

    def on_train_batch_end(self, batch, logs=None):
        # the optimizer's count, not calls: with steps_per_execution=N one call is N steps
        previous, self.step = self.step, int(np.asarray(keras.ops.convert_to_numpy(self.model.optimizer.iterations)))
        if self.step // self.every == previous // self.every or not logs or "loss" not in logs:
            return
        loss = float(logs["loss"])
        self.steps.append(self.step)
        self.losses.append(loss)
        self._write({"step/loss": loss, "step/learning_rate": current_learning_rate(self.model.optimizer),
                     "step/trainable_variables": len(self.model.trainable_variables)}, self.step)

    def on_epoch_end(self, epoch, logs=None):
        self._write({f"epoch/{name}": value for name, value in (logs or {}).items()
                     if np.ndim(value) == 0}, epoch + 1)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None
