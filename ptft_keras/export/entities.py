"""Named-entity chunks from per-word tags, in the graph, by conlleval's rules (BIO, IOB1 and BIOES tags).

Same rules as `ptft_keras.training.metrics.entity_spans` (the evaluation), so a served model returns
the entities its F1 was measured on: B-/S- open an entity; I-/E- open one after O, E-, S- or a tag
of another type; everything else that is not O continues the current one.

Example:
    >>> import tensorflow as tf
    >>> names = ["O", "B-PER", "I-PER", "I-LOC"]
    >>> tags = tf.ragged.constant([[1, 2, 3, 0, 2, 1], [0]])
    >>> rows, first, last, kinds = entity_chunks(tags, names)
    >>> rows.numpy().tolist(), first.numpy().tolist(), last.numpy().tolist(), kinds.numpy().tolist()
    ([0, 0, 0, 0], [0, 2, 4, 5], [1, 2, 4, 5], [b'PER', b'LOC', b'PER', b'PER'])
"""
from __future__ import annotations

import tensorflow as tf

from ptft_keras.errors import ConfigError
from ptft_keras.export.word_offsets import positions_in_rows

_PREFIXES = {"O": 0, "B": 1, "I": 2, "E": 3, "S": 4}


def tag_scheme(label_names) -> tuple[list[int], list[str]]:
    """Per tag: its prefix code (O=0, B=1, I=2, E=3, S=4) and its entity type ("" for O)."""
    prefixes, kinds = [], []
    for name in label_names:
        prefix, dash, kind = name.partition("-")
        if name == "O":
            prefix, kind = "O", ""
        elif not dash or prefix not in _PREFIXES or not kind:
            raise ConfigError(f"tag {name!r} is not 'O' or B-/I-/E-/S- followed by an entity type; "
                              "token classification exports need BIO/BIOES tag names")
        prefixes.append(_PREFIXES[prefix])
        kinds.append(kind)
    return prefixes, kinds


def entity_chunks(tag_ids: tf.RaggedTensor, label_names):
    """Entities of ragged tag ids [batch, words]: ``(row, first word, last word, type)``, flat [entities].

    Word indices are positions within the row.
    """
    prefixes, kinds = tag_scheme(label_names)
    kind_names = sorted(set(kinds))
    kind_ids = [kind_names.index(k) for k in kinds]
    flat = tag_ids.flat_values
    prefix = tf.gather(tf.constant(prefixes, tf.int32), flat)
    kind = tf.gather(tf.constant(kind_ids, tf.int32), flat)
    row = tf.cast(tag_ids.value_rowids(), tf.int32)
    first_in_row = tf.concat([[True], tf.not_equal(row[1:], row[:-1])], axis=0)[: tf.size(row)]
    prev_prefix = tf.where(first_in_row, 0, tf.concat([[0], prefix[:-1]], axis=0)[: tf.size(prefix)])
    prev_kind = tf.where(first_in_row, -1, tf.concat([[-1], kind[:-1]], axis=0)[: tf.size(kind)])
    inside = prefix > 0
    starts = inside & (
        (prefix == 1) | (prefix == 4)
        | (((prev_prefix == 0) | (prev_prefix >= 3)) & ((prefix == 2) | (prefix == 3)))
        | (prev_kind != kind)
    )
    word = tf.cast(tf.where(inside)[:, 0], tf.int32)
    entity = tf.cumsum(tf.cast(tf.gather(starts, word), tf.int32)) - 1
    count = tf.reduce_max(tf.concat([[-1], entity], 0)) + 1
    position = positions_in_rows(tag_ids)
    first = tf.math.unsorted_segment_min(tf.gather(position, word), entity, count)
    last = tf.math.unsorted_segment_max(tf.gather(position, word), entity, count)
    entity_row = tf.math.unsorted_segment_min(tf.gather(row, word), entity, count)
    entity_kind = tf.math.unsorted_segment_min(tf.gather(kind, word), entity, count)
    return entity_row, first, last, tf.gather(tf.constant(kind_names), entity_kind)
