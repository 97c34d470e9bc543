"""ptft_keras: pretrain, then fine-tune BERT/DistilBERT encoders with TensorFlow and Keras 3."""
import os as _os

_os.environ.setdefault("KERAS_BACKEND", "tensorflow")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

from ptft_keras.errors import CheckpointError, ConfigError, DataError, PtftError  # noqa: E402

__all__ = ["CheckpointError", "ConfigError", "DataError", "PtftError", "__version__"]
