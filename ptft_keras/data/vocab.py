"""Train a WordPiece vocabulary on a corpus and turn it into a Tokenizer.

Words come from the same BERT normalization and splitting our `Tokenizer` applies (transformers'
`BertNormalizer` and `BertPreTokenizer`, from the `tokenizers` library), so a vocabulary trained
here covers what the tokenizer will see. The vocabulary is then learnt like the `tokenizers`
WordPiece trainer does it (the characters, then the most frequent pair of adjacent pieces merged
into a new piece, until the vocabulary is full), but in plain Python with every tie broken by a
fixed rule, so that the same corpus and settings give the identical vocab.txt (same tokens, same
order) in every run and process. The `tokenizers` trainer does not: its hash maps are seeded at
random, and ties between equally frequent characters and pairs go a different way in each process.
"""
from __future__ import annotations

import heapq
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from ptft_keras.data.sources import BadRows, read_lines
from ptft_keras.errors import ConfigError, DataError

if TYPE_CHECKING:
    from ptft_keras.data.tokenizer import Tokenizer

BERT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def _is_file(item) -> bool:
    if isinstance(item, os.PathLike):
        return True
    return isinstance(item, str) and "\n" not in item and len(item) < 4096 and os.path.isfile(item)


def _split_corpus(texts_or_files):
    """(texts, files): a path, a list of paths, or an iterable of texts (str or bytes)."""
    if isinstance(texts_or_files, (str, os.PathLike)):
        texts_or_files = [texts_or_files]
    items = list(texts_or_files)
    files = [str(item) for item in items if _is_file(item)]
    if files and len(files) != len(items):
        raise ConfigError("texts_or_files mixes file paths and texts; pass one kind")
    for path in files:
        if not Path(path).is_file():
            raise DataError("the corpus file does not exist", path=path)
    texts = [] if files else [item.decode("utf-8") if isinstance(item, bytes) else str(item) for item in items]
    return texts, files


def count_words(texts_or_files, *, lowercase: bool = True, strip_accents=None,
                tokenize_chinese_chars: bool = True, batch_lines: int = 1000) -> Counter:
    """How often each word (after BERT normalization and splitting) occurs in a corpus.

    `texts_or_files` as in `train_wordpiece_vocabulary`; files are read line by line (UTF-8,
    ``.gz`` decompressed), and a line that is not UTF-8 is an error naming the file and line.

    Example:
        >>> sorted(count_words(["Hello, hello!", "Héllo"]).items())
        [('!', 1), (',', 1), ('hello', 3)]
    """
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer

    normalizer = BertNormalizer(clean_text=True, handle_chinese_chars=tokenize_chinese_chars,
                                strip_accents=strip_accents, lowercase=lowercase)
    pre_tokenizer = BertPreTokenizer()
    texts, files = _split_corpus(texts_or_files)
    counts: Counter = Counter()

    def add(batch):  # one call per batch of lines: a line break is a word break anyway
        text = normalizer.normalize_str("\n".join(batch))
        counts.update(word for word, _ in pre_tokenizer.pre_tokenize_str(text))

    def lines():
        yield from texts
        for path in files:
            for _, line in read_lines(path, BadRows()):
                yield line

    batch = []
    for line in lines():
        batch.append(line)
        if len(batch) == batch_lines:
            add(batch)
            batch = []
    add(batch)
    return counts


def _alphabet(word_counts: Counter, limit: int | None) -> list[str]:
    """The characters of the corpus, the `limit` most frequent (ties: the lower code point) if
    there are more, in code point order."""
    frequency: Counter = Counter()
    for word, count in word_counts.items():
        for char in word:
            frequency[char] += count
    kept = sorted(frequency, key=lambda char: (-frequency[char], char))
    if limit is not None:
        kept = kept[:limit]
    return sorted(kept)


def _merged(symbols: list[int], pair: tuple[int, int], new: int) -> list[int]:
    """`symbols` with every occurrence of `pair` (left to right, not overlapping) replaced by `new`."""
    out, index = [], 0
    while index < len(symbols):
        if index + 1 < len(symbols) and (symbols[index], symbols[index + 1]) == pair:
            out.append(new)
            index += 2
        else:
            out.append(symbols[index])
            index += 1
    return out


def learn_wordpiece(word_counts: Counter, vocab_size: int, *, special_tokens=BERT_SPECIAL_TOKENS,
                    min_frequency: int = 2, limit_alphabet: int | None = 1000, prefix: str = "##") -> list[str]:
    """WordPiece vocabulary from word counts, deterministically: special tokens, the alphabet,
    `prefix` + each character that occurs inside a word (both in code point order), then merged
    pieces in merge order.

    Each step merges the adjacent pair of pieces with the highest count over the corpus (a tie
    goes to the pair of earlier pieces), until `vocab_size` tokens or no pair occurs
    `min_frequency` times. Words are ordered by (count, word) first, so nothing depends on the
    order the corpus was read in.

    Example:
        >>> learn_wordpiece(Counter({"hug": 10, "pug": 5, "hugs": 5}), 12, special_tokens=["[UNK]"])
        ['[UNK]', 'g', 'h', 'p', 's', 'u', '##g', '##s', '##u', '##ug', 'hug', 'pug']
    """
    alphabet = _alphabet(word_counts, limit_alphabet)
    known = set(alphabet)
    inside = sorted({c for word in word_counts for c in word[1:] if c in known})  # crate: those that occur
    vocabulary = list(dict.fromkeys([*special_tokens, *alphabet, *(prefix + c for c in inside)]))
    token_id = {token: index for index, token in enumerate(vocabulary)}
    ordered = sorted(word_counts.items(), key=lambda item: (-item[1], item[0]))
    words = [[token_id[c if i == 0 else prefix + c] for i, c in enumerate(word) if c in known] for word, _ in ordered]
    counts = [count for _, count in ordered]

    pair_counts: Counter = Counter()
    where: dict[tuple[int, int], set[int]] = {}
    for index, symbols in enumerate(words):
        for pair in zip(symbols, symbols[1:]):
            pair_counts[pair] += counts[index]
            where.setdefault(pair, set()).add(index)
    queue = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(queue)
    while len(vocabulary) < vocab_size and queue:
        negative_count, pair = heapq.heappop(queue)
        if pair_counts.get(pair, 0) != -negative_count:
            continue  # stale: the pair's count changed since, and its current count is queued
        if -negative_count < max(1, min_frequency):
            break
        first, second = vocabulary[pair[0]], vocabulary[pair[1]]
        token = first + (second[len(prefix):] if second.startswith(prefix) else second)
        if token not in token_id:
            token_id[token] = len(vocabulary)
            vocabulary.append(token)
        new = token_id[token]
        changed = set()
        for index in sorted(where.pop(pair, ())):
            symbols, count = words[index], counts[index]
            merged = _merged(symbols, pair, new)
            if len(merged) == len(symbols):
                continue
            for old_pair in zip(symbols, symbols[1:]):
                pair_counts[old_pair] -= count
                changed.add(old_pair)
            for new_pair in zip(merged, merged[1:]):
                pair_counts[new_pair] += count
                where.setdefault(new_pair, set()).add(index)
                changed.add(new_pair)
            words[index] = merged
        for changed_pair in changed:
            if pair_counts[changed_pair] > 0:
                heapq.heappush(queue, (-pair_counts[changed_pair], changed_pair))
    return vocabulary


def train_wordpiece_vocabulary(texts_or_files, vocab_size: int = 30522, *, lowercase: bool = True,
                               strip_accents=None, tokenize_chinese_chars: bool = True, min_frequency: int = 2,
                               special_tokens=BERT_SPECIAL_TOKENS, limit_alphabet: int = 1000) -> list[str]:
    """Learn a WordPiece vocabulary (special tokens first, so [PAD] is id 0 by default).

    `texts_or_files`: an iterable of texts, a text file path, or a list of text file paths.
    The result has `vocab_size` tokens, or fewer when the corpus does not have enough material
    (more when the alphabet alone, each character with and without "##", is larger). The same
    corpus and settings always give the same list (`learn_wordpiece`).

    Example:
        >>> vocab = train_wordpiece_vocabulary(["the cat sat", "the cats sat on the mat"] * 20, vocab_size=60)
        >>> vocab[:5], len(vocab) <= 60
        (['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'], True)
    """
    special_tokens = list(special_tokens)
    if vocab_size <= len(special_tokens):
        raise ConfigError(f"vocab_size={vocab_size} leaves no room beside the {len(special_tokens)} special tokens")
    word_counts = count_words(texts_or_files, lowercase=lowercase, strip_accents=strip_accents,
                              tokenize_chinese_chars=tokenize_chinese_chars)
    if not word_counts:
        raise DataError("the corpus is empty: there is no text to learn a vocabulary from", path="texts_or_files")
    return learn_wordpiece(word_counts, vocab_size, special_tokens=special_tokens, min_frequency=min_frequency,
                           limit_alphabet=limit_alphabet)


def write_tokenizer(vocabulary, directory, **settings) -> Tokenizer:
    """Save `vocabulary` as a tokenizer directory (vocab.txt + transformers-loadable configs) and
    return the Tokenizer read back from it. `settings` are `Tokenizer.from_vocabulary` options.

    Example:
        >>> import tempfile
        >>> vocab = train_wordpiece_vocabulary(["the cat sat", "the cats sat on the mat"] * 20, vocab_size=60)
        >>> tok = write_tokenizer(vocab, tempfile.mkdtemp())
        >>> tok.tokenize(["The cats"]).to_list() == [[vocab.index("the"), vocab.index("cats")]]
        True
    """
    from ptft_keras.data.tokenizer import Tokenizer  # TensorFlow: imported only when needed

    directory = Path(directory)
    Tokenizer.from_vocabulary(list(vocabulary), **settings).save_pretrained(directory)
    return Tokenizer.from_pretrained(directory)
