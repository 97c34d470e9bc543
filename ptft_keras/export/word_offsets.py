"""Where each word of a raw text is: BERT's word split, as character offsets into the original text.

BERT's normalisation changes the text (lowercasing, accent stripping, dropped control characters),
but one character at a time, so each normalized character knows the original character it comes
from (`BertPreTokenizer.split_with_offsets`); a word spans from its first character's start to its
last character's end, as in transformers' offsets. Special tokens the pre-tokenizer matches in the
text (``[SEP]``) are one word, as in the tokenizer. Core TensorFlow ops only.

Example:
    >>> from ptft_keras.data.text_normalization import BertPreTokenizer
    >>> starts, ends = word_offsets(BertPreTokenizer(), ["Héllo,  Wörld!"])
    >>> starts.to_list(), ends.to_list()
    ([[0, 5, 8, 13]], [[5, 6, 13, 14]])
"""
from __future__ import annotations

import tensorflow as tf

from ptft_keras.data.text_normalization import positions_in_rows

__all__ = ["positions_in_rows", "word_offsets"]


def word_offsets(pretokenizer, texts, *, max_chars: int | None = None):
    """Ragged int32 ``(starts, ends)`` [batch, words]: code-point offsets of each word, ``ends`` exclusive.

    `max_chars` looks only at the first characters of each text (as the tokenizer does).
    """
    _, starts, ends = pretokenizer.split_with_offsets(texts, max_chars=max_chars)
    return tf.reduce_min(starts, axis=2), tf.reduce_max(ends, axis=2)
