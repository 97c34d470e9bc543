"""Pretraining objectives for classic encoders (`BiLSTMEncoder`), as functions the pretrain job calls.

* `build_bilstm(tokenizer, **sizes)`: a fresh encoder sized to the tokenizer's vocabulary.
* `pretrain_autoencoder(encoder, dataset, steps, heldout=...)`: Dai & Le's sequence autoencoder
  (`tasks.SequenceAutoencoder`, optionally denoising); reports the held-out reconstruction loss.
* `pretrain_word2vec(encoder, tokenizer, texts, heldout_texts=...)`: gensim word2vec on the
  tokenizer's WordPiece tokens, written into the encoder's embedding; reports the held-out
  negative-sampling loss (`models.word_vectors.heldout_word2vec_loss`).
* `autoencoder_model(encoder)` / `masked_lm_model(encoder)`: the compiled task models, for a job that
  fits them itself (with backups, `jobs.pretrain_classic`); `tasks.MaskedLM(encoder)` takes a
  `BiLSTMEncoder` (its output is tied to the encoder's `ReversibleEmbedding`) and trains on
  `make_pretraining_dataset` batches (`encoder_features` drops the `segment_ids` it does not take).

Each trains the encoder in place and returns a dict of figures for the report; what to keep is
``encoder.save_pretrained(output / "backbone", tokenizer=tokenizer)``. The functions read no files
(the job reads corpora and vector files) and create variables, so call them under the strategy's
scope.

Example:
    >>> from ptft_keras.data.tokenizer import Tokenizer
    >>> tokenizer = Tokenizer.from_vocabulary(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat"])
    >>> encoder = build_bilstm(tokenizer, embedding_dim=8, lstm_units=4)
    >>> result = pretrain_word2vec(encoder, tokenizer, ["the cat sat"] * 20, heldout_texts=["the cat sat"],
    ...                            epochs=1)
    >>> result["objective"], result["found"], result["loss"] > 0
    ('word2vec', 3, True)
"""
from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from ptft_keras.errors import ConfigError
from ptft_keras.models.bilstm import BiLSTMEncoder
from ptft_keras.models.word_vectors import heldout_word2vec_loss, set_embeddings, train_word2vec, wordpiece_sentences
from ptft_keras.tasks.masked_lm import MaskedLM
from ptft_keras.tasks.sequence_autoencoder import SequenceAutoencoder

OBJECTIVES = ("autoencoder", "word2vec", "mlm")


def build_bilstm(tokenizer, **sizes) -> BiLSTMEncoder:
    """A fresh `BiLSTMEncoder` with one embedding row per token of `tokenizer`.

    `sizes`: `embedding_dim`, `lstm_units`, `num_layers`, `dropout`, `pooling`, `dtype`.
    """
    return BiLSTMEncoder(vocabulary_size=tokenizer.vocab_size, **sizes)


def default_optimizer(learning_rate: float = 1e-3):
    """Adam at `learning_rate` with global gradient-norm clipping at 1: what recurrent models train well with."""
    return keras.optimizers.Adam(learning_rate, global_clipnorm=1.0)


def autoencoder_model(encoder, *, optimizer=None, learning_rate: float = 1e-3, token_dropout: float = 0.0,
                      noise_token_id: int | None = None, decoder_units: int | None = None,
                      seed: int | None = None) -> SequenceAutoencoder:
    """A compiled `SequenceAutoencoder` around `encoder` (default optimizer: `default_optimizer(learning_rate)`).

    Example:
        >>> encoder = BiLSTMEncoder(vocabulary_size=20, embedding_dim=8, lstm_units=4)
        >>> autoencoder_model(encoder).encoder is encoder
        True
    """
    model = SequenceAutoencoder(encoder, decoder_units=decoder_units, token_dropout=token_dropout,
                                noise_token_id=noise_token_id, seed=seed)
    model.compile(optimizer=optimizer or default_optimizer(learning_rate))
    return model


def masked_lm_model(encoder, *, optimizer=None, learning_rate: float = 1e-3) -> MaskedLM:
    """A compiled `MaskedLM` on `encoder` (its output tied to the encoder's embedding), trained on
    `make_pretraining_dataset` batches without `segment_ids` (`encoder_features`).

    Example:
        >>> encoder = BiLSTMEncoder(vocabulary_size=20, embedding_dim=8, lstm_units=4)
        >>> sorted(masked_lm_model(encoder).input)
        ['mask_positions', 'padding_mask', 'token_ids']
    """
    model = MaskedLM(encoder)
    model.compile(optimizer=optimizer or default_optimizer(learning_rate))
    return model


def encoder_features(dataset: tf.data.Dataset, model) -> tf.data.Dataset:
    """`dataset` with the features `model` does not take (a BERT tokenizer's `segment_ids`) dropped, so
    Keras does not warn that the input structure does not match.

    Example:
        >>> model = masked_lm_model(BiLSTMEncoder(vocabulary_size=20, embedding_dim=8, lstm_units=4))
        >>> features = {"token_ids": [[2, 3]], "segment_ids": [[0, 0]], "padding_mask": [[1, 1]],
        ...             "mask_positions": [[1]]}
        >>> sorted(next(iter(encoder_features(tf.data.Dataset.from_tensors((features,)), model)))[0])
        ['mask_positions', 'padding_mask', 'token_ids']
    """
    wanted = set(model.input) if isinstance(model.input, dict) else None

    def keep(features, *rest):
        if wanted is not None and isinstance(features, dict):
            features = {name: value for name, value in features.items() if name in wanted}
        return (features, *rest)

    return dataset.map(keep)


def pretrain_autoencoder(encoder, dataset: tf.data.Dataset, steps: int, *, heldout: tf.data.Dataset | None = None,
                         optimizer=None, learning_rate: float = 1e-3, token_dropout: float = 0.0,
                         noise_token_id: int | None = None, decoder_units: int | None = None,
                         callbacks: Sequence = (), verbose="auto", seed: int | None = None) -> dict:
    """Train `encoder` as the reading half of a sequence autoencoder for `steps` steps.

    Args:
        encoder: a `BiLSTMEncoder`; trained in place.
        dataset: batches of features (``{"token_ids", "padding_mask", ...}``) or ``(features, ...)``
            tuples, e.g. ``make_finetune_dataset(rows, tokenizer, batch_size=32, sequence_length=128,
            shuffle=True, repeat=True)``; repeated here when it runs out.
        steps: optimizer steps.
        heldout: a finite dataset of the same kind, scored before and after training.
        optimizer: default Adam(`learning_rate`) with global gradient-norm clipping at 1.
        token_dropout, noise_token_id: the denoising variant (see `SequenceAutoencoder`).
        callbacks: Keras callbacks for `fit` (TensorBoard, backups).

    Returns ``{"objective": "autoencoder", "steps", "train_loss", "loss", "initial_loss",
    "reconstruction_accuracy"}``: `loss` and `initial_loss` are the held-out mean cross-entropy per
    real token after and before training (None without `heldout`), `train_loss` the last step's.
    """
    if steps < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    model = autoencoder_model(encoder, optimizer=optimizer, learning_rate=learning_rate, token_dropout=token_dropout,
                              noise_token_id=noise_token_id, decoder_units=decoder_units, seed=seed)
    initial = model.evaluate(heldout, verbose=0, return_dict=True) if heldout is not None else None
    history = model.fit(dataset.repeat(), steps_per_epoch=int(steps), epochs=1, callbacks=list(callbacks),
                        verbose=verbose)
    final = model.evaluate(heldout, verbose=0, return_dict=True) if heldout is not None else None
    return {
        "objective": "autoencoder",
        "steps": int(steps),
        "train_loss": float(history.history["loss"][-1]),
        "loss": None if final is None else float(final["loss"]),
        "initial_loss": None if initial is None else float(initial["loss"]),
        "reconstruction_accuracy": None if final is None else float(final["reconstruction_accuracy"]),
    }


def pretrain_word2vec(encoder, tokenizer, texts: Sequence[str], *, heldout_texts: Sequence[str] | None = None,
                      skip_gram: bool = True, window: int = 5, negative: int = 5, min_count: int = 1,
                      epochs: int = 5, seed: int = 0) -> dict:
    """Train word2vec on `texts` split into `tokenizer`'s WordPiece tokens and write the vectors
    into `encoder.token_embedding` (its `embedding_dim` is the vector size); tokens word2vec did
    not learn keep their initial rows. Deterministic under `seed` (one gensim worker).

    Returns ``{"objective": "word2vec", "found", "vocabulary_size", "loss", "pairs"}``: `found`
    vocabulary entries got a vector; `loss` is the held-out negative-sampling loss per (center,
    context) pair on `heldout_texts` (`heldout_word2vec_loss`; None without held-out texts;
    ``(1 + negative) * log 2`` for an untrained model), over `pairs` pairs.
    """
    model = train_word2vec(wordpiece_sentences(tokenizer, texts), vector_size=encoder.embedding_dim,
                           skip_gram=skip_gram, window=window, negative=negative, min_count=min_count,
                           epochs=epochs, seed=seed)
    vectors = {word: model.wv.vectors[i] for i, word in enumerate(model.wv.index_to_key)}
    found = set_embeddings(encoder, tokenizer.vocabulary, vectors)
    heldout = {"loss": None, "pairs": 0}
    if heldout_texts:
        heldout = heldout_word2vec_loss(model, wordpiece_sentences(tokenizer, heldout_texts), seed=seed)
    return {"objective": "word2vec", "found": found, "vocabulary_size": tokenizer.vocab_size, **heldout}
