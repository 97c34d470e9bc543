"""Padding modes, bucketing shapes, document packing, sharding and per-replica batch sizes."""
from __future__ import annotations

import types

import numpy as np
import pytest
import tensorflow as tf

from ptft_keras.data import batching
from ptft_keras.data.tokenizer_packing import pack_ids
from ptft_keras.errors import ConfigError


def examples(lengths, pairs=None) -> tf.data.Dataset:
    """Elements {"first": ids} (and "second") with the given token counts; ids start at 5."""
    columns = {"first": tf.ragged.constant([list(range(5, 5 + n)) for n in lengths], tf.int32),
               "label": tf.range(len(lengths))}
    if pairs is not None:
        columns["second"] = tf.ragged.constant([list(range(5, 5 + n)) for n in pairs], tf.int32)
    return tf.data.Dataset.from_tensor_slices(columns)


def packed(dataset, sequence_length):
    """Pack each (batch, width) like the pipeline does and return the features."""
    for batch, width in dataset:
        features = pack_ids(batch["first"], batch.get("second"), cls_id=2, sep_id=3, pad_id=0,
                            sequence_length=sequence_length)
        yield batch, batching.trim_padding(features, width)


def test_per_replica_batch_size():
    assert batching.per_replica_batch_size(64, tf.distribute.get_strategy()) == 64
    four = types.SimpleNamespace(num_replicas_in_sync=4)
    assert batching.per_replica_batch_size(64, four) == 16
    with pytest.raises(ConfigError, match="not a positive multiple of the 4 replicas.*e.g. 60 or 64"):
        batching.per_replica_batch_size(62, four)


def test_dynamic_padding_pads_each_batch_to_its_longest_row():
    lengths = [3, 9, 1, 4, 20, 2]
    widths = [features["token_ids"].shape[1] for _, features in packed(
        batching.batch_examples(examples(lengths), 2, padding="dynamic", sequence_length=16), 16)]
    assert widths == [9 + 2, 4 + 2, 16]  # the last batch is truncated at sequence_length


def test_bucketing_pads_each_batch_only_to_its_bucket():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 120, size=300).tolist()
    boundaries = [16, 32, 64, 128]

    def batches(**kwargs):
        dataset = batching.batch_examples(examples(lengths), 8, padding="bucket",
                                          sequence_length=128, bucket_boundaries=boundaries,
                                          bucket_window=10, **kwargs)
        return list(packed(dataset, 128))

    window_longest, seen, padded = [], 0, 0
    for batch, features in batches():
        full = batch["first"].row_lengths().numpy() + 2
        width = features["token_ids"].shape[1]
        assert width == [b for b in boundaries if b >= full.max()][0], (full, width)
        assert features["padding_mask"].numpy().sum(axis=1).tolist() == full.tolist()
        window_longest.append((full.min(), full.max()))
        seen, padded = seen + len(full), padded + width * len(full)
    assert seen == 300
    # unshuffled, a window's batches come shortest first and do not overlap in length
    for (_, longest), (shortest, _) in zip(window_longest[:9], window_longest[1:10]):
        assert longest <= shortest
    dynamic = sum(8 * max(np.array(lengths[i:i + 8]) + 2) for i in range(0, 300, 8))
    assert padded < dynamic, "sorting by length must beat unsorted dynamic padding"
    shuffled = batches(shuffle_seed=3, drop_remainder=True)
    assert all(batch["first"].nrows() == 8 for batch, _ in shuffled)
    assert len(shuffled) == 37  # 300 rows: 3 windows of 80 give 10 batches each, 60 give 7


def test_fixed_padding_has_static_shapes_with_drop_remainder():
    dataset = batching.batch_examples(examples([3, 30, 4, 5, 6]), 2, padding="fixed",
                                      sequence_length=12, drop_remainder=True)
    batches = list(packed(dataset, 12))
    assert len(batches) == 2
    assert all(features["token_ids"].shape == (2, 12) for _, features in batches)
    assert dataset.element_spec[0]["label"].shape == (2,)


def test_default_bucket_boundaries_and_bad_ones():
    assert batching.default_bucket_boundaries(512) == [8, 12, 16, 24, 32, 48, 64, 96, 128, 192,
                                                       256, 384, 512]
    with pytest.raises(ConfigError, match="increasing"):
        batching.batch_examples(examples([1]), 1, padding="bucket", sequence_length=64,
                                bucket_boundaries=[32, 16, 64])
    with pytest.raises(ConfigError, match="unknown padding"):
        batching.batch_examples(examples([1]), 1, padding="longest", sequence_length=64)


def test_pack_documents_fills_chunks_and_never_mixes_documents():
    documents = tf.ragged.constant([[[1, 2, 3], [4, 5]], [[6], [7, 8, 9, 10, 11]], [[12]]])
    chunks, sentence_ids, document_ids = batching.pack_documents(documents, 3)
    assert chunks.to_list() == [[1, 2, 3], [4, 5], [6, 7, 8], [9, 10, 11], [12]]
    assert sentence_ids.to_list() == [[0, 0, 0], [1, 1], [2, 3, 3], [3, 3, 3], [4]]
    assert document_ids.numpy().tolist() == [0, 0, 1, 1, 2]


def test_two_workers_by_file_and_by_data_are_disjoint_and_complete():
    contexts = [tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=i)
                for i in range(2)]
    file_ids = [0, 0, 1, 2, 2, 2, 3]
    by_file = [batching.shard_indices(file_ids, 4, context) for context in contexts]
    assert by_file == [[0, 1, 3, 4, 5], [2, 6]]  # files 0 and 2 | files 1 and 3
    by_data = [batching.shard_indices([0] * 5, 1, context) for context in contexts]
    assert by_data == [[0, 2, 4], [1, 3]]
    assert batching.shard_files(["a", "b", "c"], contexts[1]) == (["b"], True)
    assert batching.shard_files(["a"], contexts[1]) == (["a"], False)
    records = [list(batching.shard_records(tf.data.Dataset.range(5), c).as_numpy_iterator())
               for c in contexts]
    assert records == [[0, 2, 4], [1, 3]]


def test_shard_policy_and_options():
    policy = tf.data.experimental.AutoShardPolicy
    assert batching.shard_policy(2, 2) == policy.FILE
    assert batching.shard_policy(1, 2) == policy.DATA
    assert batching.shard_policy(5, 1) == policy.DATA
    dataset = tf.data.Dataset.range(3)
    assert batching.set_shard_options(dataset, True).options() \
        .experimental_distribute.auto_shard_policy == policy.OFF
    assert batching.set_shard_options(dataset, False).options() \
        .experimental_distribute.auto_shard_policy == policy.DATA
