"""Truncate and pack word-piece ids into BERT inputs: [CLS] a [SEP] (b [SEP]), in core TF ops.

Truncation follows transformers (the tokenizers crate) exactly: for pairs, "longest_first" gives
the shorter side min(its length, budget // 2) and the longer side the rest; on a tie the second
side gets the odd token.
"""
from __future__ import annotations

import tensorflow as tf

from ptft_keras.errors import ConfigError

TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second")


def truncated_lengths(first_lengths, second_lengths, budget, truncation="longest_first"):
    """How many ids of each side survive when the pair may keep `budget` ids in all.

    Example:
        >>> first, second = truncated_lengths(tf.constant([9, 1]), tf.constant([4, 9]), 5)
        >>> first.numpy().tolist(), second.numpy().tolist()
        ([3, 1], [2, 4])
    """
    if truncation not in TRUNCATION_STRATEGIES:
        raise ConfigError(f"truncation={truncation!r} is not one of {TRUNCATION_STRATEGIES}")
    first_lengths = tf.cast(first_lengths, tf.int32)
    second_lengths = tf.cast(second_lengths, tf.int32)
    budget = tf.cast(budget, tf.int32)
    if truncation == "only_first":
        second = tf.minimum(second_lengths, budget)
        return tf.minimum(first_lengths, budget - second), second
    if truncation == "only_second":
        # transformers refuses when the first side alone is too long; we cut it as well.
        first = tf.minimum(first_lengths, budget)
        return first, tf.minimum(second_lengths, budget - first)
    shorter = tf.minimum(first_lengths, second_lengths)
    half = budget // 2
    short_kept = tf.minimum(shorter, half)
    long_kept = tf.where(shorter > half, budget - half, budget - short_kept)
    first_is_longer = first_lengths > second_lengths
    first = tf.where(first_is_longer, long_kept, short_kept)
    second = tf.where(first_is_longer, short_kept, long_kept)
    fits = first_lengths + second_lengths <= budget
    return tf.where(fits, first_lengths, first), tf.where(fits, second_lengths, second)


def _heads(ragged: tf.RaggedTensor, lengths) -> tf.RaggedTensor:
    """The first `lengths[i]` values of each row of a 2-D ragged tensor."""
    positions = tf.ragged.range(tf.cast(lengths, ragged.row_splits.dtype))
    return tf.gather(ragged.flat_values, positions + tf.expand_dims(ragged.row_starts(), 1))


def check_sequence_length(sequence_length, *, pair: bool) -> None:
    """Raise ConfigError when `sequence_length` cannot hold the special tokens."""
    needed = 3 if pair else 2
    if sequence_length is not None and int(sequence_length) < needed:
        kind = "a sentence pair" if pair else "one sentence"
        raise ConfigError(
            f"sequence_length={sequence_length} cannot hold the special tokens of {kind}: "
            f"use sequence_length >= {needed}"
        )


def pack_ids(first, second=None, *, cls_id: int, sep_id: int, pad_id: int, sequence_length=None,
             max_length: int = 512, truncation: str = "longest_first", segment_ids: bool = True) -> dict:
    """Ragged ids [batch, None] (and a second segment) -> dense int32 BERT inputs.

    `sequence_length=None` truncates to `max_length` and pads to the longest row; an int gives
    exactly that many columns (a static shape).

    Example:
        >>> out = pack_ids(tf.ragged.constant([[5, 6, 7]]), tf.ragged.constant([[8]]),
        ...                cls_id=1, sep_id=2, pad_id=0, sequence_length=6)
        >>> out["token_ids"].numpy().tolist(), out["segment_ids"].numpy().tolist()
        ([[1, 5, 6, 2, 8, 2]], [[0, 0, 0, 0, 1, 1]])
    """
    check_sequence_length(sequence_length, pair=second is not None)
    length = max_length if sequence_length is None else int(sequence_length)
    first = tf.cast(first, tf.int32)
    batch = first.nrows()
    specials = 2 if second is None else 3
    budget = length - specials
    if second is None:
        segments = [_heads(first, tf.minimum(first.row_lengths(), budget))]
    else:
        second = tf.cast(second, tf.int32)
        kept_first, kept_second = truncated_lengths(first.row_lengths(), second.row_lengths(), budget, truncation)
        segments = [_heads(first, kept_first), _heads(second, kept_second)]

    def column(value):
        return tf.RaggedTensor.from_tensor(tf.fill(tf.stack([batch, 1]), value))

    pieces, types = [column(cls_id)], [column(0)]
    for index, segment in enumerate(segments):
        pieces += [segment, column(sep_id)]
        types += [tf.zeros_like(segment) + index, column(index)]
    token_ids = tf.concat(pieces, axis=1)
    shape = [None, None if sequence_length is None else length]
    out = {
        "token_ids": token_ids.to_tensor(default_value=pad_id, shape=shape),
        "padding_mask": tf.ones_like(token_ids).to_tensor(default_value=0, shape=shape),
    }
    if segment_ids:
        out["segment_ids"] = tf.concat(types, axis=1).to_tensor(default_value=0, shape=shape)
    return out
