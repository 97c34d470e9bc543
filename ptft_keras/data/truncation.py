"""Fit long single texts into a fixed token budget: head, tail, head+tail truncation, or overlapping windows.

All functions work on token ids *before* special tokens are added: a batch of ragged ids
`[batch, (tokens)]` as `Tokenizer.tokenize` returns them. The budget `max_tokens` is the sequence
length minus the special tokens (`[CLS]` and `[SEP]`: ``sequence_length - 2``, see `content_budget`).

Strategies (``--truncation``; ``auto``, the default of `ptft finetune`, is ``head_tail`` for single texts
at sequence lengths of 256 and more, else ``head``, see `resolve_truncation`):
    ``head``       keep the first `max_tokens` tokens (what most BERT recipes do; the default of the
                   functions here).
    ``tail``       keep the last `max_tokens` tokens (the end of a review often holds the verdict).
    ``head_tail``  keep the first `head_tokens` (default 128) and the last ``max_tokens - head_tokens``
                   tokens (Sun et al. 2019, "How to Fine-Tune BERT for Text Classification?": best on IMDb).
    ``windows``    split a text into overlapping windows of `max_tokens` tokens whose starts are
                   `stride` tokens apart (default: half a window), so every token is in some window; the
                   model scores each window and the document's logits are the mean or max over its windows
                   (`pool_window_logits`). In training every window is an example with its document's
                   label (the usual recipe: batches keep their shape and size, whatever the document
                   lengths); wherever a document gets one prediction (the validation report, evaluate,
                   predict) the window logits are pooled.

Texts no longer than the budget are never changed. Text pairs are not cut here: the tokenizer's
``pack`` truncates them longest-first, as transformers does, so pairs only take ``head``.

`encode_texts` runs the whole preparation once, eagerly (normalise, tokenize, truncate or split into
windows), and `fitted_dataset` batches the result into the `(features[, labels])` batches a task
model takes; fine-tuning, evaluation and prediction all feed their models through these two.

Example:
    >>> import tensorflow as tf
    >>> from ptft_keras.data.truncation import truncate_ids, split_windows
    >>> ids = tf.ragged.constant([[1, 2, 3, 4, 5, 6], [7, 8]])
    >>> truncate_ids(ids, 4, "head_tail", head_tokens=1).to_list()
    [[1, 4, 5, 6], [7, 8]]
    >>> windows = split_windows(ids, 4, stride=2)
    >>> windows.to_list(), window_document_ids(windows).numpy().tolist()
    ([[[1, 2, 3, 4], [3, 4, 5, 6]], [[7, 8]]], [0, 0, 1])
"""
from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from ptft_keras.data import batching
from ptft_keras.data.pipeline import check_batch_sizes, pack_batch
from ptft_keras.data.text_rewrites import check_mode, normalize_text
from ptft_keras.data.truncation_rules import (  # noqa: F401 - the rules, re-exported beside the tensors
    AUTO,
    DEFAULT_HEAD_TOKENS,
    DEFAULT_TRUNCATION,
    LONG_TEXT_BUDGET,
    NUM_SPECIAL_TOKENS,
    TRUNCATIONS,
    WINDOW_POOLINGS,
    check_truncation,
    content_budget,
    describe_truncation,
    resolve_truncation,
)
from ptft_keras.errors import ConfigError

def _as_ragged(ids) -> tf.RaggedTensor:
    if isinstance(ids, tf.RaggedTensor):
        return ids
    if isinstance(ids, (list, tuple)):
        return tf.ragged.constant(ids, dtype=tf.int32, ragged_rank=1)
    return tf.RaggedTensor.from_tensor(tf.convert_to_tensor(ids))


def truncate_ids(ids, max_tokens: int, strategy: str = DEFAULT_TRUNCATION, *, head_tokens: int = DEFAULT_HEAD_TOKENS):
    """Cut each row of ragged `ids` to at most `max_tokens` tokens with `strategy` (head, tail or head_tail).

    Example:
        >>> import tensorflow as tf
        >>> ids = tf.ragged.constant([[1, 2, 3, 4, 5]])
        >>> truncate_ids(ids, 3, "tail").to_list()
        [[3, 4, 5]]
    """
    if strategy == "windows":
        raise ConfigError("truncation 'windows' keeps every token: use split_windows, not truncate_ids")
    check_truncation(strategy, max_tokens, head_tokens=head_tokens)
    ids = _as_ragged(ids)
    lengths = ids.row_lengths()
    position = tf.ragged.range(lengths)
    from_end = tf.expand_dims(lengths, 1) - position  # 1 for the last token
    fits = tf.expand_dims(lengths <= max_tokens, 1)
    if strategy == "head":
        keep = position < max_tokens
    elif strategy == "tail":
        keep = from_end <= max_tokens
    else:
        keep = (position < head_tokens) | (from_end <= max_tokens - head_tokens)
    return tf.ragged.boolean_mask(ids, keep | fits)


def split_windows(ids, window_tokens: int, stride: int | None = None) -> tf.RaggedTensor:
    """Overlapping windows `[batch, (windows), (tokens)]` of at most `window_tokens` ids, starts `stride` apart.

    A row of n tokens gets ``1 + ceil(max(n - window_tokens, 0) / stride)`` windows; the last one ends at
    the row's end, so every token is in at least one window. An empty row gets one empty window.

    Example:
        >>> import tensorflow as tf
        >>> split_windows(tf.ragged.constant([[1, 2, 3, 4, 5]]), 3, stride=2).to_list()
        [[[1, 2, 3], [3, 4, 5]]]
    """
    stride = max(window_tokens // 2, 1) if stride is None else int(stride)
    check_truncation("windows", window_tokens, stride=stride)
    ids = _as_ragged(ids)
    lengths = ids.row_lengths()
    overflow = tf.maximum(lengths - window_tokens, 0)
    num_windows = 1 + (overflow + stride - 1) // stride
    doc = tf.repeat(tf.range(tf.size(lengths, out_type=lengths.dtype)), num_windows)
    window_in_doc = tf.ragged.range(num_windows).flat_values
    start_in_doc = window_in_doc * stride
    size = tf.minimum(tf.gather(lengths, doc) - start_in_doc, window_tokens)
    start = tf.gather(ids.row_starts(), doc) + start_in_doc
    flat_index = tf.ragged.range(start, start + size)
    windows = tf.gather(ids.flat_values, flat_index)
    return tf.RaggedTensor.from_row_lengths(windows, num_windows)


def pool_window_logits(logits, document_ids, num_documents: int, mode: str = "mean"):
    """Pool per-window logits `[windows, ...]` into per-document logits `[num_documents, ...]`.

    `document_ids[w]` is the document window `w` came from (`window_document_ids`). ``mean`` averages
    the logits of a document's windows, ``max`` takes their element-wise maximum.

    Example:
        >>> import numpy as np
        >>> logits = np.array([[1.0, 0.0], [3.0, -2.0], [9.0, 9.0]])
        >>> np.asarray(pool_window_logits(logits, [0, 0, 1], 2, "mean")).tolist()
        [[2.0, -1.0], [9.0, 9.0]]
    """
    if mode not in WINDOW_POOLINGS:
        raise ConfigError(f"window_pooling: {mode!r} is not one of {', '.join(WINDOW_POOLINGS)}")
    ops = keras.ops
    logits = ops.convert_to_tensor(logits)
    document_ids = ops.cast(ops.convert_to_tensor(document_ids), "int32")
    if mode == "max":
        return ops.segment_max(logits, document_ids, num_segments=num_documents)
    total = ops.segment_sum(logits, document_ids, num_segments=num_documents)
    count = ops.segment_sum(ops.ones_like(document_ids, dtype=logits.dtype), document_ids, num_segments=num_documents)
    count = ops.reshape(ops.maximum(count, 1.0), (-1,) + (1,) * (len(logits.shape) - 1))
    return total / count


def window_document_ids(windows: tf.RaggedTensor) -> tf.Tensor:
    """The document index of each window of `split_windows(...)`, flattened in order: `[total windows]`.

    Example:
        >>> import tensorflow as tf
        >>> window_document_ids(split_windows(tf.ragged.constant([[1, 2, 3], [4]]), 2, stride=1)).numpy().tolist()
        [0, 0, 1]
    """
    return windows.value_rowids()


def fit_ids(ids, sequence_length: int, strategy: str = DEFAULT_TRUNCATION, *, head_tokens: int = DEFAULT_HEAD_TOKENS,
            window_stride: int | None = None):
    """Apply `strategy` to ragged `ids` so that each row fits `sequence_length` with [CLS] and [SEP].

    Returns `(rows, document_ids)`: the ids to pack (one row per document, or per window) and the
    document each row belongs to.

    Example:
        >>> rows, documents = fit_ids([[1, 2, 3, 4, 5], [6]], 5, "windows", window_stride=2)
        >>> rows.to_list(), documents.numpy().tolist()
        ([[1, 2, 3], [3, 4, 5], [6]], [0, 0, 1])
    """
    ids = _as_ragged(ids)
    budget = content_budget(sequence_length)
    if strategy == "windows":
        windows = split_windows(ids, budget, window_stride)
        return windows.values, window_document_ids(windows)
    return truncate_ids(ids, budget, strategy, head_tokens=head_tokens), tf.range(ids.nrows())


@dataclasses.dataclass
class FittedTexts:
    """Token ids ready to pack: `first` (and `second` for pairs) ragged `[rows, (tokens)]`, and the
    document of each row (`document_ids`, numpy int64; rows = documents unless split into windows)."""

    first: tf.RaggedTensor
    second: tf.RaggedTensor | None
    document_ids: np.ndarray
    num_documents: int

    def __len__(self) -> int:
        return int(self.first.nrows())

    def select(self, rows) -> "FittedTexts":
        """The rows at indices `rows` (repeats allowed), in that order; documents keep their ids.

        Example:
            >>> fitted = FittedTexts(tf.ragged.constant([[5], [6, 7]]), None, np.array([0, 1]), 2)
            >>> picked = fitted.select([1, 1])
            >>> picked.first.to_list(), picked.document_ids.tolist(), picked.num_documents
            ([[6, 7], [6, 7]], [1, 1], 2)
        """
        rows = np.asarray(rows, np.int64)

        def pick(ids):
            return None if ids is None else tf.gather(ids, rows)

        return FittedTexts(pick(self.first), pick(self.second), self.document_ids[rows], self.num_documents)

    def padded_to(self, multiple: int) -> "FittedTexts":
        """These rows followed by empty ones (packed as ``[CLS] [SEP]``) up to a multiple of `multiple` rows:
        fixed-size batches whose extra outputs are dropped (they belong to no document).

        Example:
            >>> fitted = FittedTexts(tf.ragged.constant([[5], [6, 7]]), None, np.array([0, 1]), 2)
            >>> padded = fitted.padded_to(4)
            >>> padded.first.to_list(), len(padded), padded.num_documents
            ([[5], [6, 7], [], []], 4, 2)
        """
        extra = -len(self) % int(multiple)
        if not extra:
            return self

        def pad(ids):
            return None if ids is None else batching.with_empty_rows(ids, extra)

        dummy = np.full(extra, -1, np.int64)  # no document: drop these rows' outputs before pooling
        return FittedTexts(pad(self.first), pad(self.second), np.concatenate([self.document_ids, dummy]),
                           self.num_documents)


def tokenize_all(tokenizer, texts, *, text_normalization: str | None = None, batch_size: int = 1024) -> tf.RaggedTensor:
    """Normalise (`ptft_keras.data.text_rewrites`) and tokenize all `texts` into ragged ids, in batches.

    Example:
        >>> tokenize_all(tokenizer, ["Great.<br />Loved it"], text_normalization="html_breaks")  # doctest: +SKIP
    """

    mode = check_mode(text_normalization)
    texts = np.asarray(list(texts), dtype=object)
    if len(texts) == 0:
        return tf.ragged.constant([], dtype=tf.int32, ragged_rank=1)
    dataset = tf.data.Dataset.from_tensor_slices(texts).batch(batch_size)
    dataset = dataset.map(lambda batch: tokenizer.tokenize(normalize_text(batch, mode)),
                          num_parallel_calls=tf.data.AUTOTUNE)  # deterministic: the order is kept
    return tf.concat(list(dataset), axis=0)


def encode_texts(tokenizer, texts, pairs=None, *, sequence_length: int, truncation: str = DEFAULT_TRUNCATION,
                 head_tokens: int = DEFAULT_HEAD_TOKENS, window_stride: int | None = None,
                 text_normalization: str | None = None) -> FittedTexts:
    """Normalise, tokenize and fit `texts` (and `pairs`) to `sequence_length` with the `truncation` strategy.

    Example:
        >>> fitted = encode_texts(tokenizer, ["a very long review ..."], sequence_length=128,
        ...                       truncation="windows")  # doctest: +SKIP
    """
    if pairs is not None and truncation != "head":
        raise ConfigError(
            f"truncation: {truncation!r} is for single texts; text pairs are truncated longest-first by the "
            "tokenizer, so use --truncation head (the default) with --text-pair-column"
        )
    first = tokenize_all(tokenizer, texts, text_normalization=text_normalization)
    num_documents = int(first.nrows())
    second = None
    if pairs is not None:
        second = tokenize_all(tokenizer, pairs, text_normalization=text_normalization)
        return FittedTexts(first, second, np.arange(num_documents), num_documents)
    first, document_ids = fit_ids(first, sequence_length, truncation, head_tokens=head_tokens, window_stride=window_stride)
    return FittedTexts(first, None, np.asarray(document_ids, np.int64), num_documents)


def fitted_dataset(fitted: FittedTexts, tokenizer, labels=None, *, batch_size: int, sequence_length: int,
                   padding: str = "dynamic", shuffle: bool = False, seed: int = 0,
                   drop_remainder: bool = False) -> tf.data.Dataset:
    """Batches of `features` (and `labels[document]` per row when `labels` is given) from `encode_texts`.

    `padding` is `ptft_keras.data.batching`'s: ``dynamic``, ``bucket`` or ``fixed``.

    Example:
        >>> ds = fitted_dataset(encode_texts(tokenizer, ["hi"], sequence_length=16), tokenizer,
        ...                     batch_size=32, sequence_length=16)  # doctest: +SKIP
    """

    check_batch_sizes(batch_size, sequence_length, tokenizer)
    columns = {"first": fitted.first}
    if fitted.second is not None:
        columns["second"] = fitted.second
    if labels is not None:
        columns["label"] = np.asarray(labels)[fitted.document_ids]
    dataset = tf.data.Dataset.from_tensor_slices(columns)
    if shuffle:
        dataset = dataset.shuffle(max(len(fitted), 1), seed=seed, reshuffle_each_iteration=True)
    dataset = batching.batch_examples(
        dataset, batch_size, padding=padding, sequence_length=sequence_length,
        num_special_tokens=3 if fitted.second is not None else 2, drop_remainder=drop_remainder,
        shuffle_seed=seed if shuffle else None,
    )
    # Every padding mode cuts the rows into full batches and one last partial batch; saying so keeps
    # the bucketed dataset's length known, so Keras runs every batch of every epoch and the LR
    # schedule knows the number of steps.
    num_batches = len(fitted) // batch_size if drop_remainder else -(-len(fitted) // batch_size)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(num_batches))
    fixed_batch = batch_size if padding == "fixed" and drop_remainder else None

    def pack(batch, width):
        features = pack_batch(tokenizer, batch, width, sequence_length, fixed_batch)
        return features if labels is None else (features, batch["label"])

    return dataset.map(pack, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
