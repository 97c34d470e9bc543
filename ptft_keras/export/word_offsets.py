"""Where each word of a raw text is: BERT's word split, as character offsets into the original text.

Token classification (NER) returns words, tags and entity spans as offsets into the text the client
sent. BERT's normalisation changes the text (lowercasing, accent stripping, dropped control
characters), but it is a function of one character at a time (`BertPreTokenizer.normalize_codepoints`),
so each original character can be classed by what it becomes:

* dropped (control and format characters, lone combining marks): ignored, it neither starts nor ends a word;
* a space: ends a word;
* isolated (punctuation, CJK ideographs): a word on its own;
* anything else: joins the neighbouring word characters.

The words found this way are the pre-tokenizer's words, except that special tokens typed in the
text (``[SEP]``) are split like any other text. Core TensorFlow ops only.

Example:
    >>> from ptft_keras.data.text_normalization import BertPreTokenizer
    >>> starts, ends = word_offsets(BertPreTokenizer(), ["Héllo,  Wörld!"])
    >>> starts.to_list(), ends.to_list()
    ([[0, 5, 8, 13]], [[5, 6, 13, 14]])
"""
from __future__ import annotations

import tensorflow as tf

_SPACE = 32


def positions_in_rows(ragged: tf.RaggedTensor) -> tf.Tensor:
    """For each flat value of a 2-D ragged tensor, its int32 index within its row."""
    flat_index = tf.range(tf.size(ragged.flat_values, out_type=tf.int64))
    return tf.cast(flat_index - tf.gather(ragged.row_starts(), ragged.value_rowids()), tf.int32)


def _first_and_last(rows: tf.RaggedTensor):
    """First and last value of each row (0 for an empty row)."""
    padded = rows.to_tensor(default_value=0)
    last = tf.gather(padded, tf.maximum(rows.row_lengths() - 1, 0), batch_dims=1)
    return padded[:, 0], last


def word_offsets(pretokenizer, texts, *, max_chars: int | None = None):
    """Ragged int32 ``(starts, ends)`` [batch, words]: code-point offsets of each word, ``ends`` exclusive.

    `max_chars` looks only at the first characters of each text (as the tokenizer does).
    """
    codepoints = tf.strings.unicode_decode(tf.convert_to_tensor(texts, tf.string), "UTF-8", errors="replace",
                                           replacement_char=0xFFFD)
    if max_chars is not None:
        codepoints = codepoints[:, :max_chars]
    text_of_char = tf.cast(codepoints.value_rowids(), tf.int32)
    position = positions_in_rows(codepoints)

    # What each character becomes on its own.
    one_per_row = tf.RaggedTensor.from_row_lengths(codepoints.flat_values,
                                                   tf.ones_like(codepoints.flat_values, tf.int64))
    becomes = pretokenizer.normalize_codepoints(one_per_row)
    letters = tf.reduce_sum(tf.cast(tf.not_equal(becomes, _SPACE), tf.int32), axis=1)
    first, last = _first_and_last(becomes)
    kept = becomes.row_lengths() > 0
    isolated = (letters > 0) & ((first == _SPACE) | (last == _SPACE))
    joining = (letters > 0) & ~isolated

    # Among kept characters: a word starts at an isolated character, or at a joining one whose
    # previous kept character (in the same text) is not joining.
    kept_index = tf.cast(tf.where(kept)[:, 0], tf.int32)
    k_text = tf.gather(text_of_char, kept_index)
    k_joining = tf.gather(joining, kept_index)
    k_word_char = k_joining | tf.gather(isolated, kept_index)
    prev_joining = tf.concat([[False], k_joining[:-1]], axis=0)
    same_text = tf.concat([[False], tf.equal(k_text[1:], k_text[:-1])], axis=0)
    starts_word = k_word_char & ~(k_joining & prev_joining & same_text)

    word_char = tf.cast(tf.where(k_word_char)[:, 0], tf.int32)
    word_id = tf.cumsum(tf.cast(tf.gather(starts_word, word_char), tf.int32)) - 1
    char_position = tf.gather(tf.gather(position, kept_index), word_char)
    num_words = tf.reduce_max(tf.concat([[-1], word_id], 0)) + 1
    starts = tf.math.unsorted_segment_min(char_position, word_id, num_words)
    ends = tf.math.unsorted_segment_max(char_position, word_id, num_words) + 1
    word_text = tf.math.unsorted_segment_min(tf.gather(k_text, word_char), word_id, num_words)
    rows, nrows = tf.cast(word_text, tf.int64), codepoints.nrows(out_type=tf.int64)
    return (tf.RaggedTensor.from_value_rowids(starts, rows, nrows=nrows, validate=False),
            tf.RaggedTensor.from_value_rowids(ends, rows, nrows=nrows, validate=False))
