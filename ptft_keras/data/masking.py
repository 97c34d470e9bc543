"""Masked-LM masking (BERT 80/10/10, optional whole-word) and next-sentence pairs, in the graph.

Both work on whole batches with stateless random ops keyed by a ``[2]`` int seed that the
pipeline derives from its ``seed`` and the batch index, so the same seed gives the same masks
whatever the parallelism, and a held-out set can be masked the same way every evaluation.

Why not ``keras_hub.layers.MaskedLMMaskGenerator``: it draws from TF's stateful global random
generator (not reproducible per batch), loops over rows with ``map_fn``, has no whole-word mode,
rounds the number of masks up (``ceil``, biasing short sequences) and may insert special tokens
as "random" replacements. Here the count per sequence is ``n * mlm_probability`` stochastically
rounded (unbiased), capped at ``max_predictions_per_seq``, and random replacements are drawn
from the non-special vocabulary.

Example:
    >>> import tensorflow as tf
    >>> masker = MaskedLMMasker(vocabulary_size=100, mask_token_id=3, special_token_ids=[0, 1, 2, 3],
    ...                         mlm_probability=0.5, max_predictions_per_seq=4)
    >>> out = masker(tf.constant([[1, 10, 11, 12, 13, 2, 0]]), seed=[7, 0])
    >>> sorted(out), out["mask_positions"].shape, float(tf.reduce_sum(out["mask_weights"]))
    (['mask_ids', 'mask_positions', 'mask_weights', 'token_ids'], TensorShape([1, 4]), 2.0)
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from ptft_keras.errors import ConfigError


def _split_seed(seed, count: int) -> list[tf.Tensor]:
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=count)
    return tf.unstack(seeds)


def _uniform(shape, seed) -> tf.Tensor:
    return tf.random.stateless_uniform(shape, seed=seed, dtype=tf.float32)


class MaskedLMMasker:
    """Choose and corrupt tokens for masked-LM pretraining, vectorised over a batch.

    Args:
        vocabulary_size: ids are in ``[0, vocabulary_size)``.
        mask_token_id: the ``[MASK]`` id.
        special_token_ids: never selected, never used as a random replacement.
        continuation_mask: bool per id, True for ``##`` word pieces; needed for whole words.
        mlm_probability: share of maskable tokens (not special, not padding) to predict.
        max_predictions_per_seq: width ``P`` of the outputs; at most this many per sequence.
        whole_word_masking: select whole words (a start piece and its ``##`` pieces) at once.
        mask_token_rate / random_token_rate: of the selected tokens, replaced by ``[MASK]`` /
            by a random token; the rest keep their id.

    Call with ``token_ids`` ``[B, L]`` (already packed, with specials and padding), a ``[2]`` int
    ``seed`` and optionally ``padding_mask``. Returns ``token_ids`` (corrupted),
    ``mask_positions`` int32 ``[B, P]`` (ascending, 0 where unused), ``mask_ids`` int32
    ``[B, P]`` (the original ids) and ``mask_weights`` float32 ``[B, P]`` (1 real, 0 padding).

    Example:
        >>> masker = MaskedLMMasker(vocabulary_size=50, mask_token_id=3, special_token_ids=[0, 1, 2, 3])
        >>> masker.get_config()["mlm_probability"]
        0.15
    """

    def __init__(self, *, vocabulary_size: int, mask_token_id: int,
                 special_token_ids: Sequence[int], continuation_mask=None,
                 mlm_probability: float = 0.15, max_predictions_per_seq: int = 20,
                 whole_word_masking: bool = False, mask_token_rate: float = 0.8,
                 random_token_rate: float = 0.1):
        if not 0.0 < mlm_probability <= 1.0:
            raise ConfigError(f"mlm_probability must be in (0, 1], got {mlm_probability}")
        if mask_token_rate < 0 or random_token_rate < 0 or mask_token_rate + random_token_rate > 1:
            raise ConfigError("mask_token_rate and random_token_rate must be >= 0 and sum to <= 1, "
                              f"got {mask_token_rate} and {random_token_rate}")
        if max_predictions_per_seq < 1:
            raise ConfigError(f"max_predictions_per_seq must be >= 1, got {max_predictions_per_seq}")
        if whole_word_masking and continuation_mask is None:
            raise ConfigError("whole_word_masking needs the tokenizer's continuation_mask")
        self.vocabulary_size = int(vocabulary_size)
        self.mask_token_id = int(mask_token_id)
        self.special_token_ids = sorted({int(i) for i in special_token_ids} | {self.mask_token_id})
        self.mlm_probability = float(mlm_probability)
        self.max_predictions_per_seq = int(max_predictions_per_seq)
        self.whole_word_masking = bool(whole_word_masking)
        self.mask_token_rate = float(mask_token_rate)
        self.random_token_rate = float(random_token_rate)
        special = np.zeros([self.vocabulary_size], bool)
        special[self.special_token_ids] = True
        self._special = tf.constant(special)
        self._replacements = tf.constant(np.flatnonzero(~special).astype(np.int32))
        self._continuation = (None if continuation_mask is None
                              else tf.constant(np.asarray(continuation_mask, bool)))

    @classmethod
    def from_tokenizer(cls, tokenizer, **kwargs) -> "MaskedLMMasker":
        """A masker for ``tokenizer``'s vocabulary, special tokens and ``##`` pieces."""
        return cls(vocabulary_size=tokenizer.vocab_size, mask_token_id=tokenizer.mask_token_id,
                   special_token_ids=tokenizer.special_token_ids,
                   continuation_mask=tokenizer.continuation_mask, **kwargs)

    def get_config(self) -> dict:
        return {"vocabulary_size": self.vocabulary_size, "mask_token_id": self.mask_token_id,
                "special_token_ids": self.special_token_ids,
                "mlm_probability": self.mlm_probability,
                "max_predictions_per_seq": self.max_predictions_per_seq,
                "whole_word_masking": self.whole_word_masking,
                "mask_token_rate": self.mask_token_rate,
                "random_token_rate": self.random_token_rate}

    def select(self, token_ids, seed, padding_mask=None) -> tf.Tensor:
        """Bool ``[B, L]``: the tokens chosen for prediction."""
        token_ids = tf.convert_to_tensor(token_ids)
        select_seed, count_seed = _split_seed(seed, 2)
        candidate = ~tf.gather(self._special, token_ids)
        if padding_mask is not None:
            candidate &= tf.cast(padding_mask, tf.bool)
        shape = tf.shape(token_ids)
        batch, length = shape[0], shape[1]
        # A word is a start piece plus the "##" pieces after it; without whole-word masking
        # every candidate token is its own word. Each word gets one random score.
        starts = candidate
        if self.whole_word_masking:
            previous = tf.pad(candidate[:, :-1], [[0, 0], [1, 0]])
            starts = candidate & (~tf.gather(self._continuation, token_ids) | ~previous)
        word_in_row = tf.cumsum(tf.cast(starts, tf.int32), axis=1)
        rows = tf.range(batch)[:, None] * (length + 1)
        dummy = batch * (length + 1)  # one shared segment for non-candidates
        word = tf.where(candidate, rows + word_in_row, dummy)
        num_words = dummy + 1
        start_score = tf.where(starts, _uniform(shape, select_seed), -1.0)
        score = tf.gather(tf.math.unsorted_segment_max(start_score, word, num_words), word)
        score = tf.where(candidate, score, 2.0)  # non-candidates sort last
        # Take words in score order while the running token count stays within the budget.
        order = tf.argsort(score, axis=1, stable=True)
        taken = tf.cumsum(tf.gather(tf.cast(candidate, tf.int32), order, batch_dims=1), axis=1)
        taken = tf.gather(taken, tf.argsort(order, axis=1), batch_dims=1)
        taken_at_word_end = tf.gather(tf.math.unsorted_segment_max(taken, word, num_words), word)
        num_candidates = tf.reduce_sum(tf.cast(candidate, tf.float32), axis=1)
        budget = tf.floor(num_candidates * self.mlm_probability + _uniform([batch], count_seed))
        budget = tf.minimum(tf.cast(budget, tf.int32), self.max_predictions_per_seq)
        return candidate & (taken_at_word_end <= budget[:, None])

    def __call__(self, token_ids, seed, padding_mask=None) -> dict:
        token_ids = tf.convert_to_tensor(token_ids, tf.int32)
        select_seed, choice_seed, random_seed = _split_seed(seed, 3)
        selected = self.select(token_ids, select_seed, padding_mask)
        shape = tf.shape(token_ids)
        choice = _uniform(shape, choice_seed)
        use_mask = selected & (choice < self.mask_token_rate)
        use_random = selected & ~use_mask & (choice < self.mask_token_rate + self.random_token_rate)
        random_ids = tf.gather(self._replacements, tf.random.stateless_uniform(
            shape, seed=random_seed, maxval=tf.size(self._replacements), dtype=tf.int32))
        corrupted = tf.where(use_mask, self.mask_token_id, tf.where(use_random, random_ids, token_ids))
        return {"token_ids": corrupted, **self._gather_predictions(token_ids, selected)}

    def _gather_predictions(self, token_ids, selected) -> dict:
        width = self.max_predictions_per_seq
        length = tf.shape(token_ids)[1]
        position = tf.where(selected, tf.range(length)[None, :], length)
        position = tf.sort(position, axis=1)
        position = tf.pad(position, [[0, 0], [0, tf.maximum(width - length, 0)]],
                          constant_values=length)[:, :width]
        real = position < length
        position = tf.where(real, position, 0)
        mask_ids = tf.where(real, tf.gather(token_ids, position, batch_dims=1), 0)
        position.set_shape([None, width])
        mask_ids.set_shape([None, width])
        return {"mask_positions": position, "mask_ids": mask_ids,
                "mask_weights": tf.cast(real, tf.float32)}


def make_nsp_pairs(chunks: tf.RaggedTensor, sentence_ids: tf.RaggedTensor, document_ids,
                   seed, *, random_next_probability: float = 0.5):
    """Split chunks into segments A and B for next-sentence prediction.

    Each chunk is cut at a random sentence boundary inside it (a random token when it holds a
    single sentence). With ``random_next_probability``, B is replaced by the second segment of a
    random chunk of *another* document in the batch (BERT's "random next"); a chunk whose B would
    be empty always gets a random B. Labels follow ``transformers`` ``next_sentence_label``:
    0 = B continues A, 1 = B is random.

    Args:
        chunks: ids ``[C, (tokens)]``; ``sentence_ids``: each token's sentence, same shape;
        document_ids: ``[C]`` document of each chunk, grouped (as from ``pack_documents``);
        seed: ``[2]`` int stateless seed.

    Returns:
        ``(first [C, (tokens)], second [C, (tokens)], is_random int32 [C])``.

    Example:
        >>> import tensorflow as tf
        >>> chunks = tf.ragged.constant([[1, 2, 3, 4], [7, 8, 9]])
        >>> sentences = tf.ragged.constant([[0, 0, 1, 1], [5, 6, 6]])
        >>> first, second, is_random = make_nsp_pairs(chunks, sentences, [0, 1], [1, 2],
        ...                                           random_next_probability=0.0)
        >>> first.to_list(), second.to_list(), is_random.numpy().tolist()
        ([[1, 2], [7]], [[3, 4], [8, 9]], [0, 0])
    """
    split_seed, point_seed, coin_seed, doc_seed, chunk_seed = _split_seed(seed, 5)
    document_ids = tf.convert_to_tensor(document_ids, tf.int64)
    lengths = chunks.row_lengths()
    sentences = sentence_ids.to_tensor(default_value=-1)
    shape = tf.shape(sentences, out_type=tf.int64)
    num_chunks = shape[0]
    # A boundary is a position p > 0 starting a new sentence; pick one at random.
    boundary = tf.pad(tf.not_equal(sentences[:, 1:], sentences[:, :-1]) & (sentences[:, 1:] >= 0),
                      [[0, 0], [1, 0]])
    at_boundary = tf.argmax(tf.where(boundary, _uniform(shape, split_seed), -1.0), axis=1)
    anywhere = 1 + tf.cast(_uniform([num_chunks], point_seed)
                           * tf.cast(tf.maximum(lengths - 1, 0), tf.float32), tf.int64)
    split = tf.where(tf.reduce_any(boundary, axis=1), at_boundary, tf.minimum(anywhere, lengths))
    position = tf.ragged.range(lengths)
    first = tf.ragged.boolean_mask(chunks, position < split[:, None])
    second = tf.ragged.boolean_mask(chunks, position >= split[:, None])
    # A random chunk of a random other document (documents indexed 0..D-1 in order).
    documents, document = tf.unique(document_ids)
    document = tf.cast(document, tf.int64)
    num_documents = tf.size(documents, out_type=tf.int64)
    doc_start = tf.math.unsorted_segment_min(tf.range(num_chunks), document, num_documents)
    doc_size = tf.math.unsorted_segment_sum(tf.ones_like(document), document, num_documents)
    hop = 1 + tf.cast(_uniform([num_chunks], doc_seed)
                      * tf.cast(tf.maximum(num_documents - 1, 0), tf.float32), tf.int64)
    other_document = (document + hop) % tf.maximum(num_documents, 1)
    other = tf.gather(doc_start, other_document) + tf.cast(
        _uniform([num_chunks], chunk_seed) * tf.cast(tf.gather(doc_size, other_document), tf.float32),
        tf.int64)
    want_random = (_uniform([num_chunks], coin_seed) < random_next_probability) | (split >= lengths)
    is_random = want_random & (num_documents > 1)
    second = tf.gather(second, tf.where(is_random, other, tf.range(num_chunks)))
    return first, second, tf.cast(is_random, tf.int32)
