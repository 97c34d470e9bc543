"""Batching that does not waste compute, document packing, and sharding across workers.

Padding modes (``padding=`` of the pipeline functions):
    ``dynamic``  each batch is padded to its longest example (least padding; varying shapes).
    ``bucket``   examples of similar length share a batch (a window of ``bucket_window``
                 batches is sorted by length, then cut into batches) and each batch is padded
                 to the smallest of the ``bucket_boundaries`` (default: powers of two and the
                 midpoints between them) that holds it: little padding and only a handful of
                 distinct shapes. Prefer it to ``dynamic`` when the model is XLA-compiled
                 (Keras' default ``jit_compile="auto"`` on GPU): every new shape recompiles.
    ``fixed``    every batch is ``[batch_size, sequence_length]``; with ``drop_remainder=True``
                 the shapes are static, as TPUs and ``jit_compile`` want.

Elements batched here are dicts holding ragged token ids ``"first"`` (and ``"second"`` for pairs)
without special tokens, plus any dense fields (labels); batches keep the ids ragged so that the
tokenizer's ``pack`` adds ``[CLS]``/``[SEP]``, truncates and pads them in one vectorised call.

Example:
    >>> import tensorflow as tf
    >>> ds = tf.data.Dataset.from_tensor_slices({"first": tf.ragged.constant([[5], [5, 6, 7]])})
    >>> [int(width) for _, width in batch_examples(ds, 2, padding="fixed", sequence_length=8)]
    [8]
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from ptft_keras.errors import ConfigError

PADDINGS = ("dynamic", "bucket", "fixed")
DYNAMIC_WIDTH = -1  # batch_examples' width for "pad to the longest row"
_SMALLEST_BUCKET = 8


def per_replica_batch_size(global_batch_size: int, strategy) -> int:
    """The batch each replica gets when ``strategy`` splits ``global_batch_size``.

    Raises:
        ConfigError: ``global_batch_size`` is not a multiple of ``strategy.num_replicas_in_sync``.

    Example:
        >>> import tensorflow as tf
        >>> per_replica_batch_size(64, tf.distribute.get_strategy())
        64
    """
    replicas = int(strategy.num_replicas_in_sync)
    if global_batch_size < 1 or global_batch_size % replicas:
        lower = max(global_batch_size // replicas, 1) * replicas
        options = sorted({lower, (global_batch_size // replicas + 1) * replicas})
        raise ConfigError(f"the global batch size {global_batch_size} is not a positive multiple "
                          f"of the {replicas} replicas in sync; use e.g. "
                          + " or ".join(map(str, options)))
    return global_batch_size // replicas


def static_batch_size(batch_size: int, strategy) -> int:
    """``batch_size`` rounded up to a multiple of ``strategy``'s replicas: a fixed prediction batch that
    every replica gets an equal share of.

    Example:
        >>> import types
        >>> static_batch_size(64, types.SimpleNamespace(num_replicas_in_sync=3))
        66
    """
    replicas = int(getattr(strategy, "num_replicas_in_sync", 1) or 1)
    return -(-max(int(batch_size), 1) // replicas) * replicas


def with_empty_rows(ids: tf.RaggedTensor, count: int) -> tf.RaggedTensor:
    """Ragged ``ids`` ``[rows, (tokens)]`` followed by ``count`` empty rows (dummy rows that fill a fixed
    batch: they pack as ``[CLS] [SEP]``).

    Example:
        >>> import tensorflow as tf
        >>> with_empty_rows(tf.ragged.constant([[5, 6]]), 2).to_list()
        [[5, 6], [], []]
    """
    empty = tf.RaggedTensor.from_row_lengths(tf.zeros([0], ids.dtype), tf.zeros([count], ids.row_splits.dtype))
    return tf.concat([ids, empty], axis=0)


# ------------------------------------------------------------------------- one input pipeline per worker
def equal_steps(num_rows: int, global_batch_size: int) -> int:
    """Steps of an epoch when every step takes a full global batch: ``ceil(rows / batch)``, the last
    step filled up with rows already seen in the epoch (see :func:`pipeline_rows`).

    Example:
        >>> equal_steps(100, 32), equal_steps(96, 32), equal_steps(3, 32)
        (4, 3, 1)
    """
    if num_rows < 1:
        raise ConfigError("there are no training rows to batch")
    return -(-int(num_rows) // int(global_batch_size))


def pipeline_rows(num_rows: int, global_batch_size: int, input_context, *, seed: int) -> np.ndarray:
    """The rows (indices) one input pipeline trains on in every epoch: the same count for every pipeline,
    so every worker runs the same number of steps (a worker with fewer would leave the others waiting in
    an all-reduce forever).

    A seeded permutation of all rows, repeated from its start up to :func:`equal_steps` whole global
    batches, is dealt out round-robin: pipeline ``i`` of ``n`` takes positions ``i, i + n, ...``. So the
    pipelines cover every row, are disjoint but for the repeated rows (fewer than one global batch; the
    same ones each epoch), and each gets ``steps * global_batch_size / n`` rows, which its own seeded
    shuffle reorders each epoch. It depends only on its arguments: every worker computes the same split.

    Example:
        >>> import tensorflow as tf
        >>> parts = [pipeline_rows(10, 4, tf.distribute.InputContext(2, i), seed=0) for i in range(2)]
        >>> [len(p) for p in parts], sorted(set(parts[0]) | set(parts[1])) == list(range(10))
        ([6, 6], True)
    """
    count, index = _pipelines(input_context)
    steps = equal_steps(num_rows, global_batch_size)
    if global_batch_size % count:
        raise ConfigError(f"the global batch size {global_batch_size} does not split across "
                          f"{count} input pipelines")
    order = np.random.default_rng(seed).permutation(num_rows)
    filled = np.resize(order, steps * global_batch_size)  # repeats the permutation from its start
    return filled[index::count]


def worker_padding(padding: str, input_context) -> str:
    """The padding of one worker's batches: ``fixed`` when there are several workers (input pipelines), else
    ``padding``. Batches of one step must have the same shape on every replica (Keras averages the first
    batch of each ``fit`` across them to build the model); one worker pads its replicas' batches together,
    but workers cannot agree on a width without tokenizing each other's rows.

    Example:
        >>> import tensorflow as tf
        >>> one, two = tf.distribute.InputContext(1, 0, 8), tf.distribute.InputContext(2, 0, 8)
        >>> worker_padding("bucket", one), worker_padding("bucket", two)
        ('bucket', 'fixed')
    """
    return padding if _pipelines(input_context)[0] == 1 else "fixed"


class ShardedInput:
    """The training input as one ``tf.data`` pipeline per worker, for
    ``strategy.distribute_datasets_from_function``.

    ``pipeline(input_context, worker_batch_size)`` gives a worker's batches of ``global_batch_size /
    workers`` rows, ``steps`` of them per pass (see :func:`pipeline_rows`), padded with
    :func:`worker_padding`; each is cut into the batches of the worker's replicas, which share its width,
    so one pass is one epoch of ``steps`` steps on every worker.

    :meth:`distribute` makes what Keras' ``fit`` takes; ``.skip(n)`` on it gives the rest of an epoch
    after ``n`` steps (a resume), over the same pipelines, so the shuffles' seed streams carry on.
    """

    def __init__(self, pipeline: Callable, steps: int, global_batch_size: int):
        self.pipeline, self.steps, self.global_batch_size = pipeline, int(steps), int(global_batch_size)
        self._built: dict = {}

    def dataset(self, input_context) -> tf.data.Dataset:
        """This worker's per-replica batches, built once (later calls share its shuffles' seed streams)."""
        key = (input_context.num_input_pipelines, input_context.input_pipeline_id)
        if key not in self._built:
            worker_batch = self.global_batch_size // input_context.num_input_pipelines
            per_replica = input_context.get_per_replica_batch_size(self.global_batch_size)
            dataset = self.pipeline(input_context, worker_batch)
            if per_replica != worker_batch:
                dataset = dataset.unbatch().batch(per_replica, drop_remainder=True).apply(
                    tf.data.experimental.assert_cardinality(self.steps * (worker_batch // per_replica)))
            self._built[key] = dataset
        return self._built[key]

    def distribute(self, strategy, skip_steps: int = 0):
        """A ``tf.distribute`` dataset of this input, ``skip_steps`` steps in."""

        def dataset_fn(context):
            dataset = self.dataset(context)
            local_replicas = max(context.num_replicas_in_sync // context.num_input_pipelines, 1)
            return dataset.skip(skip_steps * local_replicas) if skip_steps else dataset

        distributed = strategy.distribute_datasets_from_function(dataset_fn)
        # Its cardinality is its first pipeline's, in per-replica batches; Keras reads it as the steps of
        # an epoch, which are fewer when a worker feeds several replicas.
        distributed._cardinality = max(self.steps - skip_steps, 0)
        distributed.skip = lambda steps: self.distribute(strategy, skip_steps + int(steps))
        return distributed


def shard_policy(num_files: int, num_workers: int) -> tf.data.experimental.AutoShardPolicy:
    """``FILE`` when every worker can get at least one whole file, else ``DATA``.

    Example:
        >>> shard_policy(8, 2).name, shard_policy(1, 2).name
        ('FILE', 'DATA')
    """
    policy = tf.data.experimental.AutoShardPolicy
    return policy.FILE if num_files >= num_workers > 1 else policy.DATA


def shard_indices(file_ids: Sequence[int], num_files: int,
                  input_context: tf.distribute.InputContext | None) -> list[int]:
    """Indices of the rows this input pipeline reads: whole files, or every n-th row.

    Sharding by file (when ``num_files >= num_input_pipelines``) keeps each file on one worker;
    otherwise rows are dealt round-robin. Either way the pipelines are disjoint and cover
    everything.

    Example:
        >>> import tensorflow as tf
        >>> context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1)
        >>> shard_indices([0, 0, 1, 1], 2, context), shard_indices([0, 0, 0], 1, context)
        ([2, 3], [1])
    """
    count, index = _pipelines(input_context)
    if shard_policy(num_files, count).name == "FILE":
        return [i for i, file_id in enumerate(file_ids) if file_id % count == index]
    return list(range(index, len(file_ids), count))


def _pipelines(input_context) -> tuple[int, int]:
    if input_context is None:
        return 1, 0
    return input_context.num_input_pipelines, input_context.input_pipeline_id


def shard_files(files: Sequence[str], input_context) -> tuple[list[str], bool]:
    """This pipeline's files when sharding by file is possible, and whether it was done.

    When it is not (fewer files than pipelines), all files are returned and ``False``: shard the
    records with :func:`shard_records` instead.

    Example:
        >>> import tensorflow as tf
        >>> context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=0)
        >>> shard_files(["a", "b", "c"], context)
        (['a', 'c'], True)
    """
    count, index = _pipelines(input_context)
    if shard_policy(len(files), count).name == "FILE":
        return list(files[index::count]), True
    return list(files), False


def shard_records(dataset: tf.data.Dataset, input_context) -> tf.data.Dataset:
    """Keep every n-th element for this pipeline (sharding by data)."""
    count, index = _pipelines(input_context)
    return dataset.shard(count, index) if count > 1 else dataset


def set_shard_options(dataset: tf.data.Dataset, sharded: bool) -> tf.data.Dataset:
    """Turn tf.data auto-sharding off when we sharded explicitly, else shard by ``DATA``.

    Our readers are Python generators and in-memory tensors, which tf.data cannot shard by
    ``FILE``; sharding by file is done explicitly from ``InputContext`` (use
    ``strategy.distribute_datasets_from_function``).
    """
    options = tf.data.Options()
    policy = tf.data.experimental.AutoShardPolicy
    options.experimental_distribute.auto_shard_policy = policy.OFF if sharded else policy.DATA
    return dataset.with_options(options)


def default_bucket_boundaries(sequence_length: int, smallest: int = _SMALLEST_BUCKET) -> list[int]:
    """Powers of two and the midpoints between them (x1.5) from ``smallest``, capped at
    ``sequence_length``: each boundary is at most 1.5x the one below, so a batch's longest
    example fills at least two thirds of its width, with few distinct shapes.

    Example:
        >>> default_bucket_boundaries(128), default_bucket_boundaries(100)
        ([8, 12, 16, 24, 32, 48, 64, 96, 128], [8, 12, 16, 24, 32, 48, 64, 96, 100])
    """
    boundaries, size = [], smallest
    while size < sequence_length:
        boundaries += [size, size * 3 // 2]
        size *= 2
    return [b for b in boundaries if b < sequence_length] + [int(sequence_length)]


def check_bucket_boundaries(boundaries: Sequence[int] | None, sequence_length: int) -> list[int]:
    """The boundaries to use (default :func:`default_bucket_boundaries`), capped and checked."""
    boundaries = list(boundaries or default_bucket_boundaries(sequence_length))
    if boundaries != sorted(set(boundaries)) or boundaries[-1] < sequence_length:
        raise ConfigError(f"bucket_boundaries {boundaries} must be increasing and end at or "
                          f"above the sequence length {sequence_length}")
    return [b for b in boundaries if b < sequence_length] + [int(sequence_length)]


def split_into_buckets(chunk: dict, batch_size: int, *, boundaries: Sequence[int],
                       num_special_tokens: int = 2) -> dict:
    """Sort a chunk of examples by packed length and cut it into batches of ``batch_size``.

    Every field becomes ``[batches, (batch_size), ...]``; ``"width"`` ``[batches]`` is the
    smallest boundary holding each batch's longest example (lengths are capped at the last
    boundary, the sequence length). Neighbours in length share a batch, so little is padded.

    Example:
        >>> import tensorflow as tf
        >>> chunk = {"first": tf.ragged.constant([[1] * 9, [1], [1] * 20, [1, 1]])}
        >>> out = split_into_buckets(chunk, 2, boundaries=[8, 16, 32])
        >>> out["first"].row_lengths(axis=2).to_list(), out["width"].numpy().tolist()
        ([[1, 2], [9, 20]], [8, 32])
    """
    length = chunk["first"].row_lengths() + num_special_tokens
    if "second" in chunk:
        length += chunk["second"].row_lengths()
    widths = tf.constant(boundaries, tf.int64)
    length = tf.minimum(length, widths[-1])
    order = tf.argsort(length, stable=True)
    count = tf.size(order, out_type=tf.int64)
    splits = tf.concat([tf.range(0, count, batch_size), [count]], axis=0)
    batches = {name: tf.RaggedTensor.from_row_splits(tf.gather(value, order), splits)
               for name, value in chunk.items()}
    longest = tf.gather(tf.gather(length, order), splits[1:] - 1)
    batches["width"] = tf.cast(tf.gather(widths, tf.searchsorted(widths, longest)), tf.int32)
    return batches


def batch_examples(dataset: tf.data.Dataset, batch_size: int, *, padding: str = "dynamic",
                   sequence_length: int, tokenize: Callable[[dict], dict] | None = None,
                   num_special_tokens: int = 2, bucket_boundaries: Sequence[int] | None = None,
                   bucket_window: int = 64, drop_remainder: bool = False,
                   shuffle_seed: int | None = None) -> tf.data.Dataset:
    """Batch examples into ``(ragged_batch, width)``; pack each batch to ``width`` columns.

    ``width`` is ``sequence_length`` (``fixed``), the bucket boundary (``bucket``) or
    :data:`DYNAMIC_WIDTH` (``dynamic``: the longest row, see :func:`trim_padding`).

    Args:
        dataset: single examples: dicts of token ids ``"first"`` (``"second"``) and dense
            fields, or raw strings when ``tokenize`` is given.
        tokenize: maps a batch of raw examples to ragged token ids; it runs once per batch
            (once per window of ``bucket_window`` batches with ``bucket``), vectorised.
        bucket_window: ``bucket`` sorts this many batches' worth of examples by length at a
            time (one vectorised sort, no per-example work) before cutting them into batches.
        shuffle_seed: with ``bucket``, shuffle the batches of a window (else they come
            shortest first).
    """
    if padding not in PADDINGS:
        raise ConfigError(f"unknown padding {padding!r}; use one of {', '.join(PADDINGS)}")
    bucket = padding == "bucket"
    chunks = dataset.ragged_batch(batch_size * bucket_window if bucket else batch_size,
                                  drop_remainder=drop_remainder and not bucket)
    if tokenize is not None:
        chunks = chunks.map(tokenize, num_parallel_calls=tf.data.AUTOTUNE)
    if not bucket:
        width = tf.constant(sequence_length if padding == "fixed" else DYNAMIC_WIDTH, tf.int32)
        return chunks.map(lambda batch: (batch, width))
    boundaries = check_bucket_boundaries(bucket_boundaries, sequence_length)
    batches = chunks.map(lambda chunk: split_into_buckets(
        chunk, batch_size, boundaries=boundaries, num_special_tokens=num_special_tokens),
        num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    if drop_remainder:
        batches = batches.filter(lambda batch: batch["first"].nrows() == batch_size)
    if shuffle_seed is not None:
        batches = batches.shuffle(bucket_window, seed=shuffle_seed)
    return batches.map(lambda batch: ({k: v for k, v in batch.items() if k != "width"},
                                      batch["width"]))


def trim_padding(features: dict, width) -> dict:
    """Cut packed ``[B, L]`` features to ``width`` columns (the longest row if negative)."""
    longest = tf.reduce_max(tf.reduce_sum(tf.cast(features["padding_mask"], tf.int32), axis=1))
    width = tf.where(width < 0, longest, tf.cast(width, tf.int32))
    return {name: value[:, :width] for name, value in features.items()}


def pack_documents(documents: tf.RaggedTensor, max_tokens: int
                   ) -> tuple[tf.RaggedTensor, tf.RaggedTensor, tf.Tensor]:
    """Concatenate each document's sentences and cut them into chunks of ``max_tokens`` tokens.

    Args:
        documents: int ids ``[docs, (sentences), (tokens)]``.
        max_tokens: tokens per chunk (sequence length minus the special tokens).

    Returns:
        ``chunks [C, (tokens)]``, ``sentence_ids [C, (tokens)]`` (index of each token's sentence,
        to split a chunk at a sentence boundary) and ``document_ids [C]`` (int64). Only a
        document's last chunk is shorter than ``max_tokens``; no chunk mixes documents.

    Example:
        >>> import tensorflow as tf
        >>> docs = tf.ragged.constant([[[1, 2], [3, 4, 5]], [[6]]])
        >>> chunks, sentences, doc_ids = pack_documents(docs, 4)
        >>> chunks.to_list(), sentences.to_list(), doc_ids.numpy().tolist()
        ([[1, 2, 3, 4], [5], [6]], [[0, 0, 1, 1], [1], [2]], [0, 0, 1])
    """
    sentence_of_token = documents.values.value_rowids()          # global sentence index
    document_of_token = tf.gather(documents.value_rowids(), sentence_of_token)
    tokens_per_document = documents.row_lengths(axis=2)
    tokens_per_document = tf.reduce_sum(tokens_per_document, axis=1)  # ragged -> [docs]
    position = tf.range(tf.size(document_of_token, out_type=tf.int64)) - tf.gather(
        tf.cumsum(tokens_per_document, exclusive=True), document_of_token)
    chunks_per_document = (tokens_per_document + max_tokens - 1) // max_tokens
    chunk_of_token = tf.gather(tf.cumsum(chunks_per_document, exclusive=True),
                               document_of_token) + position // max_tokens
    num_chunks = tf.reduce_sum(chunks_per_document)
    chunks = tf.RaggedTensor.from_value_rowids(documents.flat_values, chunk_of_token, num_chunks)
    sentence_ids = chunks.with_flat_values(sentence_of_token)
    document_ids = tf.repeat(tf.range(tf.size(chunks_per_document, out_type=tf.int64)),
                             chunks_per_document)
    return chunks, sentence_ids, document_ids
