"""Freeze-then-unfreeze fine-tuning with layer-wise learning-rate decay (LLRD).

A task model is seen as layer *groups*, top-down (`layer_groups`)::

    depth 0      the task head (+ BERT's pooler when the task uses it)
    depth 1      the top transformer block
    ...
    depth L      the bottom transformer block
    depth L + 1  the embeddings

Stage 1 (feature extraction) trains only depth 0. Then the encoder is unfrozen all at once, or
gradually top-down, one group every N epochs or steps (ULMFiT). Each variable's learning rate is
``lr * lr_decay ** depth`` (`layerwise_lr_multipliers`), and every unfreeze restarts the warmup.

In Keras 3 a `trainable` change is invisible to an already traced train function, and a built
optimizer has no slots for variables that were frozen when it was built. `refresh_trainable`
handles both: it grows the optimizer (zero slots for the newcomers; `AdamW.build` keeps the
others) and retraces the train function, with or without ``jit_compile``. The callback
`FreezeThenUnfreeze` does it inside `model.fit`; task models do it in `fit` when you changed
`trainable` by hand between two fits.

Example:
    >>> import keras_hub
    >>> from ptft_keras.tasks import SequenceClassifier
    >>> model = SequenceClassifier(keras_hub.models.BertBackbone(vocabulary_size=50, num_layers=2, num_heads=2,
    ...     hidden_dim=8, intermediate_dim=16, max_sequence_length=16), num_labels=2)
    >>> [[layer.name for layer in group] for group in layer_groups(model)][:3]
    [['classifier_head', 'pooled_dense'], ['transformer_layer_1'], ['transformer_layer_0']]
    >>> layerwise_lr_multipliers(model, 0.5)["token_embedding/embeddings"]     # depth 3
    0.125
    >>> set_trainable_groups(model, 1)           # feature extraction: the head (and BERT's pooler)
    >>> sorted({v.path.split("/")[0] for v in model.trainable_variables})
    ['classifier_head', 'pooled_dense']
    >>> model.compile(jit_compile=False)
    >>> model.optimizer.build(model.trainable_variables)     # built while the encoder was frozen
    >>> set_trainable_groups(model, 4)           # unfreeze by hand ...
    >>> refresh_trainable(model)                 # ... zero slots for the encoder, retrace
    >>> len(model.optimizer._trainable_variables) == len(model.trainable_variables)
    True
    >>> schedule = FreezeSchedule.default()          # 1 epoch head only, then all, LLRD 0.9
    >>> [schedule.trainable_groups(epoch, num_groups=4) for epoch in range(3)]
    [1, 4, 4]
    >>> gradual = FreezeSchedule(head_only=1, unfreeze="gradual", every=1)
    >>> [gradual.trainable_groups(epoch, num_groups=4) for epoch in range(5)]
    [1, 2, 3, 4, 4]

Usage: ``model.fit(train, epochs=3, callbacks=[FreezeThenUnfreeze()])`` with the model compiled
with `make_optimizer(...)` (any Keras optimizer works when ``lr_decay=1`` and ``warmup_steps=0``).
"""
from __future__ import annotations

import dataclasses

import keras

from ptft_keras.errors import ConfigError
from ptft_keras.training.optimizer import AdamW, inner_optimizer

UNFREEZE_MODES = ("all", "gradual")
UNITS = ("epoch", "step")


def layer_groups(model) -> list[list]:
    """The model's layers grouped top-down by depth (see the module docstring).

    The blocks are a BERT backbone's `transformer_layers`, else the encoder's `encoder_blocks`
    (bottom first, e.g. `BiLSTMEncoder`'s LSTM layers); an encoder with neither is one group below
    the head, so any Keras encoder can be frozen and unfrozen as a whole.
    """
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, keras.Model):
        raise ConfigError(
            f"{type(model).__name__} has no `backbone` encoder; layer groups need a ptft_keras task model "
            "(or any model whose `backbone` is a Keras encoder)"
        )
    unused = {id(layer) for layer in getattr(model, "unused_backbone_layers", [])}
    blocks = list(getattr(backbone, "transformer_layers", None) or getattr(backbone, "encoder_blocks", None) or [])
    pooler = getattr(backbone, "pooled_dense", None)
    placed = {id(layer) for layer in blocks} | {id(pooler)}
    head = [layer for layer in model.layers if layer is not backbone and layer.weights]
    if pooler is not None and id(pooler) not in unused:
        head.append(pooler)
    embeddings = [layer for layer in backbone.layers if id(layer) not in placed and layer.weights]
    return [head] + [[block] for block in reversed(blocks)] + ([embeddings] if embeddings else [])


def layerwise_lr_multipliers(model, decay: float) -> dict[str, float]:
    """``{variable.path: decay ** depth}`` for every variable of the model's layer groups.

    Example: with 2 transformer blocks and decay 0.9, the head gets 1.0, the top block 0.9, the
    bottom block 0.81 and the embeddings 0.729.
    """
    if not 0 < decay <= 1:
        raise ConfigError(f"lr_decay must be in (0, 1], got {decay}")
    multipliers = {}
    for depth, group in enumerate(layer_groups(model)):
        factor = decay**depth
        for layer in group:
            for variable in layer.weights:
                if multipliers.setdefault(variable.path, factor) != factor:
                    raise ConfigError(
                        f"two variables share the path {variable.path!r} at different depths; give the "
                        "layers distinct names so layer-wise learning rates can tell them apart"
                    )
    return multipliers


def set_trainable_groups(model, count: int):
    """Make the top `count` layer groups trainable and freeze the others (1: only the head)."""
    groups = layer_groups(model)
    if not model.trainable:
        model.trainable = True
    if not model.backbone.trainable:
        model.backbone.trainable = True
    for depth, group in enumerate(groups):
        for layer in group:
            layer.trainable = depth < count
    for layer in getattr(model, "unused_backbone_layers", []):
        layer.trainable = False


def trainable_signature(model) -> frozenset:
    """Identifies the set of trainable variables (to notice `trainable` changes)."""
    return frozenset(id(v) for v in model.trainable_variables)


def refresh_trainable(model):
    """Make `trainable` changes take effect in a compiled model, inside or outside `fit`.

    Newly trainable variables get zero optimizer slots (fresh Adam moments and step counts) and
    the train function is rebuilt, so the next step traces (and XLA-compiles) the new set.
    """
    optimizer = model.optimizer
    if optimizer is not None and optimizer.built:
        inner = inner_optimizer(optimizer)
        known = inner._trainable_variables_indices
        missing = [v for v in model.trainable_variables if inner._var_key(v) not in known]
        if missing:
            if not isinstance(inner, AdamW):
                raise ConfigError(
                    f"{len(missing)} variable(s) became trainable after {type(inner).__name__} was built "
                    f"(first: {missing[0].path}) and Keras optimizers cannot grow; compile with "
                    "ptft_keras.training.optimizer.make_optimizer(), or compile again with a fresh optimizer"
                )
            with model.distribute_strategy.scope():
                inner.build(model.trainable_variables)
    model.make_train_function(force=True)


@dataclasses.dataclass(frozen=True)
class FreezeSchedule:
    """When to unfreeze what, and the learning-rate factors.

    Attributes:
        head_only: epochs (or steps, see `unit`) of stage 1, training only the head.
        unfreeze: ``"all"`` (the whole encoder at once) or ``"gradual"`` (top-down, one group at a time).
        every: gradual only: one more group every `every` units.
        unit: ``"epoch"`` or ``"step"`` (optimizer steps, counted over the whole training).
        lr_decay: layer-wise LR decay; 1.0 disables it.
        warmup_steps: length of the fresh warmup after each unfreeze; None: a tenth of an epoch when
            the epoch length is known, else the optimizer schedule's own warmup; 0 disables it.
        top_blocks: never unfreeze more than the top `top_blocks` groups below the head (1: the recipe
            "freeze every encoder layer but the last"); None: the whole model.
    """

    head_only: int = 1
    unfreeze: str = "all"
    every: int = 1
    unit: str = "epoch"
    lr_decay: float = 0.9
    warmup_steps: int | None = None
    top_blocks: int | None = None

    def __post_init__(self):
        if self.unfreeze not in UNFREEZE_MODES:
            raise ConfigError(f"unknown unfreeze mode {self.unfreeze!r}; choose one of {', '.join(UNFREEZE_MODES)}")
        if self.unit not in UNITS:
            raise ConfigError(f"unknown freeze-schedule unit {self.unit!r}; choose one of {', '.join(UNITS)}")
        if self.head_only < 0 or self.every < 1:
            raise ConfigError(f"head_only must be >= 0 and every >= 1 (got {self.head_only}, {self.every})")
        if not 0 < self.lr_decay <= 1:
            raise ConfigError(f"lr_decay must be in (0, 1], got {self.lr_decay}")
        if self.top_blocks is not None and self.top_blocks < 0:
            raise ConfigError(f"top_blocks must be >= 0 or None, got {self.top_blocks}")

    @classmethod
    def default(cls) -> FreezeSchedule:
        """One epoch training only the head, then everything with LLRD 0.9 and a fresh warmup."""
        return cls()

    def trainable_groups(self, elapsed: int, num_groups: int) -> int:
        """How many groups (from the top) train after `elapsed` units.

        Example:
            >>> FreezeSchedule(head_only=1, top_blocks=1).trainable_groups(5, num_groups=8)  # head + top block
            2
        """
        limit = num_groups if self.top_blocks is None else min(num_groups, 1 + self.top_blocks)
        if elapsed < self.head_only:
            return 1
        if self.unfreeze == "all":
            return limit
        return min(limit, 2 + (elapsed - self.head_only) // self.every)


class FreezeThenUnfreeze(keras.callbacks.Callback):
    """Runs a `FreezeSchedule` inside `model.fit` (also with ``jit_compile=True`` and under a strategy).

    `trainable_groups` holds the current number of trainable groups; `unfreeze_steps` the
    optimizer steps at which groups were unfrozen.

    Example:
        >>> import numpy as np, keras_hub
        >>> from ptft_keras.tasks import SequenceClassifier
        >>> model = SequenceClassifier(keras_hub.models.DistilBertBackbone(vocabulary_size=50, num_layers=2,
        ...     num_heads=2, hidden_dim=8, intermediate_dim=16, max_sequence_length=16), num_labels=2)
        >>> model.compile(jit_compile=False)         # make_optimizer(): AdamW, warmup, decay
        >>> x = {"token_ids": np.ones((8, 6), "int32"), "padding_mask": np.ones((8, 6), "int32")}
        >>> callback = FreezeThenUnfreeze(FreezeSchedule(head_only=1, unfreeze="gradual", every=1))
        >>> _ = model.fit(x, np.zeros(8), batch_size=4, epochs=3, callbacks=[callback], verbose=0)
        >>> callback.unfreeze_steps, callback.trainable_groups   # one more group per epoch, of 4
        ([2, 4], 3)

        Per N steps instead: ``FreezeSchedule(unfreeze="gradual", every=200, unit="step")``.
    """

    def __init__(self, schedule: FreezeSchedule | None = None, *, resume_from: int | None = None):
        super().__init__()
        self.schedule = schedule or FreezeSchedule.default()
        self.trainable_groups = None
        self.unfreeze_steps = []
        #: a resumed run's elapsed steps (or epochs, per the schedule's unit): it starts in the stage its
        #: last step was in, so an unfreeze due right now still restarts the warmup, and an earlier one does not
        self.resume_from = resume_from

    def on_train_begin(self, logs=None):
        model, schedule = self.model, self.schedule
        self._num_groups = len(layer_groups(model))
        optimizer = inner_optimizer(model.optimizer)
        needs_adamw = schedule.lr_decay != 1.0 or schedule.warmup_steps
        if needs_adamw and not isinstance(optimizer, AdamW):
            raise ConfigError(
                f"layer-wise LR decay and warmup restarts need ptft_keras AdamW, not {type(optimizer).__name__}: "
                "compile with optimizer=make_optimizer(...), or use FreezeSchedule(lr_decay=1.0, warmup_steps=0)"
            )
        # The optimizer learns every variable now, while they are all trainable: zero slots that
        # stay zero until the variable is unfrozen, and the same saved layout as a fresh build.
        if isinstance(optimizer, AdamW):
            optimizer.lr_multipliers = layerwise_lr_multipliers(model, schedule.lr_decay)
        set_trainable_groups(model, self._num_groups)
        if not model.optimizer.built:
            with model.distribute_strategy.scope():
                model.optimizer.build(model.trainable_variables)
        refresh_trainable(model)
        self.trainable_groups = None
        if self.resume_from:
            self._apply(self.resume_from - 1)
        if schedule.unit == "step":
            self._apply(_current_step(model))

    def on_epoch_begin(self, epoch, logs=None):
        if self.schedule.unit == "epoch":
            self._apply(epoch)

    def on_train_batch_begin(self, batch, logs=None):
        if self.schedule.unit == "step":
            self._apply(_current_step(self.model))

    def _apply(self, elapsed: int):
        count = self.schedule.trainable_groups(elapsed, self._num_groups)
        if count == self.trainable_groups:
            return
        set_trainable_groups(self.model, count)
        refresh_trainable(self.model)
        if self.trainable_groups is not None and count > self.trainable_groups:
            self._restart_warmup()
        self.trainable_groups = count

    def _restart_warmup(self):
        optimizer = inner_optimizer(self.model.optimizer)
        self.unfreeze_steps.append(_current_step(self.model))
        if not isinstance(optimizer, AdamW) or self.schedule.warmup_steps == 0:
            return
        steps = self.schedule.warmup_steps
        if steps is None and self.params and self.params.get("steps"):
            steps = max(1, self.params["steps"] // 10)
        optimizer.restart_warmup(steps)


def _current_step(model) -> int:
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))
