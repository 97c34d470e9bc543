import numpy as np
import pytest
import tensorflow as tf

from ptft_keras.data.truncation import (
    check_truncation,
    content_budget,
    encode_texts,
    fitted_dataset,
    pool_window_logits,
    split_windows,
    truncate_ids,
    window_document_ids,
)
from ptft_keras.errors import ConfigError


def ids_of(*lengths):
    """Rows of distinct ids 100*row + position, so a kept id says exactly where it came from."""
    return tf.ragged.constant([[100 * r + p for p in range(n)] for r, n in enumerate(lengths)], dtype=tf.int32)


def test_content_budget_leaves_room_for_cls_and_sep():
    assert content_budget(512) == 510
    with pytest.raises(ConfigError):
        content_budget(2)


def test_head_keeps_the_first_tokens():
    out = truncate_ids(ids_of(10, 3), 4, "head").to_list()
    assert out == [[0, 1, 2, 3], [100, 101, 102]]


def test_tail_keeps_the_last_tokens():
    out = truncate_ids(ids_of(10, 3), 4, "tail").to_list()
    assert out == [[6, 7, 8, 9], [100, 101, 102]]


def test_head_tail_keeps_head_tokens_then_the_rest_from_the_end():
    out = truncate_ids(ids_of(12, 5, 6), 6, "head_tail", head_tokens=2).to_list()
    assert out == [[0, 1, 8, 9, 10, 11], [100, 101, 102, 103, 104], [200, 201, 202, 203, 204, 205]]


def test_head_tail_at_bert_scale_is_128_plus_382():
    out = truncate_ids(ids_of(1000), 510, "head_tail", head_tokens=128).to_list()[0]
    assert out == list(range(128)) + list(range(1000 - 382, 1000))


def test_auto_is_head_tail_for_long_single_texts_only():
    from ptft_keras.data.truncation import resolve_truncation

    assert resolve_truncation("auto", 510) == ("head_tail", 128)
    assert resolve_truncation("auto", 254) == ("head_tail", 128)  # sequence length 256: the long-text regime
    assert resolve_truncation("auto", 253) == ("head", 126)
    assert resolve_truncation("auto", 510, pairs=True)[0] == "head"
    assert resolve_truncation("head_tail", 62) == ("head_tail", 31)  # explicit: half the budget at the head
    assert resolve_truncation("windows", 62, head_tokens=5) == ("windows", 5)


def test_truncation_accepts_python_lists_and_works_in_a_graph():
    assert truncate_ids([[1, 2, 3]], 2, "tail").to_list() == [[2, 3]]
    fn = tf.function(lambda ids: truncate_ids(ids, 3, "head_tail", head_tokens=1))
    assert fn(ids_of(7)).to_list() == [[0, 5, 6]]


def test_bad_settings_are_config_errors_naming_the_option():
    with pytest.raises(ConfigError, match="head_tokens"):
        truncate_ids(ids_of(5), 4, "head_tail", head_tokens=4)
    with pytest.raises(ConfigError, match="truncation"):
        truncate_ids(ids_of(5), 4, "middle")
    with pytest.raises(ConfigError, match="window_stride"):
        check_truncation("windows", 4, stride=5)
    with pytest.raises(ConfigError, match="split_windows"):
        truncate_ids(ids_of(5), 4, "windows")


def test_windows_are_the_expected_slices():
    out = split_windows(ids_of(10, 4, 0), 4, stride=3).to_list()
    assert out[0] == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    assert out[1] == [[100, 101, 102, 103]]
    assert out[2] == [[]]


def test_last_window_is_shorter_when_the_stride_does_not_divide():
    out = split_windows(ids_of(9), 4, stride=3).to_list()[0]
    assert out == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8]]


@pytest.mark.parametrize("length,window,stride", [(1, 5, 1), (37, 8, 3), (50, 10, 10), (101, 16, None), (16, 16, 4)])
def test_windows_cover_every_token_and_respect_the_window_size(length, window, stride):
    windows = split_windows(ids_of(length), window, stride=stride).to_list()[0]
    stride = stride or window // 2
    assert all(1 <= len(w) <= window for w in windows)
    covered = sorted({t for w in windows for t in w})
    assert covered == list(range(length))
    # each window is a contiguous slice starting `stride` after the previous one
    for k, w in enumerate(windows):
        assert w == list(range(k * stride, k * stride + len(w)))
    assert len(windows) == 1 + max(0, -(-(length - window) // stride))


def test_windows_inside_tf_data_map_on_single_examples():
    ds = tf.data.Dataset.from_tensor_slices(tf.constant([[1, 2, 3, 4, 5]]))
    ds = ds.map(lambda ids: split_windows(tf.RaggedTensor.from_tensor(ids[None]), 3, stride=2)[0].to_tensor())
    assert next(iter(ds)).numpy().tolist() == [[1, 2, 3], [3, 4, 5]]


def test_window_document_ids_follow_the_windows():
    windows = split_windows(ids_of(10, 2, 6), 4, stride=2)
    assert window_document_ids(windows).numpy().tolist() == [0, 0, 0, 0, 1, 2, 2]


def test_mean_pooling_averages_each_documents_windows():
    logits = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, -1.0], [100.0, 0.0], [0.0, 100.0]])
    pooled = np.asarray(pool_window_logits(logits, [0, 0, 1, 2, 2], 3, "mean"))
    np.testing.assert_allclose(pooled, [[2.0, 3.0], [5.0, -1.0], [50.0, 50.0]])


def test_max_pooling_is_elementwise_over_a_documents_windows():
    logits = np.array([[1.0, 7.0], [3.0, -4.0], [-5.0, -1.0]])
    pooled = np.asarray(pool_window_logits(logits, [0, 0, 1], 2, "max"))
    np.testing.assert_allclose(pooled, [[3.0, 7.0], [-5.0, -1.0]])


def test_pooling_of_scalar_outputs_and_unknown_mode():
    values = np.array([1.0, 3.0, 2.0])  # regression: one value per window
    np.testing.assert_allclose(np.asarray(pool_window_logits(values, [0, 0, 1], 2, "mean")), [2.0, 2.0])
    with pytest.raises(ConfigError, match="window_pooling"):
        pool_window_logits(values, [0, 0, 1], 2, "median")


def test_split_then_pool_round_trip_recovers_document_order():
    ids = ids_of(9, 1, 20)
    windows = split_windows(ids, 4, stride=3)
    document_ids = window_document_ids(windows)
    # a "model" whose logit is the first id of the window: max pooling gives the last window's start
    first_ids = np.array([w[0] if w else -1 for w in windows.values.to_list()], np.float32)
    pooled = np.asarray(pool_window_logits(first_ids, document_ids, 3, "max"))
    np.testing.assert_allclose(pooled, [6.0, 100.0, 218.0])  # 20 tokens: windows start at 0, 3, ..., 18


class OneIdPerWord:
    """Stands in for the tokenizer: one id per word (its length), [CLS]=101, [SEP]=102, [PAD]=0."""

    model_type = "bert"
    model_max_length = 512

    def tokenize(self, texts):
        words = tf.strings.split(tf.convert_to_tensor(texts, tf.string))
        return tf.ragged.map_flat_values(lambda w: tf.strings.length(w) + 1000, words)

    def pack(self, first, second=None, *, sequence_length=None):
        from ptft_keras.data.tokenizer_packing import pack_ids

        return pack_ids(first, second, cls_id=101, sep_id=102, pad_id=0, sequence_length=sequence_length,
                        max_length=self.model_max_length, truncation="longest_first", segment_ids=True)


def test_encode_texts_normalizes_then_fits():
    fitted = encode_texts(OneIdPerWord(), ["a bb<br />ccc dddd eeeee", "z"], sequence_length=5, truncation="tail",
                          text_normalization="html_breaks")
    assert fitted.first.to_list() == [[1003, 1004, 1005], [1001]] and fitted.num_documents == 2
    windows = encode_texts(OneIdPerWord(), ["a bb ccc dddd eeeee", "z"], sequence_length=5, truncation="windows",
                           window_stride=2)
    assert windows.first.to_list() == [[1001, 1002, 1003], [1003, 1004, 1005], [1001]]
    assert windows.document_ids.tolist() == [0, 0, 1] and len(windows) == 3
    with pytest.raises(ConfigError, match="text pairs"):
        encode_texts(OneIdPerWord(), ["a"], ["b"], sequence_length=5, truncation="tail")


@pytest.mark.parametrize("padding", ["dynamic", "bucket", "fixed"])
@pytest.mark.parametrize("drop_remainder", [False, True])
def test_fitted_dataset_yields_every_row_once_per_epoch(padding, drop_remainder):
    rng = np.random.default_rng(0)
    texts = [" ".join(["w"] * n) for n in rng.integers(1, 40, 150)]
    fitted = encode_texts(OneIdPerWord(), texts, sequence_length=32)
    ds = fitted_dataset(fitted, OneIdPerWord(), np.arange(150), batch_size=16, sequence_length=32, padding=padding,
                        shuffle=True, drop_remainder=drop_remainder)
    expected_batches = 9 if drop_remainder else 10
    assert int(ds.cardinality()) == expected_batches
    for _ in range(2):  # two epochs, reshuffled, same count
        batches = list(ds)
        labels = np.concatenate([y.numpy() for _, y in batches])
        assert len(batches) == expected_batches and len(set(labels.tolist())) == len(labels)
        if not drop_remainder:
            assert sorted(labels.tolist()) == list(range(150))
        for features, y in batches:
            width = features["token_ids"].shape[1]
            assert width <= 32 and (padding != "fixed" or width == 32)
            lengths = np.minimum([len(texts[i].split()) + 2 for i in y.numpy()], 32)
            np.testing.assert_array_equal(features["padding_mask"].numpy().sum(1), lengths)
