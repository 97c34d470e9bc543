"""AdamW with per-variable learning-rate multipliers, and the warmup-then-decay schedule.

`make_optimizer(...)` is the one entry point fine-tuning and pretraining share: AdamW with
decoupled weight decay that skips LayerNorm and bias variables, linear warmup then linear or
cosine decay, and gradient clipping (by global norm by default).

Why a small AdamW of our own instead of `keras.optimizers.AdamW`:

* **Layer-wise LR decay (LLRD)** needs a learning rate per variable. Scaling gradients does not
  do it: Adam divides each gradient by its own running RMS, so a gradient scaled by 0.9 gives the
  same step. One optimizer per layer group cannot be used with `model.fit` (Keras drives a single
  optimizer) and multiplies the optimizer state to keep in sync under `tf.distribute`. So the
  multiplier is applied to the learning rate inside `update_step`. It is a Python float looked up
  by variable index at trace time, so it costs nothing per step and works the same under
  `jit_compile=True` and under any `tf.distribute` strategy (`update_step` runs inside Keras's
  `distribution.extended.update`, which already resolves per-replica copies to one index).
* **Variables that join late** (freeze-then-unfreeze): `build` may be called again with more
  variables; it adds fresh zero slots for the newcomers and keeps the others. Each variable has its
  own step count, so Adam's bias correction starts over for a newly unfrozen block exactly as in
  PyTorch's AdamW (whose per-parameter state starts when a parameter first gets a gradient).
* **Warmup restarts**: `restart_warmup()` moves the warmup origin, held in an optimizer variable,
  to the current step, so the next steps ramp up again without retracing the train function.

The update is PyTorch's AdamW (`torch.optim.AdamW`, the transformers reference): decoupled decay
``w -= lr * wd * w`` first, then ``w -= lr / (1 - b1^t) * m / (sqrt(v / (1 - b2^t)) + eps)``, with
``lr`` the scheduled rate times the variable's multiplier.

Example:
    >>> import keras
    >>> opt = make_optimizer(learning_rate=1e-3, warmup_steps=10, total_steps=100)
    >>> round(float(opt.learning_rate), 6)   # step 0 of a linear warmup
    0.0
    >>> kernel, bias = keras.Variable([[1.0]], name="kernel"), keras.Variable([1.0], name="bias")
    >>> opt.build([kernel, bias])
    >>> [opt.decays_weight(v) for v in (kernel, bias)]
    [True, False]
"""
from __future__ import annotations

import math
import re

import keras
from keras import ops
from keras.src.utils.tracking import no_automatic_dependency_tracking

from ptft_keras.errors import ConfigError

#: Variables whose path matches one of these regexes get no weight decay: biases and the scale
#: and offset of normalisation layers (Keras names them gamma/beta).
NO_WEIGHT_DECAY = (r"(^|/)bias$", r"(^|/)(gamma|beta)$", r"norm")

DECAYS = ("linear", "cosine", "constant")


@keras.saving.register_keras_serializable(package="ptft_keras")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to `peak`, then `decay` ("linear", "cosine", "constant") to `end`.

    The decay runs from `warmup_steps` to `total_steps` (constant after that, and constant
    throughout when `total_steps` is None). Step 0 has learning rate 0, as in transformers'
    `get_linear_schedule_with_warmup`. `at(step, warmup_origin, warmup_steps)` is the same curve
    with the warmup ramp restarted at `warmup_origin`: ``ramp(step - origin) * decayed(step)``.

    Example:
        >>> s = WarmupDecay(1.0, warmup_steps=4, total_steps=12)
        >>> [round(float(s(t)), 3) for t in (0, 2, 4, 8, 12)]
        [0.0, 0.5, 1.0, 0.5, 0.0]
        >>> round(float(s.at(9, warmup_origin=8)), 3)   # restarted ramp: 1/4 of the decayed 0.375
        0.094
    """

    def __init__(self, peak, warmup_steps=0, total_steps=None, decay="linear", end_learning_rate=0.0):
        if decay not in DECAYS:
            raise ConfigError(f"unknown learning-rate decay {decay!r}; choose one of {', '.join(DECAYS)}")
        if warmup_steps < 0 or (total_steps is not None and total_steps < warmup_steps):
            raise ConfigError(
                f"warmup_steps={warmup_steps} must be >= 0 and <= total_steps={total_steps}; "
                "lower the warmup or raise the number of training steps"
            )
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = None if total_steps is None else int(total_steps)
        self.decay = decay
        self.end_learning_rate = float(end_learning_rate)

    def decayed(self, step):
        """The learning rate at `step` before any warmup ramp."""
        step = ops.cast(step, "float32")
        if self.decay == "constant" or self.total_steps is None or self.total_steps == self.warmup_steps:
            return ops.full((), self.peak, "float32")
        span = float(self.total_steps - self.warmup_steps)
        progress = ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
        if self.decay == "linear":
            shape = 1.0 - progress
        else:
            shape = 0.5 * (1.0 + ops.cos(math.pi * progress))
        return self.end_learning_rate + (self.peak - self.end_learning_rate) * shape

    def at(self, step, warmup_origin=0, warmup_steps=None):
        """The learning rate at `step` when the warmup ramp (re)started at `warmup_origin`."""
        warmup = ops.cast(self.warmup_steps if warmup_steps is None else warmup_steps, "float32")
        since = ops.cast(step, "float32") - ops.cast(warmup_origin, "float32")
        ramp = ops.where(warmup > 0, ops.clip(since / ops.maximum(warmup, 1.0), 0.0, 1.0), 1.0)
        return ramp * self.decayed(step)

    def __call__(self, step):
        return self.at(step)

    def get_config(self):
        return {
            "peak": self.peak,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "decay": self.decay,
            "end_learning_rate": self.end_learning_rate,
        }


@keras.saving.register_keras_serializable(package="ptft_keras")
class AdamW(keras.optimizers.Optimizer):
    """AdamW (PyTorch semantics) with per-variable LR multipliers and late-joining variables.

    Args:
        learning_rate: float or schedule (a `WarmupDecay` enables `restart_warmup`).
        weight_decay: decoupled weight decay rate, applied as ``lr * weight_decay * w``.
        lr_multipliers: ``{variable.path: factor}``; unlisted variables use 1.0. Settable later
            (`FreezeThenUnfreeze` does); the new factors apply from the next trace.
        exclude_from_weight_decay: regexes searched in `variable.path` (default: bias, LayerNorm).
        Other keyword arguments are Keras's (`global_clipnorm`, `clipnorm`,
        `gradient_accumulation_steps`, ...); `use_ema` is not supported.

    Example:
        >>> import keras
        >>> w = keras.Variable([0.0, 0.0], name="kernel")
        >>> opt = AdamW(0.1, weight_decay=0.0, epsilon=0.0, lr_multipliers={w.path: 0.5})
        >>> opt.apply([keras.ops.convert_to_tensor([2.0, -3.0])], [w])
        >>> [round(x, 4) for x in keras.ops.convert_to_numpy(w).tolist()]  # Adam's first step: lr * sign(g)
        [-0.05, 0.05]
    """

    def __init__(
        self,
        learning_rate=5e-5,
        weight_decay=0.01,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        lr_multipliers=None,
        exclude_from_weight_decay=NO_WEIGHT_DECAY,
        name="adamw",
        **kwargs,
    ):
        if kwargs.get("use_ema"):
            raise ConfigError("ptft_keras AdamW does not support use_ema; use keras.optimizers.AdamW for EMA")
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, name=name, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.lr_multipliers = dict(lr_multipliers or {})
        self.exclude_from_weight_decay_patterns = tuple(exclude_from_weight_decay)
        self._no_decay = re.compile("|".join(self.exclude_from_weight_decay_patterns) or "(?!)")
        schedule_warmup = getattr(self._learning_rate, "warmup_steps", 0)
        with keras.name_scope(self.name, caller=self):
            self._warmup_origin = keras.Variable(
                0, dtype=self._iterations.dtype, trainable=False, name="warmup_origin",
                aggregation="only_first_replica",
            )
            self._warmup_length = keras.Variable(
                float(schedule_warmup), dtype="float32", trainable=False, name="warmup_length",
                aggregation="only_first_replica",
            )
        self._slots = {}  # str(variable key) -> (momentum, velocity, step[, gradient accumulator])

    # --- building, and growing when frozen variables join -------------------------------------
    @no_automatic_dependency_tracking  # as Keras's own build: the model's variables are not our state
    def build(self, variables):
        """Create zero slots for `variables` not seen before; known variables keep their state."""
        variables = list(variables)
        known = dict(self._trainable_variables_indices) if self.built else {}
        newcomers = [v for v in variables if self._var_key(v) not in known]
        if self.built and not newcomers:
            return
        if not self.built:
            self._base_variables = self._variables[:]
        with keras.name_scope(self.name, caller=self):
            for v in newcomers:
                slots = [
                    self.add_variable_from_reference(v, "momentum"),
                    self.add_variable_from_reference(v, "velocity"),
                    self.add_variable((), initializer="zeros", dtype="float32", name=f"{_slot_name(v)}_step"),
                ]
                if self.gradient_accumulation_steps:
                    slots.append(self.add_variable_from_reference(v, "gradient_accumulator"))
                self._slots[str(self._var_key(v))] = tuple(slots)
        # The given order first (a fresh build on the same list yields the same saved layout),
        # then variables known before but no longer passed (frozen again).
        given = {self._var_key(v) for v in variables}
        order = variables + [v for v in self._trainable_variables if self._var_key(v) not in given]
        self._trainable_variables = order
        self._trainable_variables_indices = {self._var_key(v): i for i, v in enumerate(order)}
        slots = [self._slots[str(self._var_key(v))] for v in order]
        self._momentums = [s[0] for s in slots]
        self._velocities = [s[1] for s in slots]
        self._steps = [s[2] for s in slots]
        if self.gradient_accumulation_steps:
            self._accumulated_gradients = [s[3] for s in slots]
        self._paths = [_path(v) for v in order]
        self._decay_flags = [self.decays_weight(v) for v in order]
        self.built = True

    @property
    def variables(self):
        """Optimizer state in a canonical order: the scalars, then each variable's slots in build order.

        `save`/`load` rely on this order; it is the same after a grown build as after a fresh
        build on the final variable list, so models saved after unfreezing load back.
        """
        if not self.built:
            return self._variables[:]
        slots = (self._slots[str(self._var_key(v))] for v in self._trainable_variables)
        return self._base_variables + [slot for per_variable in slots for slot in per_variable]

    def load_own_variables(self, store):
        # A model saved before its first step holds an unbuilt optimizer (the scalars only), while
        # loading builds ours: restore the scalars and keep the zero slots, without a warning.
        if self.built and len(store.keys()) == len(self._base_variables):
            for i, variable in enumerate(self._base_variables):
                variable.assign(store[str(i)])
            return
        super().load_own_variables(store)

    def _check_variables_are_known(self, variables):
        unknown = [_path(v) for v in variables if self._var_key(v) not in self._trainable_variables_indices]
        if unknown:
            raise ConfigError(
                f"{len(unknown)} variable(s) became trainable after the optimizer was built "
                f"(first: {unknown[0]}). Call ptft_keras.training.freezing.refresh_trainable(model) after "
                "changing `trainable`, or fit a ptft_keras task model, which does it for you."
            )

    # --- the update ---------------------------------------------------------------------------
    def decays_weight(self, variable) -> bool:
        """Whether weight decay applies to `variable` (not a bias, not a normalisation weight)."""
        return self._no_decay.search(_path(variable)) is None

    def _apply_weight_decay(self, variables):
        """Decoupled decay happens in `update_step`, scaled by each variable's multiplier."""

    def update_step(self, gradient, variable, learning_rate):
        i = self._get_variable_index(variable)
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype) * self.lr_multipliers.get(self._paths[i], 1.0)
        gradient = ops.cast(gradient, dtype)
        if self.weight_decay and self._decay_flags[i]:
            self.assign_sub(variable, variable * (lr * self.weight_decay))
        step = ops.cast(self._steps[i], "float32") + 1.0
        self.assign(self._steps[i], step)
        step = ops.cast(step, dtype)
        m, v = self._momentums[i], self._velocities[i]
        self.assign_add(m, (gradient - m) * (1.0 - self.beta_1))
        self.assign_add(v, (ops.square(gradient) - v) * (1.0 - self.beta_2))
        bias_correction_1 = 1.0 - ops.power(ops.cast(self.beta_1, dtype), step)
        bias_correction_2 = 1.0 - ops.power(ops.cast(self.beta_2, dtype), step)
        denominator = ops.sqrt(v / bias_correction_2) + self.epsilon
        self.assign_sub(variable, (lr / bias_correction_1) * m / denominator)

    # --- learning rate ------------------------------------------------------------------------
    def _get_current_learning_rate(self):
        if isinstance(self._learning_rate, WarmupDecay):
            return self._learning_rate.at(self._iterations, self._warmup_origin, self._warmup_length)
        return super()._get_current_learning_rate()

    def restart_warmup(self, warmup_steps=None):
        """Ramp the learning rate up again from the current step (no-op without a `WarmupDecay`).

        `warmup_steps` sets the ramp length from now on; by default the schedule's own.
        """
        self._warmup_origin.assign(ops.cast(self._iterations, self._warmup_origin.dtype))
        if warmup_steps is not None:
            self._warmup_length.assign(float(warmup_steps))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "beta_1": self.beta_1,
                "beta_2": self.beta_2,
                "epsilon": self.epsilon,
                "lr_multipliers": dict(self.lr_multipliers),
                "exclude_from_weight_decay": list(self.exclude_from_weight_decay_patterns),
            }
        )
        return config


def make_optimizer(
    learning_rate: float = 5e-5,
    *,
    warmup_steps: int = 0,
    warmup_ratio: float | None = None,
    total_steps: int | None = None,
    decay: str = "linear",
    end_learning_rate: float = 0.0,
    weight_decay: float = 0.01,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-8,
    global_clipnorm: float | None = 1.0,
    lr_multipliers: dict | None = None,
    **kwargs,
) -> AdamW:
    """AdamW with warmup-then-decay, the defaults of transformers' Trainer (plus weight decay 0.01).

    `warmup_ratio` (a fraction of `total_steps`) overrides `warmup_steps`. Extra keyword
    arguments go to `AdamW` (e.g. `gradient_accumulation_steps`, `loss_scale_factor`).

    Example:
        >>> opt = make_optimizer(2e-5, warmup_ratio=0.1, total_steps=1000, decay="cosine")
        >>> float(opt.learning_rate), opt.get_config()["global_clipnorm"]
        (0.0, 1.0)
    """
    if learning_rate <= 0:
        raise ConfigError(f"learning_rate must be > 0, got {learning_rate}")
    if warmup_ratio is not None:
        if total_steps is None or not 0 <= warmup_ratio <= 1:
            raise ConfigError(
                f"warmup_ratio={warmup_ratio} needs total_steps and a value in [0, 1]; "
                "pass total_steps=epochs * steps_per_epoch or use warmup_steps"
            )
        warmup_steps = int(round(warmup_ratio * total_steps))
    schedule = WarmupDecay(learning_rate, warmup_steps, total_steps, decay, end_learning_rate)
    return AdamW(
        schedule,
        weight_decay=weight_decay,
        beta_1=beta_1,
        beta_2=beta_2,
        epsilon=epsilon,
        global_clipnorm=global_clipnorm,
        lr_multipliers=lr_multipliers,
        **kwargs,
    )


def inner_optimizer(optimizer):
    """The optimizer doing the updates (unwraps `keras.optimizers.LossScaleOptimizer`)."""
    return getattr(optimizer, "inner_optimizer", optimizer)


def _path(variable) -> str:
    return getattr(variable, "path", None) or variable.name.split(":")[0]


def _slot_name(variable) -> str:
    return _path(variable).replace("/", "_")
