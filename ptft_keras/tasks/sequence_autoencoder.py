"""Sequence-autoencoder pretraining (Dai & Le 2015, "Semi-supervised Sequence Learning").

The encoder (a `BiLSTMEncoder`) reads the text; an LSTM decoder, whose initial state comes from the
encoder's `pooled_output`, reconstructs the text token by token with teacher forcing: it reads
``[CLS] w1 .. wn`` and predicts ``w1 .. wn [SEP]``. The loss is sparse cross-entropy over the real
tokens only (padding has weight 0). With ``token_dropout > 0`` (the denoising variant) that share of
the encoder's real tokens is replaced by `noise_token_id` while training; the decoder still
reconstructs the clean text. The decoder reads the encoder's token embedding and, by default,
scores tokens against it (tied output embedding), so reconstruction trains the embedding too.

Only `.encoder` is kept after pretraining (`encoder.save_pretrained(...)`); fine-tune it with any
task model. Training needs no labels: ``fit`` takes batches of features (``{"token_ids",
"padding_mask", ...}``, e.g. `make_finetune_dataset` without a label column); a
``(features, labels)`` batch's labels are ignored.

Example:
    >>> import numpy as np, keras
    >>> from ptft_keras.models.bilstm import BiLSTMEncoder
    >>> model = SequenceAutoencoder(BiLSTMEncoder(vocabulary_size=20, embedding_dim=8, lstm_units=4))
    >>> features = {"token_ids": np.array([[2, 7, 9, 3, 0]]), "padding_mask": np.array([[1, 1, 1, 1, 0]])}
    >>> tuple(model(features).shape)           # logits for w1 .. wn [SEP] (and one padded step)
    (1, 4, 20)
    >>> model.compile(optimizer=keras.optimizers.Adam(1e-2))
    >>> history = model.fit(features, epochs=2, verbose=0)
    >>> sorted(history.history)
    ['loss', 'reconstruction_accuracy']
"""
from __future__ import annotations

import keras
from keras import ops

from ptft_keras.errors import ConfigError
from ptft_keras.models.bilstm import rnn_mask


@keras.saving.register_keras_serializable(package="ptft_keras")
class SequenceAutoencoder(keras.Model):
    """An encoder plus an LSTM decoder that reconstructs the input text (see the module docstring).

    Args:
        encoder: a `BiLSTMEncoder` (anything with `token_embedding`, `hidden_dim` and a
            `pooled_output`).
        decoder_units: units of the decoder LSTM; default the encoder's `hidden_dim`.
        token_dropout: share of real input tokens the encoder sees as `noise_token_id` in training.
        noise_token_id: the id replacing dropped tokens (the tokenizer's ``mask_token_id`` or
            ``unk_token_id``); required when `token_dropout > 0`.
        tie_embeddings: score tokens against the encoder's embedding (else a separate output layer).
        dropout: dropout on the decoder's inputs and outputs.
    """

    def __init__(self, encoder, decoder_units: int | None = None, token_dropout: float = 0.0,
                 noise_token_id: int | None = None, tie_embeddings: bool = True, dropout: float = 0.1, seed=None,
                 **kwargs):
        super().__init__(**kwargs)
        if not 0 <= token_dropout < 1:
            raise ConfigError(f"token_dropout must be in [0, 1), got {token_dropout}")
        if token_dropout > 0 and noise_token_id is None:
            raise ConfigError("token_dropout needs noise_token_id (e.g. tokenizer.mask_token_id)")
        self.encoder = encoder
        self.decoder_units = int(decoder_units or encoder.hidden_dim)
        self.token_dropout = float(token_dropout)
        self.noise_token_id = None if noise_token_id is None else int(noise_token_id)
        self.tie_embeddings = bool(tie_embeddings)
        self.dropout = float(dropout)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        dtype = encoder.dtype_policy
        embedding = encoder.token_embedding

        # === Layers (built here, so a fresh instance loads weights) ===
        self.initial_state = keras.layers.Dense(2 * self.decoder_units, dtype=dtype, name="decoder_initial_state")
        self.initial_state.build((None, encoder.hidden_dim))
        self.decoder = keras.layers.LSTM(self.decoder_units, return_sequences=True, dtype=dtype, name="decoder_lstm")
        self.decoder.build((None, None, embedding.output_dim))
        self.decoder_dropout = keras.layers.Dropout(self.dropout, dtype=dtype, name="decoder_dropout")
        if self.tie_embeddings:
            self.output_layer = keras.layers.Dense(embedding.output_dim, dtype=dtype, name="decoder_transform")
            self.output_layer.build((None, None, self.decoder_units))
        else:
            self.output_layer = keras.layers.Dense(embedding.input_dim, dtype=dtype, name="decoder_logits")
            self.output_layer.build((None, None, self.decoder_units))
        self.reconstruction_accuracy = keras.metrics.SparseCategoricalAccuracy(name="reconstruction_accuracy")
        self.built = True

    def build(self, input_shape=None):
        self.built = True  # every layer is built in __init__

    def call(self, features, training=False):
        """Logits ``[B, T - 1, vocabulary]`` for tokens ``1 .. T - 1`` given tokens ``0 .. T - 2``."""
        if isinstance(features, (tuple, list)):
            features = features[0]
        token_ids = ops.cast(features["token_ids"], "int32")
        padding_mask = ops.cast(features["padding_mask"], "int32")
        noisy_ids = self.drop_tokens(token_ids, padding_mask) if training and self.token_dropout else token_ids
        pooled = self.encoder({"token_ids": noisy_ids, "padding_mask": padding_mask}, training=training)["pooled_output"]
        h0, c0 = ops.split(self.initial_state(pooled), 2, axis=-1)

        embedding = self.encoder.token_embedding
        inputs = self.decoder_dropout(embedding(token_ids[:, :-1]), training=training)
        decoded = self.decoder(inputs, initial_state=[ops.tanh(h0), c0], mask=rnn_mask(padding_mask[:, :-1]),
                               training=training)
        decoded = self.decoder_dropout(decoded, training=training)
        if not self.tie_embeddings:
            return self.output_layer(decoded)
        transformed = self.output_layer(decoded)
        return ops.matmul(transformed, ops.transpose(ops.cast(embedding.embeddings, transformed.dtype)))

    def drop_tokens(self, token_ids, padding_mask):
        """`token_ids` with a `token_dropout` share of the real tokens (not [CLS]) set to `noise_token_id`."""
        draw = keras.random.uniform(ops.shape(token_ids), seed=self.seed_generator)
        positions = ops.arange(ops.shape(token_ids)[1])[None, :]
        drop = ops.logical_and(draw < self.token_dropout, ops.logical_and(padding_mask > 0, positions > 0))
        return ops.where(drop, ops.full_like(token_ids, self.noise_token_id), token_ids)

    # --- loss: masked cross-entropy over the real tokens ---------------------------------------
    @staticmethod
    def targets(x):
        """``(target ids, weights)`` of a batch: tokens 1 .. T - 1, weighted by their padding mask."""
        features = x[0] if isinstance(x, (tuple, list)) else x
        return ops.cast(features["token_ids"][:, 1:], "int32"), ops.cast(features["padding_mask"][:, 1:], "float32")

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        targets, weights = self.targets(x)
        losses = keras.losses.sparse_categorical_crossentropy(targets, ops.cast(y_pred, "float32"), from_logits=True)
        return ops.sum(losses * weights) / ops.maximum(ops.sum(weights), 1.0)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        targets, weights = self.targets(x)
        self.reconstruction_accuracy.update_state(targets, ops.cast(y_pred, "float32"), sample_weight=weights)
        return self.get_metrics_result()

    def compile(self, optimizer="adam", **kwargs):
        """`keras.Model.compile`; the loss is built in (pass only an optimizer and compile options)."""
        if kwargs.get("loss") is not None or kwargs.get("metrics"):
            raise ConfigError("SequenceAutoencoder computes its own loss and metrics; pass only an optimizer")
        super().compile(optimizer=optimizer, **kwargs)

    def compile_from_config(self, config):
        # Keras skips compile on load when `compile` is overridden; ours takes the same arguments.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.optimizer is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    # --- serialization ---------------------------------------------------------------------------
    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder_units": self.decoder_units,
            "token_dropout": self.token_dropout,
            "noise_token_id": self.noise_token_id,
            "tie_embeddings": self.tie_embeddings,
            "dropout": self.dropout,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)
