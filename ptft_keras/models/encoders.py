"""One entry point for every encoder a job can name: `load_encoder(name_or_path)`.

* ``"bilstm"``: a fresh `BiLSTMEncoder` (random init; needs `vocabulary_size`, and a WordPiece
  vocabulary trained on the training texts: `is_classic` says so);
* a directory `BiLSTMEncoder.save_pretrained` wrote (its `config.json` says ``"model_type": "bilstm"``);
* anything else goes to `Backbone.from_pretrained` (HF directories, `.keras` files, Hub ids,
  keras-hub presets).

Any other Keras encoder works with the task models without going through here: see
docs/classic_encoders.md for the contract.

Example:
    >>> encoder = load_encoder("bilstm", vocabulary_size=100, embedding_dim=16, lstm_units=8)
    >>> type(encoder).__name__, encoder.hidden_dim, is_classic("bilstm"), is_classic("bert_tiny_en_uncased")
    ('BiLSTMEncoder', 16, True, False)
    >>> parse_encoder_options("lstm_units=64, pooling=mean,dropout=0.2")
    {'lstm_units': 64, 'pooling': 'mean', 'dropout': 0.2}
"""
from __future__ import annotations

import inspect
import os

from ptft_keras.errors import ConfigError
from ptft_keras.models.backbone import Backbone
from ptft_keras.models.bilstm import BiLSTMEncoder, is_bilstm_directory

# Names of the classic encoders a job can build from scratch, and their classes.
CLASSIC_ENCODERS = {"bilstm": BiLSTMEncoder}


def is_classic(name_or_path) -> bool:
    """Whether `name_or_path` names a fresh classic encoder (``"bilstm"``), whose vocabulary the job
    must first train on the training texts (`data.vocab.train_wordpiece_vocabulary`)."""
    return isinstance(name_or_path, str) and name_or_path in CLASSIC_ENCODERS and not os.path.exists(name_or_path)


#: the constructor arguments `parse_encoder_options` accepts (the sizes of a fresh encoder)
ENCODER_OPTIONS = ("embedding_dim", "lstm_units", "num_layers", "dropout", "pooling")


def parse_encoder_options(text: str | None, name: str = "bilstm") -> dict:
    """``"key=value,key=value"`` (the `--encoder-options` flag) as constructor arguments of a fresh
    `name` encoder, each converted to the type of that argument's default; None or "" give ``{}``.

    Unknown keys, a missing ``=`` and values of the wrong type raise `ConfigError` naming the key and
    listing the valid ones.
    """
    if not text or not str(text).strip():
        return {}
    if name not in CLASSIC_ENCODERS:
        raise ConfigError(f"encoder options apply to a fresh {' or '.join(map(repr, CLASSIC_ENCODERS))} encoder, "
                          f"not to {name}")
    defaults = {key: parameter.default for key, parameter
                in inspect.signature(CLASSIC_ENCODERS[name].__init__).parameters.items() if key in ENCODER_OPTIONS}
    options = {}
    for item in str(text).split(","):
        if not item.strip():
            continue
        key, equals, value = (part.strip() for part in item.partition("="))
        if not equals or not key:
            raise ConfigError(f"encoder_options: {item.strip()!r} is not key=value; e.g. "
                              "'embedding_dim=300,lstm_units=256,num_layers=2,dropout=0.3,pooling=max'")
        if key not in defaults:
            raise ConfigError(f"encoder_options: unknown option {key!r} of {name}; valid: {', '.join(defaults)}")
        kind = type(defaults[key])
        try:
            options[key] = kind(value)
        except ValueError:
            raise ConfigError(f"encoder_options: {key}={value!r} is not a{'n' if kind is int else ''} "
                              f"{kind.__name__}") from None
    return options


def load_encoder(name_or_path, *, vocabulary_size: int | None = None, dtype=None, allow_pickle: bool = False,
                 **sizes):
    """A fresh classic encoder, a saved `BiLSTMEncoder` directory, or a transformer backbone.

    Args:
        name_or_path: ``"bilstm"``, a `BiLSTMEncoder.save_pretrained` directory, or anything
            `Backbone.from_pretrained` takes.
        vocabulary_size: rows of a fresh encoder's embedding (the tokenizer's `vocab_size`);
            checked against a saved BiLSTM when given.
        dtype: a Keras dtype policy name.
        allow_pickle: passed to `Backbone.from_pretrained`.
        **sizes: a fresh encoder's constructor arguments (`embedding_dim`, `lstm_units`,
            `num_layers`, `dropout`, `pooling`); not allowed for saved models.
    """
    if is_classic(name_or_path):
        if vocabulary_size is None:
            raise ConfigError(f"a fresh {name_or_path!r} encoder needs vocabulary_size (the tokenizer's vocab_size)")
        return CLASSIC_ENCODERS[name_or_path](vocabulary_size=vocabulary_size, dtype=dtype, **sizes)
    if sizes:
        raise ConfigError(
            f"{', '.join(sorted(sizes))} only apply to a fresh encoder (e.g. 'bilstm'); "
            f"{name_or_path} is loaded with the sizes it was saved with"
        )
    if is_bilstm_directory(name_or_path):
        encoder = BiLSTMEncoder.from_pretrained(name_or_path, dtype=dtype)
        if vocabulary_size is not None and vocabulary_size != encoder.vocabulary_size:
            raise ConfigError(
                f"{name_or_path} has {encoder.vocabulary_size} embedding rows, the tokenizer {vocabulary_size} "
                "entries; use the tokenizer saved with the encoder"
            )
        return encoder
    return Backbone.from_pretrained(name_or_path, dtype=dtype, allow_pickle=allow_pickle)
