"""WordPiece vocabulary training: specials first, the requested size, and few [UNK]s on its own corpus."""
from __future__ import annotations

import doctest
import random
from pathlib import Path

import numpy as np
import pytest

from ptft_keras.data.tokenizer import Tokenizer
from ptft_keras.data import vocab
from ptft_keras.data.vocab import BERT_SPECIAL_TOKENS, train_wordpiece_vocabulary, write_tokenizer
from ptft_keras.errors import ConfigError, DataError

pytest.importorskip("tokenizers")

SYLLABLES = ["ka", "lo", "mi", "nu", "pe", "ra", "si", "to", "ve", "zu", "qua", "ter", "ing", "ed", "s", "é"]


def generated_corpus(rows: int = 1500, seed: int = 0) -> list[str]:
    """Sentences of made-up words (Zipf-like word frequencies), with capitals and punctuation."""
    rng = random.Random(seed)
    words = ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))) for _ in range(400)]
    weights = [1 / (rank + 1) for rank in range(len(words))]
    sentences = []
    for _ in range(rows):
        sentence = " ".join(rng.choices(words, weights, k=rng.randint(4, 12)))
        sentences.append(sentence.capitalize() + rng.choice([".", "!", "?", ", right."]))
    return sentences


@pytest.fixture(scope="module")
def corpus():
    return generated_corpus()


@pytest.fixture(scope="module")
def vocabulary(corpus):
    return train_wordpiece_vocabulary(corpus, vocab_size=300)


def test_specials_first_requested_size_unique(vocabulary):
    assert vocabulary[:5] == list(BERT_SPECIAL_TOKENS)
    assert len(vocabulary) == 300
    assert len(set(vocabulary)) == len(vocabulary)
    assert any(token.startswith("##") for token in vocabulary)
    assert all(token == token.lower() for token in vocabulary[5:])


def test_tokenizes_its_corpus_with_few_unknowns(vocabulary, corpus, tmp_path):
    tok = write_tokenizer(vocabulary, tmp_path)
    assert (tmp_path / "vocab.txt").read_text(encoding="utf-8").splitlines() == vocabulary
    ids = tok.tokenize(corpus).flat_values.numpy()
    assert tok.pad_token_id == 0 and tok.vocab_size == 300
    assert ids.size > 10_000
    assert np.mean(ids == tok.unk_token_id) < 0.01
    # Most pieces start a word: the vocabulary learnt whole words, not just characters.
    assert np.mean(tok.continuation_mask[ids]) < 0.5


def test_small_corpus_gives_fewer_tokens():
    vocabulary = train_wordpiece_vocabulary(["tiny corpus", "a tiny one"], vocab_size=5000, min_frequency=1)
    assert vocabulary[:5] == list(BERT_SPECIAL_TOKENS)
    assert 5 < len(vocabulary) < 100


def test_trains_from_files_and_keeps_case_when_asked(corpus, tmp_path):
    paths = []
    for index in range(2):
        path = tmp_path / f"part{index}.txt"
        path.write_text("\n".join(corpus[index::2]), encoding="utf-8")
        paths.append(path)
    cased = train_wordpiece_vocabulary(paths, vocab_size=200, lowercase=False)
    assert len(cased) == 200
    assert any(token[:1].isupper() for token in cased[5:])
    tok = Tokenizer.from_vocabulary(cased, lowercase=False)
    assert np.mean(tok.tokenize(corpus[:200]).flat_values.numpy() == tok.unk_token_id) < 0.01
    from_one_path = train_wordpiece_vocabulary(str(paths[0]), vocab_size=200, lowercase=False)
    assert len(from_one_path) == 200


def test_bad_requests():
    with pytest.raises(DataError, match="empty"):
        train_wordpiece_vocabulary(["", "   "], vocab_size=100)
    with pytest.raises(ConfigError, match="vocab_size"):
        train_wordpiece_vocabulary(["some text"], vocab_size=5)
    with pytest.raises(DataError, match="does not exist") as error:
        train_wordpiece_vocabulary([Path("/nonexistent/corpus.txt")], vocab_size=100)
    assert error.value.path == "/nonexistent/corpus.txt"


def test_docstring_examples():
    result = doctest.testmod(vocab, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
