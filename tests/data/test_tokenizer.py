"""The in-graph tokenizer gives transformers' BertTokenizerFast ids, loads/saves HF directories, and fails clearly."""
from __future__ import annotations

import doctest
import importlib
import json
import time
import unicodedata

import numpy as np
import pytest
import tensorflow as tf

from ptft_keras.data import tokenizer_files
from ptft_keras.data.text_normalization import BertPreTokenizer
from ptft_keras.data.tokenizer import Tokenizer
from ptft_keras.errors import CheckpointError, ConfigError
from ptft_keras.testing.unicode_samples import VARIED_PAIRS, VARIED_TEXTS

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

# "##s" is in twice, as in some real vocabularies: transformers uses the last id.
CASED_VOCAB = (
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    + [chr(c) for c in range(33, 127)] + ["##" + chr(c) for c in range(33, 127)]
    + ["Café", "Paris", "Hello", "hello", "world", "World", "the", "The", "un", "##aff", "##able", "##s", "##ing",
       "é", "##é", "ö", "##ö", "İ", "Σ", "北", "京", "한", "🍕", "Ｆ", "##ＵＬＬ", "Straße", "##ß",
       "supercal", "##ifrag"]
)


@pytest.fixture(scope="module")
def uncased(minilm_path):
    return Tokenizer.from_pretrained(minilm_path)


@pytest.fixture(scope="module")
def hf_uncased(minilm_path):
    return transformers.BertTokenizerFast.from_pretrained(minilm_path)


@pytest.fixture(scope="module")
def cased_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cased")
    (directory / "vocab.txt").write_text("\n".join(CASED_VOCAB) + "\n", encoding="utf-8")
    (directory / "tokenizer_config.json").write_text(json.dumps(
        {"do_lower_case": False, "tokenizer_class": "BertTokenizer", "model_max_length": 64}), encoding="utf-8")
    return directory


def hf_pack(hf, firsts, seconds=None, **kwargs):
    out = hf(firsts, seconds, return_tensors="np", **kwargs)
    return {"token_ids": out["input_ids"], "segment_ids": out["token_type_ids"], "padding_mask": out["attention_mask"]}


def assert_same_features(ours, theirs):
    assert set(ours) == set(theirs)
    for name in theirs:
        assert ours[name].dtype == tf.int32, name
        np.testing.assert_array_equal(ours[name].numpy(), theirs[name], err_msg=name)


# ----------------------------------------------------------------------------------- parity
def test_ids_equal_transformers_on_varied_texts(uncased, hf_uncased):
    expected = hf_uncased(VARIED_TEXTS, add_special_tokens=False)["input_ids"]
    got = uncased.tokenize(VARIED_TEXTS).to_list()
    for text, ours, theirs in zip(VARIED_TEXTS, got, expected):
        assert ours == theirs, repr(text)
    assert uncased.tokenize(["héllo"]).to_list() == [hf_uncased("hello", add_special_tokens=False)["input_ids"]]


def test_ids_equal_transformers_on_a_cased_vocabulary(cased_dir):
    hf = transformers.BertTokenizerFast.from_pretrained(cased_dir)
    ours = Tokenizer.from_pretrained(cased_dir)
    assert not ours.lowercase and ours.model_max_length == 64
    expected = hf(VARIED_TEXTS, add_special_tokens=False)["input_ids"]
    got = ours.tokenize(VARIED_TEXTS).to_list()
    pieces = [ours.id_to_token(i) for i in ours.tokenize(["Hello hello Café"]).to_list()[0]]
    assert pieces == ["Hello", "hello", "Café"]
    for text, mine, theirs in zip(VARIED_TEXTS, got, expected):
        assert mine == theirs, repr(text)
    assert_same_features(ours(VARIED_TEXTS, sequence_length=24), hf_pack(hf, VARIED_TEXTS, max_length=24,
                                                                      padding="max_length", truncation=True))


@pytest.mark.parametrize("lowercase, strip_accents", [(True, None), (False, None), (False, True), (True, False)])
def test_every_stable_code_point_normalizes_like_transformers(lowercase, strip_accents):
    """All code points assigned since Unicode 3.2 with an unchanged category (~230k characters)
    split into the same words as the tokenizers crate, 1,000 characters per text."""
    old = unicodedata.ucd_3_2_0
    chars = [chr(cp) for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF
             and old.category(chr(cp)) != "Cn" and old.category(chr(cp)) == unicodedata.category(chr(cp))]
    chunks = [chars[i:i + 1000] for i in range(0, len(chars), 1000)]
    texts = [" ".join(f"a{c}b" for c in chunk) for chunk in chunks]
    normalizer = tokenizers.normalizers.BertNormalizer(lowercase=lowercase, strip_accents=strip_accents)
    pre_tokenizer = tokenizers.pre_tokenizers.BertPreTokenizer()

    def reference(text):
        return [w for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))]

    splitter = BertPreTokenizer(lowercase=lowercase, strip_accents=strip_accents)
    got = [[w.decode("utf-8") for w in row] for row in splitter(tf.constant(texts)).to_list()]
    wrong = [index for index, text in enumerate(texts) if got[index] != reference(text)]
    culprits = [hex(ord(c)) for index in wrong[:3] for c in chunks[index]
                if splitter([f"a{c}b"]).to_list()[0] != [w.encode() for w in reference(f"a{c}b")]]
    assert len(chars) > 200_000 and not wrong, culprits[:20]


@pytest.mark.parametrize("sequence_length", [8, 16, 128])
def test_pairs_pack_like_transformers(uncased, hf_uncased, sequence_length):
    firsts, seconds = [p[0] for p in VARIED_PAIRS], [p[1] for p in VARIED_PAIRS]
    ours = uncased(firsts, seconds, sequence_length=sequence_length)
    theirs = hf_pack(hf_uncased, firsts, seconds, max_length=sequence_length, padding="max_length",
                     truncation="longest_first")
    assert ours["token_ids"].shape.as_list() == [len(firsts), sequence_length]
    assert_same_features(ours, theirs)


def test_dynamic_padding_pads_to_the_longest_row_like_transformers(uncased, hf_uncased):
    texts = VARIED_TEXTS + [" ".join(["word"] * 600)]
    ours = uncased(texts)
    theirs = hf_pack(hf_uncased, texts, padding="longest", truncation=True)
    assert ours["token_ids"].shape[1] == uncased.model_max_length == 512
    assert_same_features(ours, theirs)
    short = uncased(["a b", "c"])
    assert short["token_ids"].numpy().tolist() == [[101, 1037, 1038, 102], [101, 1039, 102, 0]]


@pytest.mark.parametrize("truncation", ["longest_first", "only_first", "only_second"])
def test_truncation_lengths_match_transformers(uncased, hf_uncased, truncation):
    for length in (5, 6, 7, 8, 12):
        firsts, seconds = [], []
        for a in range(11):
            for b in range(11):
                first, second = " ".join(["x"] * a), " ".join(["y"] * b)
                try:  # transformers refuses "only_*" when the other side alone is too long
                    hf_uncased([first], [second], max_length=length, truncation=truncation)
                except Exception:
                    continue
                firsts.append(first)
                seconds.append(second)
        ours = uncased(firsts, seconds, sequence_length=length, truncation=truncation)
        theirs = hf_pack(hf_uncased, firsts, seconds, max_length=length, padding="max_length", truncation=truncation)
        assert_same_features(ours, theirs)


def test_words_are_transformers_words(uncased, hf_uncased):
    encoding = hf_uncased(VARIED_TEXTS, add_special_tokens=False)
    words = uncased.tokenize(VARIED_TEXTS, return_words=True)
    assert words.ragged_rank == 2
    for index, row in enumerate(words.to_list()):
        grouped = {}
        for word, token in zip(encoding.word_ids(index), encoding["input_ids"][index]):
            grouped.setdefault(word, []).append(token)
        assert row == [grouped[w] for w in sorted(grouped)], repr(VARIED_TEXTS[index])
    np.testing.assert_array_equal(words.merge_dims(1, 2).flat_values, uncased.tokenize(VARIED_TEXTS).flat_values)


# Beyond the shared sample: repeated and adjacent special tokens, sentinel characters typed by a user.
OFFSET_TEXTS = VARIED_TEXTS + [a for pair in VARIED_PAIRS for a in pair] + [
    "Zürich's crème brûlée", "x[MASK][MASK]y[SEP]", "\U000F0000[MASK]\U000F0001 z", "한국어 İstanbul ﬁne ½ ™"]


def assert_same_offsets(ours, hf, texts):
    ids, starts, ends = ours.tokenize_with_offsets(texts)
    encoding = hf(texts, add_special_tokens=False, return_offsets_mapping=True)
    assert ids.dtype == starts.dtype == ends.dtype == tf.int32
    for index, text in enumerate(texts):
        assert ids[index].numpy().tolist() == encoding["input_ids"][index], repr(text)
        spans = list(zip(starts[index].numpy().tolist(), ends[index].numpy().tolist()))
        assert spans == [tuple(span) for span in encoding["offset_mapping"][index]], repr(text)
    assert ids.to_list() == ours.tokenize(texts).to_list()


@pytest.mark.parametrize("settings", [{}, {"strip_accents": False}, {"lowercase": False}])
def test_offsets_equal_transformers_on_varied_texts(minilm_path, settings):
    """Uncased (accents stripped), lower-cased with accents kept ("İ" grows a dot), and cased."""
    hf_settings = {"do_lower_case": settings["lowercase"]} if "lowercase" in settings else settings
    hf = transformers.BertTokenizerFast.from_pretrained(minilm_path, **hf_settings)
    assert_same_offsets(Tokenizer.from_pretrained(minilm_path, **settings), hf, OFFSET_TEXTS)


@pytest.mark.parametrize("strip_accents", [None, False])
def test_offsets_of_each_normalized_character_equal_transformers(strip_accents, tmp_path):
    """With a vocabulary holding every normalized character as a piece (and a "##" piece), each
    piece is one normalized character: its span is the alignment transformers keeps for it. All
    stable characters that normalization rewrites to something else (not just drops or isolates),
    and every 40th of the rest."""
    old = unicodedata.ucd_3_2_0
    stable = [chr(cp) for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF
              and old.category(chr(cp)) != "Cn" and old.category(chr(cp)) == unicodedata.category(chr(cp))]
    normalizer = tokenizers.normalizers.BertNormalizer(lowercase=True, strip_accents=strip_accents)

    def content(text):
        return "".join(normalizer.normalize_str(text).split())

    chars = [c for i, c in enumerate(stable) if content(c) not in ("", c) or i % 40 == 0]
    pieces = sorted({c for text in chars for c in content(f"a{text}b")})
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + pieces + ["##" + c for c in pieces]
    (tmp_path / "vocab.txt").write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"do_lower_case": True, "strip_accents": strip_accents, "tokenizer_class": "BertTokenizer"}))
    texts = [" ".join(f"a{c}b{c}{c}" for c in chars[i:i + 1000]) for i in range(0, len(chars), 1000)]
    assert len(chars) > 5_000 and len(pieces) > 1_000
    assert_same_offsets(Tokenizer.from_pretrained(tmp_path), transformers.BertTokenizerFast.from_pretrained(tmp_path),
                        texts)


def test_offsets_with_words_scalars_and_max_chars(uncased):
    text = "Crème brûlée [MASK] 🍕!"
    ids, starts, ends = uncased.tokenize_with_offsets([text], return_words=True)
    assert ids.ragged_rank == starts.ragged_rank == ends.ragged_rank == 2
    assert ids.to_list() == uncased.tokenize([text], return_words=True).to_list()
    words = [text[min(s):max(e)] for s, e in zip(starts.to_list()[0], ends.to_list()[0])]
    assert words == ["Crème", "brûlée", "[MASK]", "🍕", "!"]
    single = uncased.tokenize_with_offsets(tf.constant(text))
    flat = uncased.tokenize_with_offsets([text])
    for one, batched in zip(single, flat):
        assert one.numpy().tolist() == batched.to_list()[0]
    traced = tf.function(lambda t: uncased.tokenize_with_offsets(t))(tf.constant([text]))
    assert [t.to_list() for t in traced] == [t.to_list() for t in flat]
    # Code points, not bytes: "Crème br" is the first 8 characters.
    cut_ids, cut_starts, cut_ends = uncased.tokenize_with_offsets([text], max_chars=8)
    assert cut_ids.to_list() == uncased.tokenize(["Crème br"]).to_list()
    assert (cut_starts.to_list(), cut_ends.to_list()) == ([[0, 2, 6]], [[2, 5, 8]])


def test_special_token_attributes_match_transformers(uncased, hf_uncased):
    for name in ("cls_token_id", "sep_token_id", "pad_token_id", "mask_token_id", "unk_token_id"):
        assert getattr(uncased, name) == getattr(hf_uncased, name), name
    assert uncased.special_token_ids == sorted(hf_uncased.all_special_ids)
    assert uncased.vocab_size == len(hf_uncased) == 30522
    mask = uncased.continuation_mask
    assert mask.dtype == bool and mask.shape == (30522,)
    assert mask[uncased.token_to_id("##s")] and not mask[uncased.token_to_id("s")]
    assert mask.sum() == sum(t.startswith("##") for t in uncased.vocabulary)


# ----------------------------------------------------------------------------------- graph use
def test_works_in_tf_data_and_tf_function(uncased):
    texts = VARIED_TEXTS[:12]
    eager = uncased(texts, sequence_length=16)
    batched = next(iter(tf.data.Dataset.from_tensor_slices(texts).batch(12)
                        .map(lambda t: uncased(t, sequence_length=16))))
    per_row = list(tf.data.Dataset.from_tensor_slices(texts).map(lambda t: uncased(t, sequence_length=16)))
    traced = tf.function(lambda t: uncased.tokenize(t))(tf.constant(texts))
    for name in eager:
        np.testing.assert_array_equal(batched[name], eager[name])
        np.testing.assert_array_equal(np.stack([row[name] for row in per_row]), eager[name])
    assert batched["token_ids"].shape.as_list() == [12, 16]
    assert traced.to_list() == uncased.tokenize(texts).to_list()
    assert uncased.tokenize("héllo there").numpy().tolist() == [7592, 2045]


def test_pack_takes_ragged_ids(uncased):
    out = uncased.pack(tf.ragged.constant([[5, 6, 7], []]), tf.ragged.constant([[8], [9, 10]]), sequence_length=7)
    assert out["token_ids"].numpy().tolist() == [[101, 5, 6, 7, 102, 8, 102], [101, 102, 9, 10, 102, 0, 0]]
    assert out["segment_ids"].numpy().tolist() == [[0, 0, 0, 0, 0, 1, 1], [0, 0, 1, 1, 1, 0, 0]]
    assert out["padding_mask"].numpy().tolist() == [[1] * 7, [1, 1, 1, 1, 1, 0, 0]]


# ----------------------------------------------------------------------------------- files
def test_save_pretrained_loads_in_transformers_and_back(uncased, hf_uncased, tmp_path):
    uncased.save_pretrained(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} >= {"vocab.txt", "tokenizer_config.json", "special_tokens_map.json"}
    reloaded_hf = transformers.BertTokenizerFast.from_pretrained(tmp_path)
    reloaded = Tokenizer.from_pretrained(tmp_path)
    expected = hf_uncased(VARIED_TEXTS, add_special_tokens=False)["input_ids"]
    assert reloaded_hf(VARIED_TEXTS, add_special_tokens=False)["input_ids"] == expected
    assert reloaded.tokenize(VARIED_TEXTS).to_list() == expected
    assert reloaded.get_config() == uncased.get_config()


def test_distilbert_has_no_segment_ids_and_round_trips(minilm_path, tmp_path):
    tok = Tokenizer.from_pretrained(minilm_path, model_type="distilbert")
    out = tok(["a b"], ["c"], sequence_length=8)
    assert set(out) == {"token_ids", "padding_mask"}
    tok.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["tokenizer_class"] == "DistilBertTokenizer"
    assert Tokenizer.from_pretrained(tmp_path).model_type == "distilbert"
    hf = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert "DistilBert" in type(hf).__name__
    assert hf(["a b"], ["c"], max_length=8, padding="max_length")["input_ids"] == out["token_ids"].numpy().tolist()


def test_get_config_rebuilds_the_same_tokenizer(cased_dir):
    tok = Tokenizer.from_pretrained(cased_dir)
    config = tok.get_config()
    json.dumps(config)
    again = Tokenizer.from_config(config)
    assert again.tokenize(VARIED_TEXTS).to_list() == tok.tokenize(VARIED_TEXTS).to_list()
    assert not again.lowercase and again.model_max_length == 64


def test_from_vocabulary_accepts_a_list_or_a_file(tmp_path):
    (tmp_path / "v.txt").write_text("\n".join(CASED_VOCAB) + "\n", encoding="utf-8")
    from_file = Tokenizer.from_vocabulary(tmp_path / "v.txt", lowercase=False, model_max_length=32)
    from_list = Tokenizer.from_vocabulary(CASED_VOCAB, lowercase=False, model_max_length=32)
    assert from_file.vocabulary == from_list.vocabulary == CASED_VOCAB
    assert from_file.tokenize(["Hello unaffable"]).to_list() == [[CASED_VOCAB.index(t) for t in
                                                                  ("Hello", "un", "##aff", "##able")]]


def test_missing_tokenizer_config_falls_back_to_config_json_and_defaults(minilm_path, hf_uncased, tmp_path):
    (tmp_path / "vocab.txt").write_bytes((minilm_path / "vocab.txt").read_bytes())
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "distilbert", "max_position_embeddings": 256}))
    tok = Tokenizer.from_pretrained(tmp_path)
    assert (tok.model_type, tok.model_max_length, tok.lowercase) == ("distilbert", 256, True)
    assert tok.tokenize(VARIED_TEXTS).to_list() == hf_uncased(VARIED_TEXTS, add_special_tokens=False)["input_ids"]
    (tmp_path / "config.json").unlink()
    assert Tokenizer.from_pretrained(tmp_path).model_type == "bert"


# ----------------------------------------------------------------------------------- errors
def test_missing_vocab_names_the_file(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="vocab.txt") as error:
        Tokenizer.from_pretrained(tmp_path)
    assert error.value.path == str(tmp_path / "vocab.txt")


@pytest.mark.parametrize("content, message", [(b"", "empty"), (b"\n\n", "empty"), (b"[UNK]\n\xff\xfe\n", "UTF-8")])
def test_unusable_vocab_files(tmp_path, content, message):
    (tmp_path / "vocab.txt").write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as error:
        Tokenizer.from_pretrained(tmp_path)
    assert error.value.path.endswith("vocab.txt")


def test_a_different_tokenizer_class_is_refused(minilm_path, tmp_path):
    (tmp_path / "vocab.txt").write_bytes((minilm_path / "vocab.txt").read_bytes())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "XLMRobertaTokenizer"}))
    with pytest.raises(CheckpointError, match="XLMRobertaTokenizer") as error:
        Tokenizer.from_pretrained(tmp_path)
    assert error.value.field == "tokenizer_class" and error.value.path.endswith("tokenizer_config.json")
    (tmp_path / "tokenizer_config.json").unlink()
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "roberta"}))
    with pytest.raises(CheckpointError, match="roberta") as error:
        Tokenizer.from_pretrained(tmp_path)
    assert error.value.field == "model_type" and error.value.path.endswith("config.json")
    assert Tokenizer.from_pretrained(tmp_path, model_type="bert").model_type == "bert"


def test_broken_json_names_file_and_line(minilm_path, tmp_path):
    (tmp_path / "vocab.txt").write_bytes((minilm_path / "vocab.txt").read_bytes())
    (tmp_path / "tokenizer_config.json").write_text('{\n  "do_lower_case": true,\n  oops\n}')
    with pytest.raises(CheckpointError, match="JSON") as error:
        Tokenizer.from_pretrained(tmp_path)
    assert error.value.line == 3


def test_special_token_missing_from_vocabulary():
    with pytest.raises(CheckpointError, match="mask_token"):
        Tokenizer.from_vocabulary(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a"])
    tok = Tokenizer.from_vocabulary(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a"], mask_token="[UNK]")
    assert tok.mask_token_id == 1


def test_sequence_length_too_short(uncased):
    with pytest.raises(ConfigError, match=">= 2"):
        uncased(["a"], sequence_length=1)
    with pytest.raises(ConfigError, match=">= 3"):
        uncased(["a"], ["b"], sequence_length=2)
    assert uncased(["a"], sequence_length=2)["token_ids"].numpy().tolist() == [[101, 102]]
    with pytest.raises(ConfigError, match="truncation"):
        uncased(["a"], ["b"], truncation="longest")


def test_offline_hub_id_fails_fast_with_checkpoint_error(monkeypatch):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    start = time.monotonic()
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE") as error:
        Tokenizer.from_pretrained("some-org/surely-not-cached-model")
    assert time.monotonic() - start < 10
    assert error.value.path == "some-org/surely-not-cached-model"


def test_missing_local_directory(tmp_path):
    with pytest.raises(CheckpointError, match="no such directory"):
        Tokenizer.from_pretrained(tmp_path / "nope" / "deeper")
    (tmp_path / "vocab.txt").write_text("[UNK]\n")
    with pytest.raises(CheckpointError, match="from_vocabulary"):
        Tokenizer.from_pretrained(tmp_path / "vocab.txt")


def test_read_settings_prefers_tokenizer_config_and_special_tokens_map(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "max_position_embeddings": 128}))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"do_lower_case": False, "model_max_length": int(1e30), "mask_token": {"content": "<mask>"}}))
    (tmp_path / "special_tokens_map.json").write_text(json.dumps({"cls_token": "<s>"}))
    settings = tokenizer_files.read_settings(tmp_path)
    assert settings["lowercase"] is False and settings["model_max_length"] == 128
    assert settings["mask_token"] == "<mask>" and settings["cls_token"] == "<s>" and settings["sep_token"] == "[SEP]"


@pytest.mark.parametrize("name", ["text_normalization", "tokenizer", "tokenizer_files", "tokenizer_packing",
                                  "tokenizer_wordpiece"])
def test_docstring_examples(name):
    module = importlib.import_module(f"ptft_keras.data.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
