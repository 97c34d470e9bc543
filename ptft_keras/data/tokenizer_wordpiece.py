"""The WordPiece step (words -> piece ids), with two interchangeable backends.

- "tf_text": tensorflow_text.FastWordpieceTokenizer (a custom op, fast) for training;
- "core": greedy longest-match-first in core TensorFlow ops only (a hash table, substrings and
  pointer doubling), for SavedModels served where tf-text's ops are not available; about 2x
  slower end to end.

Both take a flat tf.string vector of words and give ragged int32 ids [words, pieces]; a word
that cannot be covered by vocabulary pieces becomes one [UNK], as in transformers.
"""
from __future__ import annotations

import math

import tensorflow as tf

from ptft_keras.errors import ConfigError

WORDPIECE_BACKENDS = ("tf_text", "core")
_PLACEHOLDER = "\U000FFFFD"  # private use (plane 15): BERT normalization drops it from every text


class CoreWordPiece(tf.Module):
    """Greedy longest-match-first WordPiece in core TF ops, without loops.

    Every candidate piece of every word (each start, each length up to the longest vocabulary
    entry) is looked up in one hash-table call, which gives the longest match at each start.
    The pieces of a word are then the chain start 0 -> 0 + match -> ..., found for all words at
    once by pointer doubling (7 rounds cover the 100-character word limit); a chain that reaches
    a start without any match, or a word over `max_chars_per_word` characters, gives one [UNK].

    Example:
        >>> wp = CoreWordPiece(["[UNK]", "un", "##aff", "##able", "a"], unk_token="[UNK]")
        >>> wp(tf.constant(["unaffable", "a", "xyz"])).to_list()
        [[1, 2, 3], [4], [0]]
    """

    def __init__(self, vocabulary, *, unk_token="[UNK]", suffix_indicator="##", max_chars_per_word=100, name=None):
        super().__init__(name=name)
        token_to_id = {token: index for index, token in enumerate(vocabulary)}  # last duplicate wins
        self.unk_id = token_to_id[unk_token]
        self.suffix_indicator = suffix_indicator
        # No piece is longer than the longest entry, so longer candidates need no lookup.
        self.max_chars_per_word = max_chars_per_word
        self.max_piece_chars = min(max(len(token) for token in token_to_id), max_chars_per_word)
        self.doubling_rounds = max(1, math.ceil(math.log2(max_chars_per_word + 1)))
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(list(token_to_id)),
                                                tf.constant(list(token_to_id.values()), tf.int32)),
            default_value=-1)

    def _longest_matches(self, words, starts):
        """For every (word, start): the length (0 if none) and id of the longest piece there."""
        start_word, start_pos = starts.value_rowids(), starts.flat_values
        lengths = tf.cast(starts.row_lengths(), tf.int32)
        span = tf.minimum(self.max_piece_chars, tf.gather(lengths, start_word) - start_pos)
        candidates = tf.ragged.range(1, span + 1)
        owner = candidates.value_rowids()
        piece_len = candidates.flat_values
        piece_pos = tf.gather(start_pos, owner)
        pieces = tf.strings.substr(tf.gather(words, tf.gather(start_word, owner)), piece_pos, piece_len,
                                   unit="UTF8_CHAR")
        keys = tf.strings.join([tf.where(piece_pos > 0, self.suffix_indicator, ""), pieces])
        ids = self._table.lookup(keys)
        best_len = tf.math.unsorted_segment_max(tf.where(ids >= 0, piece_len, 0), owner,
                                                tf.shape(start_pos, out_type=tf.int64)[0])
        best_id = tf.gather(ids, candidates.row_starts() + tf.cast(tf.maximum(best_len - 1, 0), tf.int64))
        return best_len, best_id

    def __call__(self, words):
        words = tf.convert_to_tensor(words, tf.string)
        lengths = tf.strings.length(words, unit="UTF8_CHAR")
        too_long = lengths > self.max_chars_per_word  # [UNK], as in transformers; look at 1 char only
        starts = tf.ragged.range(tf.where(too_long, tf.minimum(lengths, 1), lengths))
        best_len, best_id = self._longest_matches(words, starts)
        # Jump table over starts, plus two absorbing nodes: END (word covered) and DEAD (no match).
        count = tf.shape(best_len, out_type=tf.int64)[0]
        end, dead = count, count + 1
        word_length = tf.gather(tf.cast(starts.row_lengths(), tf.int32), starts.value_rowids())
        ends_word = starts.flat_values + best_len >= word_length
        jump = tf.where(best_len == 0, dead, tf.where(ends_word, end, tf.range(count) + tf.cast(best_len, tf.int64)))
        jump = tf.concat([jump, [end, dead]], axis=0)
        reached = tf.concat([tf.equal(starts.flat_values, 0), [False, False]], axis=0)
        for _ in range(self.doubling_rounds):  # after round r, the first 2**r pieces of each chain
            landed = tf.math.unsorted_segment_max(tf.cast(reached, tf.int32), jump, count + 2) > 0
            reached = tf.logical_or(reached, landed)
            jump = tf.gather(jump, jump)
        reached = reached[:-2]
        failed = tf.reduce_any(starts.with_flat_values(tf.logical_and(reached, best_len == 0)), axis=1)
        failed = tf.logical_or(failed, too_long)
        failed = tf.gather(failed, starts.value_rowids())
        # A failed word keeps only its first start, as one [UNK].
        keep = tf.where(failed, tf.equal(starts.flat_values, 0), reached)
        ids = tf.where(failed, self.unk_id, best_id)
        return tf.ragged.boolean_mask(starts.with_flat_values(ids), starts.with_flat_values(keep))


def build_wordpiece(vocabulary, *, unk_token: str, max_input_chars_per_word: int, backend: str = "tf_text"):
    """A callable flat words -> ragged int32 ids, for one of `WORDPIECE_BACKENDS`.

    Example:
        >>> wp = build_wordpiece(["[UNK]", "hi", "##s"], unk_token="[UNK]", max_input_chars_per_word=100)
        >>> wp(tf.constant(["his"])).to_list()
        [[1, 2]]
    """
    if backend == "core":
        return CoreWordPiece(vocabulary, unk_token=unk_token, max_chars_per_word=max_input_chars_per_word)
    if backend != "tf_text":
        raise ConfigError(f"wordpiece_backend={backend!r} is not one of {WORDPIECE_BACKENDS}")
    import tensorflow_text as tf_text  # only this backend needs tf-text's custom ops

    # tf-text wants unique, non-empty tokens. transformers keeps the last id of a duplicate, so
    # earlier copies (and empty lines) become placeholders no word can match: private-use
    # characters, which normalization removes from every text.
    last = {token: index for index, token in enumerate(vocabulary)}
    unique = [token if token and last[token] == index else f"{_PLACEHOLDER}{index}"
              for index, token in enumerate(vocabulary)]
    return tf_text.FastWordpieceTokenizer(
        unique, suffix_indicator="##", unknown_token=unk_token,
        # tf-text counts bytes; the caller applies transformers' limit in characters.
        max_bytes_per_word=4 * max_input_chars_per_word, token_out_type=tf.int32, no_pretokenization=True).tokenize
