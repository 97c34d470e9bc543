"""Choose the `tf.distribute` strategy once, by name. Nothing else in the library branches on it.

Names:
    ``default``       the default (no-op) strategy: whatever single device TF picks.
    ``one_device``    `OneDeviceStrategy` on the first GPU if any, else the CPU (``device`` overrides).
    ``mirrored``      `MirroredStrategy` over all local GPUs (or ``devices``), e.g. 2 logical CPUs in tests.
    ``multi_worker``  `MultiWorkerMirroredStrategy`, cluster from the ``TF_CONFIG`` environment variable.
    ``tpu``           `TPUStrategy`; ``tpu`` is the TPU name or ``grpc://host:port`` address ("local" on a TPU VM).
    ``auto``          ``mirrored`` when more than one GPU is visible, else ``default``.

Example:
    >>> from ptft_keras.training.strategy import resolve
    >>> strategy = resolve("default")
    >>> strategy.num_replicas_in_sync
    1
"""
from __future__ import annotations

import json
import os

from ptft_keras.errors import ConfigError

STRATEGIES = ("default", "auto", "one_device", "mirrored", "multi_worker", "tpu")


def tpu_cluster_resolver(tpu: str | None):
    """The cluster resolver for a TPU address; building it does not contact the TPU."""
    import tensorflow as tf  # here: the strategy names load without TensorFlow
    if not tpu:
        raise ConfigError(
            "strategy 'tpu' needs a TPU address: pass --tpu NAME_OR_GRPC_ADDRESS (e.g. 'local' on a TPU VM, "
            "the TPU name on Colab/GCE, or grpc://10.0.0.2:8470)"
        )
    return tf.distribute.cluster_resolver.TPUClusterResolver(tpu="" if tpu == "colab" else tpu)


def _check_tf_config() -> dict:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ConfigError(
            "strategy 'multi_worker' reads the cluster from the TF_CONFIG environment variable, which is not set; "
            'set it on every worker, e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}'
        )
    try:
        cfg = json.loads(raw)
        workers = cfg["cluster"]["worker"]
        index = cfg["task"]["index"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"TF_CONFIG is not valid for multi_worker ({exc!r}): {raw}") from None
    if not 0 <= int(index) < len(workers):
        raise ConfigError(f"TF_CONFIG task index {index} is outside the {len(workers)} workers listed")
    return cfg


def resolve(name: str = "default", *, tpu: str | None = None, devices: list[str] | None = None):
    """Return the `tf.distribute.Strategy` called `name` (see the module docstring)."""
    import tensorflow as tf  # here: the strategy names load without TensorFlow
    name = (name or "default").replace("-", "_").lower()
    if name not in STRATEGIES:
        raise ConfigError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    if name == "auto":
        name = "mirrored" if len(tf.config.list_logical_devices("GPU")) > 1 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        device = (devices or [None])[0]
        if device is None:
            device = "/gpu:0" if tf.config.list_logical_devices("GPU") else "/cpu:0"
        return tf.distribute.OneDeviceStrategy(device)
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi_worker":
        _check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tpu_cluster_resolver(tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def needs_static_shapes(strategy) -> bool:
    """TPUs (and XLA in general) want fixed batch and sequence shapes: `drop_remainder`, fixed padding."""
    import tensorflow as tf  # here: the strategy names load without TensorFlow
    return isinstance(strategy, tf.distribute.TPUStrategy)


def is_chief(strategy=None) -> bool:
    """True on the worker that should write checkpoints/exports (always True outside multi-worker)."""
    import tensorflow as tf  # here: the strategy names load without TensorFlow
    strategy = strategy or tf.distribute.get_strategy()
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    return resolver.task_type in ("chief", None) or (resolver.task_type == "worker" and resolver.task_id == 0)
