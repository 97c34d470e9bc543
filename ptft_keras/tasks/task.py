"""`TaskModel`: the plumbing every task model shares, so each task file holds only its forward pass.

* `compile()` defaults: ``optimizer="auto"`` is `make_optimizer()`, ``loss``/``metrics`` ``"auto"``
  are the task's `default_loss()` / `default_metrics()`; restored by `keras.saving.load_model`.
* Serialisation: the backbone is stored inside the config (`keras.saving.serialize_keras_object`).
* `trainable` changes between two `fit` calls take effect without recompiling: `fit` notices the
  change and calls `refresh_trainable` (new variables get zero optimizer slots; the train
  function is retraced, also under ``jit_compile=True``).
* `load(path)` / `load_weights(path)` raise `CheckpointError` for missing files and other
  architectures.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import keras

from ptft_keras.errors import CheckpointError
from ptft_keras.training.freezing import refresh_trainable, trainable_signature
from ptft_keras.training.optimizer import make_optimizer


class TaskModel(keras.Model):
    """Base class of the task models (not used directly).

    Subclasses build their layers in `__init__` (so a fresh instance is already built and loads
    weights), implement `call(features, training=False)`, `default_loss()`, `default_metrics()`
    and `task_config()` (the constructor arguments besides the backbone).
    """

    def __init__(self, backbone, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone

    # --- what subclasses provide ---------------------------------------------------------------
    def default_loss(self):
        raise NotImplementedError

    def default_metrics(self):
        return []

    def default_loss_weights(self):
        return None

    def task_config(self) -> dict:
        return {}

    @property
    def unused_backbone_layers(self) -> list:
        """Backbone layers this task never calls, kept frozen so they get no empty gradients:
        BERT's pooler, unless the task pools with it."""
        pooler = getattr(self.backbone, "pooled_dense", None)
        return [pooler] if pooler is not None else []

    def _finish_construction(self):
        """Call at the end of a subclass `__init__`, once every layer is built."""
        for layer in self.unused_backbone_layers:
            layer.trainable = False
        self.built = True

    # --- keras plumbing ------------------------------------------------------------------------
    def build(self, input_shape=None):
        # Every layer is built in `__init__`, from the backbone's hidden size.
        self.built = True

    def compile(self, optimizer="auto", loss="auto", metrics="auto", **kwargs):
        """`keras.Model.compile` with task defaults for ``"auto"`` (see the module docstring)."""
        if isinstance(optimizer, str) and optimizer == "auto":
            optimizer = make_optimizer()
        if isinstance(loss, str) and loss == "auto":
            loss = self.default_loss()
            kwargs.setdefault("loss_weights", self.default_loss_weights())
        if isinstance(metrics, str) and metrics == "auto":
            metrics = self.default_metrics()
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def compile_from_config(self, config):
        # Keras skips compile on load when `compile` is overridden; ours takes the same arguments.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.optimizer is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def make_train_function(self, force=False):
        self._trainable_at_trace = trainable_signature(self)
        return super().make_train_function(force=force)

    def fit(self, *args, **kwargs):
        if self.train_function is not None and getattr(self, "_trainable_at_trace", None) != trainable_signature(self):
            refresh_trainable(self)
        return super().fit(*args, **kwargs)

    def get_config(self):
        return {
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "name": self.name,
            "trainable": self.trainable,
            **self.task_config(),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("backbone"), dict):
            config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)

    # --- loading with errors that say what went wrong ------------------------------------------
    @classmethod
    def load(cls, path):
        """Load a task model saved with ``model.save("x.keras")``, checking it is a `cls`.

        Example (see tests): ``SequenceClassifier.load("sst2.keras")``.
        """
        path = Path(path)
        if not path.is_file():
            raise CheckpointError("no such model file; save one with model.save('name.keras')", path=path)
        try:
            model = keras.saving.load_model(path)
        except (ValueError, TypeError, KeyError, OSError) as exc:
            raise CheckpointError(f"is not a loadable Keras model file ({exc})", path=path) from exc
        if not isinstance(model, cls):
            found = type(model).__name__
            raise CheckpointError(
                f"holds a {found}, not a {cls.__name__}; load it with {found}.load() or keras.saving.load_model()",
                path=path,
            )
        return model

    def load_weights(self, filepath, *args, **kwargs):
        """`keras.Model.load_weights`, raising `CheckpointError` when the file does not fit this model."""
        if not Path(filepath).exists():
            raise CheckpointError("no such weights file", path=filepath)
        misfit = (
            f"the weights do not fit this {type(self).__name__} over a {type(self.backbone).__name__} "
            f"({getattr(self.backbone, 'num_layers', '?')} layers, hidden {self.backbone.hidden_dim}); they were probably "
            "saved from another architecture or task"
        )
        # Keras silently skips stored weights the model has no place for (e.g. a 12-layer file
        # loaded into 6 layers); count them first.
        stored = _stored_weight_count(filepath)
        if stored is not None and stored != len(self.weights):
            raise CheckpointError(
                f"{misfit}: the file holds {stored} weights, the model has {len(self.weights)}", path=filepath
            )
        try:
            return super().load_weights(filepath, *args, **kwargs)
        except (ValueError, KeyError) as exc:
            raise CheckpointError(f"{misfit}. Keras said: {exc}", path=filepath) from exc


def _stored_weight_count(filepath) -> int | None:
    """Number of model (not optimizer) weights in a Keras ``.weights.h5`` file; None for other formats."""
    if not str(filepath).endswith(".weights.h5"):
        return None
    names = []
    with h5py.File(filepath, "r") as store:
        store.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
    return sum(not name.startswith("optimizer/") for name in names)
