"""Token classification (NER) in the serving graph: raw text -> words with offsets -> one tag per word -> entities.

The text is tokenized once into BERT's words and their pieces with character offsets into the raw
text (`CoreOpsTokenizer.tokenize_with_offsets`, the training tokenizer's ids), the pieces are packed
into [CLS] ... [SEP], and each word is tagged from the logits of its first piece, as in training
(`ptft_keras.tasks.token_classifier`). A word spans from its first piece's start to its last piece's
end. Words whose first piece falls past the sequence length are left out. Outputs, padded per batch
(strings with "", numbers with -1):

| output | dtype [shape] | |
|---|---|---|
| ``words`` | string [B, W] | each word as it is in the text |
| ``word_starts``, ``word_ends`` | int32 [B, W] | character (code point) offsets, end exclusive |
| ``tags``, ``tag_ids`` | string / int32 [B, W] | the predicted tag of each word |
| ``tag_probabilities`` | float32 [B, W] | its softmax probability |
| ``entity_types``, ``entity_texts`` | string [B, E] | entities by conlleval's chunk rules (`entities`) |
| ``entity_starts``, ``entity_ends`` | int32 [B, E] | their character offsets |

Example:
    >>> outputs = word_tag_outputs(core, model_call, ["Ada Lovelace lives in London"],  # doctest: +SKIP
    ...                            label_names=["O", "B-PER", "I-PER", "B-LOC", "I-LOC"],
    ...                            sequence_length=32, cls_id=101, sep_id=102, pad_id=0, segment_ids=True)
    >>> outputs["entity_texts"]                                                           # doctest: +SKIP
    <tf.Tensor: shape=(1, 2), dtype=string, numpy=array([[b'Ada Lovelace', b'London']], dtype=object)>
"""
from __future__ import annotations

import tensorflow as tf

from ptft_keras.data.tokenizer_packing import pack_ids
from ptft_keras.export.entities import entity_chunks


def _dense(rows: tf.RaggedTensor, pad):
    return rows.to_tensor(default_value=pad)


def _substrings(texts, rows, starts, ends):
    return tf.strings.substr(tf.gather(texts, rows), starts, ends - starts, unit="UTF8_CHAR")


def word_tag_outputs(core, model_call, texts, *, label_names, sequence_length: int, cls_id: int, sep_id: int,
                     pad_id: int, segment_ids: bool) -> dict:
    """The outputs of the module table for a batch of raw `texts` (tf.string [batch])."""
    texts = tf.convert_to_tensor(texts, tf.string)
    batch = tf.shape(texts, out_type=tf.int64)[0]
    ids, piece_starts, piece_ends = core.tokenize_with_offsets(texts, return_words=True,
                                                               max_chars=core.max_chars(sequence_length))
    ids = ids.with_row_splits_dtype(tf.int64)  # [batch, words, pieces]
    pieces, rows = ids.values, ids.value_rowids()  # [words, pieces], the text of each word
    starts, ends = tf.reduce_min(piece_starts, axis=2), tf.reduce_max(piece_ends, axis=2)
    words = _substrings(texts, rows, starts.flat_values, ends.flat_values)

    # Position of each word's first piece after [CLS]; words cut off by truncation are dropped.
    counts = tf.cast(pieces.row_lengths(), tf.int32)
    before = tf.cumsum(counts, exclusive=True)
    row_base = tf.cumsum(tf.math.unsorted_segment_sum(counts, rows, batch), exclusive=True)
    offset = before - tf.gather(row_base, rows)
    kept = offset < sequence_length - 2
    position = tf.boolean_mask(offset + 1, kept)
    kept_rows = tf.boolean_mask(rows, kept)

    features = pack_ids(ids.merge_dims(1, 2), cls_id=cls_id, sep_id=sep_id, pad_id=pad_id,
                        sequence_length=sequence_length, segment_ids=segment_ids)
    logits = tf.cast(model_call({k: tf.cast(v, tf.int32) for k, v in features.items()}), tf.float32)
    word_logits = tf.gather_nd(logits, tf.stack([tf.cast(kept_rows, tf.int32), position], axis=1))
    probabilities = tf.nn.softmax(word_logits, axis=-1)
    tag_ids = tf.argmax(word_logits, axis=-1, output_type=tf.int32)

    def per_row(values):
        return tf.RaggedTensor.from_value_rowids(values, kept_rows, nrows=batch)

    kept_starts, kept_ends = tf.boolean_mask(starts.flat_values, kept), tf.boolean_mask(ends.flat_values, kept)
    ragged_tags = per_row(tag_ids)
    entity_rows, first, last, kinds = entity_chunks(ragged_tags, label_names)
    row_starts = tf.cast(tf.gather(ragged_tags.row_starts(), entity_rows), tf.int32)
    entity_starts = tf.gather(kept_starts, row_starts + first)
    entity_ends = tf.gather(kept_ends, row_starts + last)

    def per_entity(values):
        return tf.RaggedTensor.from_value_rowids(values, tf.cast(entity_rows, tf.int64), nrows=batch)

    return {
        "words": _dense(per_row(tf.boolean_mask(words, kept)), ""),
        "word_starts": _dense(per_row(kept_starts), -1),
        "word_ends": _dense(per_row(kept_ends), -1),
        "tags": _dense(per_row(tf.gather(tf.constant(list(label_names)), tag_ids)), ""),
        "tag_ids": _dense(ragged_tags, -1),
        "tag_probabilities": _dense(per_row(tf.reduce_max(probabilities, axis=-1)), -1.0),
        "entity_types": _dense(per_entity(kinds), ""),
        "entity_texts": _dense(per_entity(_substrings(texts, entity_rows, entity_starts, entity_ends)), ""),
        "entity_starts": _dense(per_entity(entity_starts), -1),
        "entity_ends": _dense(per_entity(entity_ends), -1),
    }
