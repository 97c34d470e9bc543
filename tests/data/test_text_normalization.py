"""The in-graph BERT pre-tokenizer splits every code point as transformers' BertTokenizer does.

transformers' `BertTokenizer` runs the `tokenizers` crate, whose character classes come from older
Unicode tables than Python's `unicodedata` (and whose lowercasing from newer ones): U+061D ARABIC END
OF TEXT MARK is punctuation to `unicodedata` and a letter to the crate. These tests hold our tables
to the crate on all 1,112,064 code points.
"""
from __future__ import annotations

import doctest
import json
import unicodedata

import numpy as np
import pytest
import tensorflow as tf

from ptft_keras.data import text_normalization
from ptft_keras.data.text_normalization import BertPreTokenizer, codepoint_table
from ptft_keras.data.tokenizer import Tokenizer

transformers = pytest.importorskip("transformers")
legacy_bert = pytest.importorskip("transformers.models.bert.tokenization_bert_legacy")

ALL_CHARS = [chr(cp) for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]
# (lowercase, strip_accents, tokenize_chinese_chars), as BertTokenizer's do_lower_case, strip_accents, ...
# The uncased default is the quick check; the other settings take about 15 s each (marked slow).
SETTINGS = [(True, None, True)] + [pytest.param(*settings, marks=pytest.mark.slow) for settings in
                                   [(False, None, True), (False, True, True), (True, False, True), (True, None, False)]]


def bert_tokenizer(lowercase=True, strip_accents=None, tokenize_chinese_chars=True, vocab=None):
    return transformers.BertTokenizer(vocab=vocab, do_lower_case=lowercase, strip_accents=strip_accents,
                                      tokenize_chinese_chars=tokenize_chinese_chars)


def reference_words(hf, text: str) -> list[str]:
    """The words BertTokenizer splits `text` into, before WordPiece."""
    backend = hf.backend_tokenizer
    return [word for word, _ in backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(text))]


def decoded(words) -> list[str]:
    return [word.decode("utf-8") for word in words]


def probe_texts(chars, per_text=4000):
    """Each character between "a" and "b", `per_text` such words to a text."""
    chunks = [chars[i:i + per_text] for i in range(0, len(chars), per_text)]
    return chunks, [" ".join(f"a{c}b" for c in chunk) for chunk in chunks]


@pytest.mark.parametrize("lowercase, strip_accents, tokenize_chinese_chars", SETTINGS)
def test_every_code_point_splits_like_bert_tokenizer(lowercase, strip_accents, tokenize_chinese_chars):
    """All code points but surrogates, assigned or not, each as "a<c>b": the same words."""
    hf = bert_tokenizer(lowercase, strip_accents, tokenize_chinese_chars)
    splitter = BertPreTokenizer(lowercase=lowercase, strip_accents=strip_accents,
                                tokenize_chinese_chars=tokenize_chinese_chars)
    chunks, texts = probe_texts(ALL_CHARS)
    got = splitter(tf.constant(texts)).to_list()
    wrong = [i for i, text in enumerate(texts) if decoded(got[i]) != reference_words(hf, text)]
    culprits = [hex(ord(c)) for i in wrong[:3]
                for c, words in zip(chunks[i], splitter([f"a{c}b" for c in chunks[i]]).to_list())
                if decoded(words) != reference_words(hf, f"a{c}b")]
    assert not wrong, culprits[:20]


def isolated_by_table(table) -> np.ndarray:
    """For every code point, whether `table` makes it a word of its own (" c ")."""
    runs = np.searchsorted(table.starts, np.arange(0x110000), side="right") - 1
    return table.modes[runs] == text_normalization._ISOLATE


def test_punctuation_table_is_bert_tokenizers_not_unicodedatas():
    """The punctuation class of every code point, as a table: ours equals what BertTokenizer
    splits off; Python's `unicodedata` (transformers' legacy tokenizer) differs on new characters."""
    ours = isolated_by_table(codepoint_table(False, False, False, 0))
    hf = bert_tokenizer(lowercase=False, strip_accents=False, tokenize_chinese_chars=False)
    text = "x".join(ALL_CHARS)
    theirs = np.zeros(0x110000, bool)
    for word, (start, end) in hf.backend_tokenizer.pre_tokenizer.pre_tokenize_str(text):
        if end - start == 1 and word != "x":
            theirs[ord(word)] = True
    assert np.array_equal(ours, theirs), np.flatnonzero(ours != theirs)[:20]
    by_unicodedata = np.zeros(0x110000, bool)
    by_unicodedata[[ord(c) for c in ALL_CHARS if legacy_bert._is_punctuation(c)]] = True
    differ = set(np.flatnonzero(by_unicodedata != theirs).tolist())
    if unicodedata.unidata_version >= "14":  # U+061D is new in Unicode 14
        assert 0x061D in differ
    assert not ours[0x061D] and ours[ord("!")] and ours[0x3002] and ours[ord("$")]


@pytest.fixture(scope="module")
def disputed_chars():
    """Assigned code points where transformers' legacy tokenizer (Python's `unicodedata`) splits
    "a<c>b" into other words than BertTokenizer (the crate), with settings (True, None); plus
    code points `unicodedata` does not know that BertTokenizer changes (newer lowercase pairs)."""
    hf, legacy = bert_tokenizer(), legacy_bert.BasicTokenizer(do_lower_case=True)
    assigned = [c for c in ALL_CHARS if unicodedata.category(c) != "Cn"]
    chunks, texts = probe_texts(assigned)
    disputed = [c for chunk, text in zip(chunks, texts) if legacy.tokenize(text) != reference_words(hf, text)
                for c in chunk if legacy.tokenize(f"a{c}b") != reference_words(hf, f"a{c}b")]
    unknown = [c for c in ALL_CHARS if unicodedata.category(c) == "Cn"]
    chunks, texts = probe_texts(unknown)
    disputed += [c for chunk, text in zip(chunks, texts) if reference_words(hf, text) != text.split()
                 for c in chunk if reference_words(hf, f"a{c}b") != [f"a{c}b"]]
    return disputed


def test_ids_equal_bert_tokenizer_where_unicode_versions_disagree(disputed_chars, tmp_path):
    """End to end (ids and offsets) on the disputed code points, with a vocabulary holding every
    normalized character as a piece and as a "##" piece, so that a different split or a different
    normalized character gives different ids."""
    hf = bert_tokenizer()
    if unicodedata.unidata_version >= "14":
        assert "\u061d" in disputed_chars
    assert len(disputed_chars) > 100
    texts = [" ".join(f"a{c}b{c}{c}" for c in disputed_chars[i:i + 200]) for i in range(0, len(disputed_chars), 200)]
    texts += ["abc\u061ddef", "\u061d!\u061d"]
    pieces = sorted({c for text in texts for word in reference_words(hf, text) for c in word})
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + pieces + ["##" + c for c in pieces]
    (tmp_path / "vocab.txt").write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True,
                                                                "tokenizer_class": "BertTokenizer"}))
    ours = Tokenizer.from_pretrained(tmp_path)
    theirs = transformers.BertTokenizer.from_pretrained(tmp_path)
    expected = theirs(texts, add_special_tokens=False, return_offsets_mapping=True)
    ids, starts, ends = ours.tokenize_with_offsets(texts)
    for index, text in enumerate(texts):
        assert ids[index].numpy().tolist() == expected["input_ids"][index], repr(text)
        spans = list(zip(starts[index].numpy().tolist(), ends[index].numpy().tolist()))
        assert spans == [tuple(span) for span in expected["offset_mapping"][index]], repr(text)
    # The example: one word for BertTokenizer and for us (the legacy tokenizer splits it in three).
    pieces_of_one_word = ("a", "##b", "##c", "##\u061d", "##d", "##e", "##f")
    assert ids[-2].numpy().tolist() == [vocabulary.index(piece) for piece in pieces_of_one_word]
    assert legacy_bert.BasicTokenizer().tokenize("abc\u061ddef") == ["abc", "\u061d", "def"]


def test_normalize_char_is_what_bert_tokenizer_makes_of_one_character():
    hf = bert_tokenizer()
    for char in ["É", "!", "\u061d", "北", "\u3000", "\x00", "Σ", "\U00010d56", "ﬁ", "가", "|", "\U000f0000"]:
        out = text_normalization.normalize_char(char, lowercase=True, strip_accents=True, tokenize_chinese_chars=True)
        assert f"a{out}b".split() == reference_words(hf, f"a{char}b"), repr(char)


def test_docstring_examples():
    result = doctest.testmod(text_normalization, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
