"""The WordPiece step: duplicate and empty vocabulary lines behave as in transformers, with both backends."""
from __future__ import annotations

import json

import pytest

from ptft_keras.data.tokenizer import Tokenizer

transformers = pytest.importorskip("transformers")


@pytest.mark.parametrize("backend", ["tf_text", "core"])
def test_text_that_spells_a_placeholder_is_not_a_duplicate_token(tmp_path, backend):
    """tf-text needs unique tokens, so an earlier duplicate ("##s" at 6) and an empty line (9) become
    placeholders; a text spelling one (U+FFFFE + "6" was one) must still give transformers' ids."""
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "##s", "b", "##s", "", "c"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True,
                                                                "tokenizer_class": "BertTokenizer"}))
    texts = ["a \U000FFFFE6 b", "\U000FFFFE9", "\U000FFFFD6 as", "\U000FFFFD9c", "bs as"]
    expected = transformers.BertTokenizer.from_pretrained(tmp_path)(texts, add_special_tokens=False)["input_ids"]
    assert Tokenizer.from_pretrained(tmp_path, wordpiece_backend=backend).tokenize(texts).to_list() == expected
    assert expected[-1] == [7, 8, 5, 8]  # the last "##s" wins, as in transformers
