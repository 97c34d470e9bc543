"""WordPiece vocabulary training: specials first, the requested size, few [UNK]s on its own corpus, and the
same vocab.txt from the same corpus in every run and process."""
from __future__ import annotations

import doctest
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from ptft_keras.data.tokenizer import Tokenizer
from ptft_keras.data import vocab
from ptft_keras.data.vocab import BERT_SPECIAL_TOKENS, learn_wordpiece, train_wordpiece_vocabulary, write_tokenizer
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


TRAIN_IN_A_PROCESS = """
import sys
from ptft_keras.data.vocab import train_wordpiece_vocabulary
corpus, out = sys.argv[1], sys.argv[2]
for name, settings in {"default": {}, "small_alphabet": {"limit_alphabet": 12, "vocab_size": 120},
                       "cased": {"lowercase": False, "min_frequency": 1}}.items():
    vocabulary = train_wordpiece_vocabulary(corpus, **{"vocab_size": 400, **settings})
    with open(f"{out}/{name}.txt", "w", encoding="utf-8") as f:
        f.write("\\n".join(vocabulary) + "\\n")
"""


def test_same_corpus_gives_the_identical_vocab_file_in_separate_processes(corpus, tmp_path):
    """Two processes with different hash seeds (and parallelism settings): byte-identical vocab files.
    The corpus has many ties (words, characters and pairs of equal counts), which the tokenizers
    crate's trainer breaks differently in each process."""
    path = tmp_path / "corpus.txt"
    extra = ["Ça coûte 5 € — naïve Ærø ß ĳ", "北京 東京 서울", "x y z q"] * 3
    path.write_text("\n".join(corpus + extra) + "\n", encoding="utf-8")
    outputs = []
    for seed, parallel in (("1", "true"), ("2024", "false")):
        out = tmp_path / f"run{seed}"
        out.mkdir()
        env = {**os.environ, "PYTHONHASHSEED": seed, "TOKENIZERS_PARALLELISM": parallel}
        subprocess.run([sys.executable, "-c", TRAIN_IN_A_PROCESS, str(path), str(out)], env=env, check=True,
                       timeout=300)
        outputs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert set(outputs[0]) == {"default.txt", "small_alphabet.txt", "cased.txt"}
    assert outputs[0] == outputs[1]
    default = outputs[0]["default.txt"].decode("utf-8").splitlines()
    assert len(default) == 400 and default[:5] == list(BERT_SPECIAL_TOKENS)
    assert train_wordpiece_vocabulary(path, vocab_size=400) == default  # and in this process too


def test_the_order_of_the_corpus_does_not_matter(corpus):
    shuffled = list(corpus)
    random.Random(1).shuffle(shuffled)
    assert train_wordpiece_vocabulary(shuffled, vocab_size=300) == train_wordpiece_vocabulary(corpus, vocab_size=300)


def test_ties_are_broken_by_a_fixed_rule():
    """Equal counts everywhere: characters in code point order, then the pair of earlier pieces first
    (a ##b, then b ##a, then c ##d)."""
    counts = Counter({"ab": 3, "cd": 3, "ba": 3})
    assert learn_wordpiece(counts, 10, special_tokens=["[UNK]"], min_frequency=1) == [
        "[UNK]", "a", "b", "c", "d", "##a", "##b", "##d", "ab", "ba"]
    assert learn_wordpiece(Counter(dict(reversed(list(counts.items())))), 10, special_tokens=["[UNK]"],
                           min_frequency=1)[-2:] == ["ab", "ba"]


def test_limit_alphabet_keeps_the_most_frequent_characters_ties_by_code_point():
    counts = Counter({"aaaa": 1, "b": 2, "c": 2, "d": 2, "e": 1})
    vocabulary = learn_wordpiece(counts, 9, special_tokens=["[UNK]"], limit_alphabet=3)
    assert vocabulary[:4] == ["[UNK]", "a", "b", "c"] and "##a" in vocabulary and "d" not in vocabulary


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
