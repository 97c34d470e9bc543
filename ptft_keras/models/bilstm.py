"""`BiLSTMEncoder`: a classic recurrent encoder that plugs in wherever a BERT backbone does.

Token embedding -> `num_layers` x Bidirectional(LSTM(`lstm_units`)) with dropout in between ->
``{"sequence_output": [B, T, 2 * lstm_units], "pooled_output": [B, 2 * lstm_units]}``. Padding is
masked all the way: the LSTMs skip padded steps (the backward LSTM starts at the last real token),
padded positions of `sequence_output` are zero and the pooling (``"max"``, ``"mean"`` or ``"last"``:
the forward state at the last real token next to the backward state at the first) sees real tokens
only, so a text gives the same outputs however much it is padded (right padding, as our tokenizer
pads: cuDNN takes no other; a row of padding only gives zeros).

It is a functional Keras model taking our tokenizer's ``{"token_ids", "padding_mask"}`` (see
docs/classic_encoders.md for the contract), with the attributes the tasks and jobs read
(`hidden_dim`, `num_layers`, `max_sequence_length`, `token_embedding`) and `encoder_blocks`, the
LSTM layers bottom-up, which `training.freezing.layer_groups` unfreezes one by one. The LSTMs keep
cuDNN's defaults (tanh/sigmoid, no recurrent dropout), so they run on cuDNN on a GPU.
The token embedding is keras-hub's `ReversibleEmbedding`, so `MaskedLM` can tie its output to it.

`save_pretrained(directory, tokenizer=None)` writes `config.json` (``"model_type": "bilstm"``) and
`model.safetensors` (+ the tokenizer files), which `BiLSTMEncoder.from_pretrained(directory)` reads.

Example:
    >>> import numpy as np
    >>> encoder = BiLSTMEncoder(vocabulary_size=50, embedding_dim=8, lstm_units=4, num_layers=2)
    >>> outputs = encoder({"token_ids": np.array([[2, 7, 9, 3, 0]]), "padding_mask": np.array([[1, 1, 1, 1, 0]])})
    >>> tuple(outputs["sequence_output"].shape), tuple(outputs["pooled_output"].shape), encoder.hidden_dim
    ((1, 5, 8), (1, 8), 8)
    >>> [layer.name for layer in encoder.encoder_blocks]
    ['bilstm_0', 'bilstm_1']
"""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import ops
from keras_hub.layers import ReversibleEmbedding

from ptft_keras.errors import CheckpointError, ConfigError
from ptft_keras.models.hf_checkpoint import (
    CONFIG_FILE,
    find_weights_file,
    read_hf_config,
    read_weights_file,
    write_hf_checkpoint,
)

MODEL_TYPE = "bilstm"
POOLINGS = ("max", "mean", "last")
# No position embeddings: the length limit is only a sanity bound (the tokenizer's own limit applies first).
UNBOUNDED_SEQUENCE_LENGTH = 1_000_000


@keras.saving.register_keras_serializable(package="ptft_keras")
class BiLSTMEncoder(keras.Model):
    """Embedding -> stacked bidirectional LSTMs -> sequence and pooled outputs (see the module docstring).

    Args:
        vocabulary_size: rows of the token embedding (the tokenizer's `vocab_size`).
        embedding_dim: width of the token embedding (300 for common pretrained word vectors).
        lstm_units: units of each LSTM direction; outputs are ``2 * lstm_units`` wide (`hidden_dim`).
        num_layers: stacked bidirectional LSTM layers.
        dropout: dropout on the embeddings and on each LSTM layer's output.
        pooling: how `pooled_output` is made: ``"max"``, ``"mean"`` or ``"last"``.
        max_sequence_length: reported to the jobs; the encoder itself takes any length.
        dtype: a Keras dtype policy name (``"mixed_bfloat16"`` works).

    Example:
        >>> encoder = BiLSTMEncoder(vocabulary_size=100, embedding_dim=16, lstm_units=8, pooling="mean")
        >>> BiLSTMEncoder.from_config(encoder.get_config()).pooling
        'mean'
    """

    model_type = MODEL_TYPE

    def __init__(self, vocabulary_size: int, embedding_dim: int = 128, lstm_units: int = 128, num_layers: int = 1,
                 dropout: float = 0.1, pooling: str = "max", max_sequence_length: int = UNBOUNDED_SEQUENCE_LENGTH,
                 dtype=None, **kwargs):
        if pooling not in POOLINGS:
            raise ConfigError(f"unknown BiLSTM pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
        for name, value in (("vocabulary_size", vocabulary_size), ("embedding_dim", embedding_dim),
                            ("lstm_units", lstm_units), ("num_layers", num_layers)):
            if int(value) < 1:
                raise ConfigError(f"BiLSTMEncoder needs {name} >= 1, got {value}")
        if not 0 <= dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}")

        # === Layers ===
        self.token_embedding = ReversibleEmbedding(
            int(vocabulary_size), int(embedding_dim), tie_weights=True, dtype=dtype, name="token_embedding"
        )
        self.embedding_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="embedding_dropout")
        self.lstm_layers = [
            keras.layers.Bidirectional(
                keras.layers.LSTM(int(lstm_units), return_sequences=True, dtype=dtype, name=f"lstm_{i}"),
                dtype=dtype, name=f"bilstm_{i}",
            )
            for i in range(int(num_layers))
        ]
        self.lstm_dropouts = [
            keras.layers.Dropout(dropout, dtype=dtype, name=f"bilstm_{i}_dropout") for i in range(int(num_layers))
        ]

        # === Functional model ===
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        mask = rnn_mask(padding_mask)
        x = self.embedding_dropout(self.token_embedding(token_ids))
        for lstm, drop in zip(self.lstm_layers, self.lstm_dropouts):
            x = drop(lstm(x, mask=mask))
        sequence_output = x * ops.expand_dims(ops.cast(padding_mask, x.dtype), -1)
        pooled_output = pool_sequence(pooling, sequence_output, padding_mask)
        super().__init__(
            inputs={"token_ids": token_ids, "padding_mask": padding_mask},
            outputs={"sequence_output": sequence_output, "pooled_output": pooled_output},
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        self.vocabulary_size = int(vocabulary_size)
        self.embedding_dim = int(embedding_dim)
        self.lstm_units = int(lstm_units)
        self.num_layers = int(num_layers)
        self.dropout = float(dropout)
        self.pooling = pooling
        self.max_sequence_length = int(max_sequence_length)

    @property
    def hidden_dim(self) -> int:
        """Width of `sequence_output` and `pooled_output`: both LSTM directions."""
        return 2 * self.lstm_units

    @property
    def encoder_blocks(self) -> list:
        """The bidirectional LSTM layers, bottom first: one freezing group each (`layer_groups`)."""
        return list(self.lstm_layers)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            **self.architecture(),
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def architecture(self) -> dict:
        """The size arguments (what `config.json` of `save_pretrained` holds besides `model_type`)."""
        return {
            "vocabulary_size": self.vocabulary_size,
            "embedding_dim": self.embedding_dim,
            "lstm_units": self.lstm_units,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
            "pooling": self.pooling,
            "max_sequence_length": self.max_sequence_length,
        }

    # --- pretrained directories -----------------------------------------------------------------
    def save_pretrained(self, directory, tokenizer=None):
        """Write `config.json` + `model.safetensors` (+ the tokenizer's files if given), atomically.

        Tensors are named by variable path (``bilstm_0/forward_lstm_0/lstm_cell/kernel``).
        Returns the directory, which `BiLSTMEncoder.from_pretrained` (and `load_encoder`) read.

        Example:
            >>> import tempfile
            >>> encoder = BiLSTMEncoder(vocabulary_size=30, embedding_dim=4, lstm_units=2)
            >>> directory = encoder.save_pretrained(tempfile.mkdtemp() + "/bilstm")
            >>> sorted(p.name for p in directory.iterdir())
            ['config.json', 'model.safetensors']
            >>> restored = BiLSTMEncoder.from_pretrained(directory)
            >>> all(np.array_equal(a, b) for a, b in zip(encoder.get_weights(), restored.get_weights()))
            True
        """
        config = {"model_type": MODEL_TYPE, "architectures": [type(self).__name__], **self.architecture()}
        tensors = {path: np.asarray(ops.convert_to_numpy(value), "float32")
                   for path, value in named_weights(self).items()}
        write_extra = None if tokenizer is None else tokenizer.save_pretrained
        return write_hf_checkpoint(directory, config, tensors, write_extra=write_extra)

    @classmethod
    def from_pretrained(cls, directory, *, dtype=None, load_weights: bool = True) -> "BiLSTMEncoder":
        """The encoder `save_pretrained` wrote to `directory`; `CheckpointError` naming what is wrong."""
        config = read_hf_config(directory)
        config_path = f"{directory}/{CONFIG_FILE}"
        if config.get("model_type") != MODEL_TYPE:
            raise CheckpointError(
                f"model_type is {config.get('model_type')!r}, not {MODEL_TYPE!r}: this is not a BiLSTMEncoder "
                "directory; load transformer checkpoints with Backbone.from_pretrained (or load_encoder)",
                path=config_path, field="model_type",
            )
        arguments = {k: v for k, v in config.items() if k not in ("model_type", "architectures")}
        try:
            encoder = cls(**arguments, dtype=dtype)
        except TypeError as error:
            raise CheckpointError(f"unexpected BiLSTMEncoder settings ({error})", path=config_path) from None
        if load_weights:
            weights_path = find_weights_file(directory)
            assign_named_weights(encoder, read_weights_file(weights_path), path=weights_path)
        return encoder


def rnn_mask(padding_mask):
    """`padding_mask` as the bool mask a Keras RNN takes, with the first step always on.

    cuDNN takes right-padded masks only and fails on a row without any real token (a padded
    batch slot); keeping step 0 avoids that, and its output is zeroed by the padding mask anyway.

    Example:
        >>> rnn_mask(np.array([[1, 1, 0], [0, 0, 0]])).numpy().tolist()
        [[True, True, False], [True, False, False]]
    """
    first = ops.equal(ops.cumsum(ops.ones_like(padding_mask, dtype="int32"), axis=1), 1)
    return ops.logical_or(ops.cast(padding_mask, "bool"), first)


def pool_sequence(pooling: str, sequence_output, padding_mask):
    """One vector per sequence from `sequence_output` [B, T, 2H] over the real tokens of `padding_mask`.

    ``"max"`` and ``"mean"`` over real tokens; ``"last"``: the forward half at the last real token
    next to the backward half at the first (each direction's state after reading the whole text).

    Example:
        >>> x = np.array([[[1., 10.], [3., 30.], [0., 0.]]], "float32")   # H = 1, one padded step
        >>> mask = np.array([[1, 1, 0]])
        >>> [pool_sequence(p, x, mask).numpy().tolist() for p in POOLINGS]
        [[[3.0, 30.0]], [[2.0, 20.0]], [[3.0, 10.0]]]
    """
    mask = ops.expand_dims(ops.cast(padding_mask, sequence_output.dtype), -1)
    if pooling == "max":
        lowest = ops.cast(ops.full_like(sequence_output, -1e4), sequence_output.dtype)
        pooled = ops.max(ops.where(mask > 0, sequence_output, lowest), axis=1)
        return ops.where(ops.sum(mask, axis=1) > 0, pooled, ops.zeros_like(pooled))
    if pooling == "mean":
        return ops.sum(sequence_output * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)
    if pooling == "last":
        half = ops.shape(sequence_output)[-1] // 2
        lengths = ops.sum(ops.cast(padding_mask, "int32"), axis=1)
        last = ops.maximum(lengths - 1, 0)[:, None, None]
        forward = ops.take_along_axis(sequence_output[:, :, :half], last, axis=1)[:, 0, :]
        return ops.concatenate([forward, sequence_output[:, 0, half:]], axis=-1)
    raise ConfigError(f"unknown BiLSTM pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")


def named_weights(model) -> dict:
    """``{variable.path: variable}`` of `model`'s weights; `ConfigError` if two share a path."""
    named = {}
    for variable in model.weights:
        if named.setdefault(variable.path, variable) is not variable:
            raise ConfigError(f"two weights share the path {variable.path!r}; give the layers distinct names")
    return named


def assign_named_weights(model, tensors: dict, *, path=None) -> None:
    """Copy `tensors` (by variable path, as `save_pretrained` names them) into `model`, all or nothing."""
    variables = named_weights(model)
    missing = sorted(set(variables) - set(tensors))
    unexpected = sorted(set(tensors) - set(variables))
    if missing or unexpected:
        raise CheckpointError(
            f"the weights do not fit this {type(model).__name__}: missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}; the file was written by another architecture or version", path=path,
        )
    for name, variable in variables.items():
        value = np.asarray(tensors[name])
        if tuple(value.shape) != tuple(variable.shape):
            raise CheckpointError(
                f"{name} has shape {value.shape}, the model expects {tuple(variable.shape)}: "
                "the sizes in config.json do not match the weights", path=path, field=name,
            )
    for name, variable in variables.items():
        variable.assign(tensors[name])


def is_bilstm_directory(path) -> bool:
    """Whether `path` is a directory `BiLSTMEncoder.save_pretrained` wrote (its config.json says so)."""
    config_path = Path(path) / CONFIG_FILE
    if not config_path.is_file():
        return False
    try:
        return read_hf_config(path).get("model_type") == MODEL_TYPE
    except CheckpointError:
        return False
