"""BERT text normalization and pre-tokenization, in core TensorFlow ops only.

This reproduces what `transformers.BertTokenizer` (`BertTokenizerFast`) does before WordPiece (the
`tokenizers` crate's `BertNormalizer` then `BertPreTokenizer`), with the crate's Unicode tables:

1. clean text: drop NUL, U+FFFD and control, format, private-use characters (categories Cc, Cf,
   Co; tab, newline and CR excepted); every Unicode White_Space character becomes a space;
2. put spaces around CJK ideographs;
3. strip accents (NFD, then drop non-spacing marks, category Mn);
4. lowercase (full per-character mapping, e.g. "İ" -> "i" + U+0307);
5. split on spaces, and isolate punctuation (ASCII 33-47, 58-64, 91-96, 123-126, Unicode P*).

Every step but the split is a function of one code point, so the whole thing is a table from a
code point to the text it becomes, built once in Python and applied in the graph with
`tf.strings.unicode_decode`, `tf.searchsorted` and gathers. The same code therefore serves the
training tokenizer (tf-text WordPiece) and the core-ops export tokenizer.

Special tokens written in the text ("[MASK]") are matched first, like transformers' added
tokens: each is replaced by a private-use sentinel character that survives as its own word,
followed by filler characters that normalization drops, so that the text keeps its length and
every normalized character can point back at the original character it came from
(`BertPreTokenizer.split_with_offsets`).

Unicode versions: the table is read off the reference itself, the `tokenizers` crate (a pinned
dependency) that `transformers.BertTokenizer` runs, one probe over every code point: its
`BertNormalizer` gives what each character becomes, its `BertPreTokenizer` which characters are
punctuation and white space. Python's `unicodedata` would not do: the crate classes characters
with older Unicode tables (e.g. U+061D ARABIC END OF TEXT MARK, Unicode 14 punctuation, is a
letter to it) and lowercases with Rust's newer ones, so the two disagree on about 560 code points
(transformers' legacy pure-Python tokenizer follows `unicodedata`, and differs from
`BertTokenizer` on exactly those). Building on the crate makes the ids equal on every code point.
"""
from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from ptft_keras.errors import ConfigError

# Sentinels for special tokens found in the text: plane-15 private use, which clean-text would
# drop anyway, so a sentinel typed by a user is removed before ours are inserted.
SENTINEL_BASE = 0xF0000
_MAX_SPECIAL_TOKENS = 256
# Private use after the sentinels: dropped by clean-text; pads a replaced special token (and
# stands in for a sentinel typed by a user) so that marking keeps every text's length.
_FILLER = chr(SENTINEL_BASE + _MAX_SPECIAL_TOKENS)

_IDENTITY, _DELETE, _ISOLATE, _TABLE = 0, 1, 2, 3
_MODE_LENGTHS = [1, 0, 3, 0]  # output code points per mode; _TABLE lengths come from the table
_SPACE = 0x20


_SURROGATES = range(0xD800, 0xE000)
_PROBE_SEPARATOR = "|"  # ASCII punctuation: BertNormalizer keeps it, and no character becomes it


@functools.lru_cache(maxsize=1)
def reference_char_classes() -> tuple[frozenset, frozenset]:
    """(punctuation, white space): the characters transformers' `BertPreTokenizer` (the
    `tokenizers` crate) isolates as one-character words, and those it splits words on.

    Found with one call over every code point, each between two "x": a punctuation character
    comes back as its own word, a white-space character as a gap between words.

    Example:
        >>> punctuation, white_space = reference_char_classes()
        >>> "!" in punctuation, "\u3002" in punctuation, "\u061d" in punctuation, "\u3000" in white_space
        (True, True, False, True)
    """
    from tokenizers.pre_tokenizers import BertPreTokenizer as ReferencePreTokenizer

    text = "x".join(chr(cp) for cp in range(0x110000) if cp not in _SURROGATES)
    punctuation, covered = set(), np.zeros(len(text), bool)
    for word, (start, end) in ReferencePreTokenizer().pre_tokenize_str(text):
        covered[start:end] = True
        if end - start == 1 and word != "x":
            punctuation.add(word)
    white_space = {text[i] for i in np.flatnonzero(~covered)}
    return frozenset(punctuation), frozenset(white_space)


def _reference_normalized(chars: list[str], *, lowercase: bool, strip_accents: bool,
                          tokenize_chinese_chars: bool) -> list[str]:
    """What transformers' `BertNormalizer` makes of each of `chars` alone (one call for all)."""
    from tokenizers.normalizers import BertNormalizer as ReferenceNormalizer

    normalizer = ReferenceNormalizer(clean_text=True, handle_chinese_chars=tokenize_chinese_chars,
                                     strip_accents=strip_accents, lowercase=lowercase)
    others = [c for c in chars if c != _PROBE_SEPARATOR]
    probe = _PROBE_SEPARATOR.join(others) + _PROBE_SEPARATOR
    pieces = normalizer.normalize_str(probe).split(_PROBE_SEPARATOR) if others else [""]
    if len(pieces) != len(others) + 1:  # a character became the separator: the probe cannot tell them apart
        raise RuntimeError(f"probing BertNormalizer gave {len(pieces) - 1} pieces for {len(others)} characters")
    pieces = iter(pieces)
    return [normalizer.normalize_str(c) if c == _PROBE_SEPARATOR else next(pieces) for c in chars]


def _pre_tokenized(normalized: str, punctuation, white_space) -> str:
    """`normalized` with punctuation isolated (" c ") and white space as plain spaces."""
    return "".join(f" {c} " if c in punctuation else " " if c in white_space else c for c in normalized)


def normalize_char(char: str, *, lowercase: bool, strip_accents: bool, tokenize_chinese_chars: bool) -> str:
    """What one character becomes after normalization and pre-tokenization ("" = dropped,
    spaces = word breaks), as transformers' `BertTokenizer` does it.

    Example:
        >>> normalize_char("É", lowercase=True, strip_accents=True, tokenize_chinese_chars=True)
        'e'
        >>> normalize_char("!", lowercase=True, strip_accents=True, tokenize_chinese_chars=True)
        ' ! '
        >>> normalize_char("\u061d", lowercase=True, strip_accents=True, tokenize_chinese_chars=True) == "\u061d"
        True
    """
    if ord(char) in _SURROGATES:
        return ""
    normalized, = _reference_normalized([char], lowercase=lowercase, strip_accents=strip_accents,
                                        tokenize_chinese_chars=tokenize_chinese_chars)
    return _pre_tokenized(normalized, *reference_char_classes())


class CodepointTable:
    """Run-length table code point -> replacement text, as numpy arrays for the graph.

    Runs of code points share a mode: kept as is, dropped, isolated (" c "), or looked up in
    `values`/`splits` (a ragged list of replacement code points) at `base + cp - start`.
    What each code point becomes is `normalize_char`, probed for all code points at once.
    """

    def __init__(self, *, lowercase: bool, strip_accents: bool, tokenize_chinese_chars: bool, num_sentinels: int):
        punctuation, white_space = reference_char_classes()
        chars = [chr(cp) for cp in range(0x110000) if cp not in _SURROGATES]
        normalized = iter(_reference_normalized(chars, lowercase=lowercase, strip_accents=strip_accents,
                                                tokenize_chinese_chars=tokenize_chinese_chars))
        starts, modes, bases = [], [], []
        values, splits = [], [0]
        previous_mode = None
        for cp in range(0x110000):
            if cp in _SURROGATES:
                mode, out = _DELETE, ""
            else:
                char, out = chr(cp), next(normalized)
                if SENTINEL_BASE <= cp < SENTINEL_BASE + num_sentinels:
                    mode = _ISOLATE
                elif out == char and char not in punctuation and char not in white_space:
                    mode = _IDENTITY
                else:
                    out = _pre_tokenized(out, punctuation, white_space)
                    if out == "":
                        mode = _DELETE
                    elif out == f" {char} ":
                        mode = _ISOLATE
                    else:
                        mode = _TABLE
            if mode == _TABLE:
                values.extend(ord(c) for c in out)
                splits.append(len(values))
            if mode != previous_mode:
                starts.append(cp)
                modes.append(mode)
                bases.append(len(splits) - 2 if mode == _TABLE else 0)
                previous_mode = mode
        self.starts = np.asarray(starts, np.int32)
        self.modes = np.asarray(modes, np.int32)
        self.bases = np.asarray(bases, np.int32)
        self.values = np.asarray(values or [0], np.int32)
        self.splits = np.asarray(splits, np.int32)


@functools.lru_cache(maxsize=16)
def codepoint_table(lowercase: bool, strip_accents: bool, tokenize_chinese_chars: bool,
                    num_sentinels: int) -> CodepointTable:
    """The (cached) table for one combination of settings; building it takes a few seconds."""
    return CodepointTable(lowercase=lowercase, strip_accents=strip_accents,
                          tokenize_chinese_chars=tokenize_chinese_chars, num_sentinels=num_sentinels)


def _regex_literal(text: str) -> str:
    """`text` as an RE2 pattern matching it literally."""
    return "".join(c if c.isascii() and c.isalnum() else f"\\x{{{ord(c):X}}}" for c in text)


def positions_in_rows(ragged: tf.RaggedTensor) -> tf.Tensor:
    """For each flat value of a 2-D ragged tensor, its int32 index within its row.

    Example:
        >>> positions_in_rows(tf.ragged.constant([[7, 8, 9], [], [1, 2]])).numpy().tolist()
        [0, 1, 2, 0, 1]
    """
    flat_index = tf.range(tf.size(ragged.flat_values, out_type=tf.int64))
    return tf.cast(flat_index - tf.gather(ragged.row_starts(), ragged.value_rowids()), tf.int32)


class BertPreTokenizer(tf.Module):
    """Raw strings -> words, exactly like transformers' BertNormalizer + BertPreTokenizer.

    Uses only core TensorFlow ops, so it runs in tf.data, tf.function and exported SavedModels.
    `special_tokens` found verbatim in the text come out as one-character sentinel words
    (`sentinel(i)` for `special_tokens[i]`).

    Example:
        >>> splitter = BertPreTokenizer(lowercase=True, special_tokens=["[MASK]"])
        >>> words = splitter(["Héllo,  WORLD[MASK]!"])
        >>> [w.decode() for w in words[0].numpy()] == ["hello", ",", "world", splitter.sentinel(0), "!"]
        True
        >>> words, starts, ends = splitter.split_with_offsets(["Héllo,  WORLD[MASK]!"])
        >>> starts[0, 0].numpy().tolist(), ends[0, 0].numpy().tolist(), starts[0, 3].numpy().tolist()
        ([0, 1, 2, 3, 4], [1, 2, 3, 4, 5], [13])
        >>> ends[0, 3].numpy().tolist()   # a special token's sentinel spans the whole token
        [19]
    """

    def __init__(self, *, lowercase: bool = True, strip_accents: bool | None = None,
                 tokenize_chinese_chars: bool = True, special_tokens=(), name=None):
        super().__init__(name=name)
        self.lowercase = bool(lowercase)
        # transformers: strip_accents=None means "strip when lowercasing".
        self.strip_accents = self.lowercase if strip_accents is None else bool(strip_accents)
        self.tokenize_chinese_chars = bool(tokenize_chinese_chars)
        self.special_tokens = [str(t) for t in special_tokens]
        if len(self.special_tokens) > _MAX_SPECIAL_TOKENS:
            raise ConfigError(f"at most {_MAX_SPECIAL_TOKENS} special tokens can be matched in text, "
                              f"got {len(self.special_tokens)}")
        table = codepoint_table(self.lowercase, self.strip_accents, self.tokenize_chinese_chars,
                                len(self.special_tokens))
        self._starts = tf.constant(table.starts)
        self._modes = tf.constant(table.modes)
        self._bases = tf.constant(table.bases)
        self._values = tf.constant(table.values)
        self._splits = tf.constant(table.splits)
        # Code points of each special token: the original span of its sentinel.
        self._special_lengths = tf.constant([len(t) for t in self.special_tokens] or [1], tf.int32)

    @staticmethod
    def sentinel(index: int) -> str:
        """The one-character word that stands for special token number `index`."""
        return chr(SENTINEL_BASE + index)

    def _mark_special_tokens(self, texts):
        if not self.special_tokens:
            return texts
        last = SENTINEL_BASE + len(self.special_tokens) - 1
        texts = tf.strings.regex_replace(texts, f"[\\x{{{SENTINEL_BASE:X}}}-\\x{{{last:X}}}]", _FILLER)
        # Longest first, so a special token that contains another one wins. Sentinels are
        # isolated by the code-point table, so they need no spaces around them.
        order = sorted(range(len(self.special_tokens)), key=lambda i: -len(self.special_tokens[i]))
        for index in order:
            token = self.special_tokens[index]
            texts = tf.strings.regex_replace(texts, _regex_literal(token),
                                             self.sentinel(index) + _FILLER * (len(token) - 1))
        return texts

    def normalize_codepoints(self, codepoints: tf.RaggedTensor) -> tf.RaggedTensor:
        """Ragged code points [batch, None] -> normalized code points, spaces between words."""
        return self._normalize(codepoints)[0]

    def _normalize(self, codepoints: tf.RaggedTensor):
        """`normalize_codepoints`, and for each output code point the flat index of the input
        code point it comes from."""
        flat = codepoints.flat_values
        run = tf.searchsorted(self._starts, flat, side="right") - 1
        mode = tf.gather(self._modes, run)
        is_table = tf.equal(mode, _TABLE)
        entry = tf.where(is_table, tf.gather(self._bases, run) + flat - tf.gather(self._starts, run), 0)
        entry_start = tf.gather(self._splits, entry)
        length = tf.where(is_table, tf.gather(self._splits, entry + 1) - entry_start,
                          tf.gather(tf.constant(_MODE_LENGTHS), mode))
        # One output code point for each (input code point, position < its output length).
        positions = tf.ragged.range(length)
        owner, position = positions.value_rowids(), positions.flat_values
        owner_mode = tf.gather(mode, owner)
        from_table = tf.equal(owner_mode, _TABLE)
        looked_up = tf.gather(self._values, tf.where(from_table, tf.gather(entry_start, owner) + position, 0))
        isolated_space = tf.logical_and(tf.equal(owner_mode, _ISOLATE), tf.not_equal(position, 1))
        kept = tf.where(isolated_space, _SPACE, tf.gather(flat, owner))
        row_lengths = tf.cast(tf.reduce_sum(codepoints.with_flat_values(length), axis=1), tf.int64)
        normalized = tf.RaggedTensor.from_row_lengths(tf.where(from_table, looked_up, kept), row_lengths,
                                                      validate=False)
        return normalized, owner

    def _words(self, texts, max_chars, tail_chars=None):
        """Texts -> the words' normalized code points and, for each, the flat index of the
        original code point it comes from (both ragged [batch, words, chars]), and the original
        code points (ragged [batch, chars])."""
        texts = self._mark_special_tokens(tf.convert_to_tensor(texts, tf.string))
        codepoints = tf.strings.unicode_decode(texts, "UTF-8", errors="replace", replacement_char=0xFFFD)
        if tail_chars is not None:
            codepoints = keep_ends(codepoints, max_chars or 0, tail_chars)
        elif max_chars is not None:
            codepoints = codepoints[:, :max_chars]
        normalized, owner = self._normalize(codepoints)
        chars = normalized.flat_values
        # A word is a run of non-space code points within a row.
        in_word = tf.not_equal(chars, _SPACE)
        after_word = tf.roll(in_word, shift=1, axis=0) & (positions_in_rows(normalized) > 0)
        begins = in_word & ~after_word
        kept = tf.where(in_word)[:, 0]
        word_of_char = tf.cumsum(tf.cast(tf.gather(begins, kept), tf.int64)) - 1
        num_words = tf.reduce_sum(tf.cast(begins, tf.int64))
        row_of_word = tf.boolean_mask(normalized.value_rowids(), begins)

        def as_words(values):
            per_word = tf.RaggedTensor.from_value_rowids(values, word_of_char, nrows=num_words, validate=False)
            return tf.RaggedTensor.from_value_rowids(per_word, row_of_word, nrows=normalized.nrows(), validate=False)

        return as_words(tf.gather(chars, kept)), as_words(tf.gather(owner, kept)), codepoints

    def __call__(self, texts, *, max_chars=None, tail_chars=None) -> tf.RaggedTensor:
        """tf.string [batch] -> tf.string words [batch, None]; `max_chars` caps each text first (with
        `tail_chars`, its last `tail_chars` code points are kept too: see `keep_ends`)."""
        chars, _, _ = self._words(texts, max_chars, tail_chars)
        return tf.strings.unicode_encode(chars, "UTF-8")

    def split_with_offsets(self, texts, *, max_chars=None):
        """`__call__`, with where each character of each word comes from in the original text.

        Returns ``(words, starts, ends)``: words tf.string [batch, words], and int32 [batch, words,
        chars], for every code point of every (normalized) word, the span of original code points
        it comes from (end exclusive). Characters that normalization expands share the span of
        their source (a Hangul syllable gives 3 jamo with one span), and a special token's
        sentinel spans the whole token: the alignments transformers' offsets are built from.
        """
        chars, owner, codepoints = self._words(texts, max_chars)
        starts = tf.gather(positions_in_rows(codepoints), owner.flat_values)
        special = chars.flat_values - SENTINEL_BASE
        is_special = (special >= 0) & (special < len(self.special_tokens))
        width = tf.where(is_special, tf.gather(self._special_lengths, tf.where(is_special, special, 0)), 1)
        words = tf.strings.unicode_encode(chars, "UTF-8")
        return words, chars.with_flat_values(starts), chars.with_flat_values(starts + width)

    def get_config(self) -> dict:
        return {"lowercase": self.lowercase, "strip_accents": self.strip_accents,
                "tokenize_chinese_chars": self.tokenize_chinese_chars, "special_tokens": list(self.special_tokens)}


def keep_ends(codepoints: tf.RaggedTensor, head_chars: int, tail_chars: int) -> tf.RaggedTensor:
    """Cut each row of code points [batch, chars] longer than ``head_chars + 1 + tail_chars`` to its first
    `head_chars` and last `tail_chars` code points, with a space where the middle was (so the two ends'
    partial words stay apart). Shorter rows are kept whole.

    Example:
        >>> keep_ends(tf.ragged.constant([[1, 2, 3, 4, 5, 6], [7, 8]]), 1, 2).to_list()
        [[1, 32, 5, 6], [7, 8]]
    """
    rows = codepoints.value_rowids()
    length = tf.cast(tf.gather(codepoints.row_lengths(), rows), tf.int32)
    position = positions_in_rows(codepoints)
    cut = length > head_chars + 1 + tail_chars
    gap = cut & tf.equal(position, head_chars)
    keep = ~cut | (position < head_chars) | gap | (length - position <= tail_chars)
    values = tf.where(gap, tf.cast(_SPACE, codepoints.dtype), codepoints.flat_values)
    return tf.RaggedTensor.from_value_rowids(tf.boolean_mask(values, keep), tf.boolean_mask(rows, keep),
                                             nrows=codepoints.nrows(), validate=False)
