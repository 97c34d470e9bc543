"""ptft_keras: pretrain, then fine-tune BERT/DistilBERT encoders with TensorFlow and Keras 3.

The public API is re-exported here and imported lazily (so `ptft --help` does not load TensorFlow).

Example:
    >>> import ptft_keras as ptft
    >>> tokenizer = ptft.Tokenizer.from_pretrained(ptft.default_checkpoint_path())
    >>> tokenizer(["héllo world"], sequence_length=6)["token_ids"].numpy().tolist()
    [[101, 7592, 2088, 102, 0, 0]]
"""
import importlib as _importlib
import os as _os

_os.environ.setdefault("KERAS_BACKEND", "tensorflow")
if "TF_CPP_MIN_LOG_LEVEL" in _os.environ:  # the user's own choice: the CLI then leaves TensorFlow's logging alone
    _os.environ.setdefault("PTFT_USER_TF_LOG_LEVEL", _os.environ["TF_CPP_MIN_LOG_LEVEL"])
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from ptft_keras.version import __version__  # noqa: E402

from ptft_keras.errors import CheckpointError, ConfigError, DataError, PtftError  # noqa: E402

# public name -> module that defines it (data -> models -> training -> tasks -> export -> jobs)
_EXPORTS = {
    "Tokenizer": "ptft_keras.data.tokenizer",
    "train_wordpiece_vocabulary": "ptft_keras.data.vocab",
    "LabelVocabulary": "ptft_keras.data.labels",
    "make_finetune_dataset": "ptft_keras.data.pipeline",
    "make_pretraining_dataset": "ptft_keras.data.pipeline",
    "Backbone": "ptft_keras.models.backbone",
    "BertBackbone": "ptft_keras.models.backbone",
    "DistilBertBackbone": "ptft_keras.models.backbone",
    "default_checkpoint_path": "ptft_keras.models.default_checkpoint",
    "MaskedLM": "ptft_keras.tasks.masked_lm",
    "SequenceClassifier": "ptft_keras.tasks",
    "TokenClassifier": "ptft_keras.tasks",
    "QuestionAnswerer": "ptft_keras.tasks",
    "QAFeaturizer": "ptft_keras.tasks",
    "resolve_strategy": ("ptft_keras.training.strategy", "resolve"),
    "make_optimizer": "ptft_keras.training.optimizer",
    "FreezeSchedule": "ptft_keras.training.freezing",
    "FreezeThenUnfreeze": "ptft_keras.training.freezing",
    "PretrainConfig": "ptft_keras.jobs.pretrain",
    "pretrain": "ptft_keras.jobs.pretrain",
    "FinetuneConfig": "ptft_keras.jobs.finetune",
    "finetune": "ptft_keras.jobs.finetune",
    "evaluate": "ptft_keras.jobs.evaluate",
    "predict": "ptft_keras.jobs.predict",
    "load_model_dir": "ptft_keras.jobs.model_dir",
    "export_model": "ptft_keras.export.serving",
    "export_tflite": "ptft_keras.export.tflite",
    "TFLiteModel": "ptft_keras.export.tflite",
}

__all__ = ["CheckpointError", "ConfigError", "DataError", "PtftError", "__version__", *_EXPORTS]


def __getattr__(name):
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'ptft_keras' has no attribute {name!r}")
    module_name, attr = target if isinstance(target, tuple) else (target, name)
    value = getattr(_importlib.import_module(module_name), attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
