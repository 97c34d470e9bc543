"""Extractive-QA features: question + context windows in, answer strings of the original text out.

`QAFeaturizer` tokenizes with the project's `Tokenizer` (so its ids are transformers' ids, accents
and unusual text included) and its character offsets into the *original* string
(`Tokenizer.tokenize_with_offsets`), splits contexts longer than the model into overlapping windows,
and labels each window with the answer's token span, or with [CLS] (position 0) when the answer is
not inside it. `best_answers` searches the best span (start <= end, at most `max_answer_length`
tokens, inside the context) over all windows of an example and cuts the answer out of the original
context by character offsets.

Windows follow transformers' `run_qa.py`: ``[CLS] question [SEP] context window [SEP] [PAD]...``,
`doc_stride` is the number of context tokens two neighbouring windows share.

Example:
    >>> featurizer = QAFeaturizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "where", "is", "paris", "?",
    ...                            "in", "france", "."], sequence_length=12, doc_stride=2,
    ...                           max_question_length=4)
    >>> features = featurizer(["Where is Paris?"], ["Paris is in France."],
    ...                       [{"text": "France", "answer_start": 12}])
    >>> len(features), features.labels["start_positions"].tolist()
    (1, [9])
    >>> logits = np.where(np.arange(12) == 9, 5.0, 0.0)[None]   # a model sure of token 9
    >>> best_answers(logits, logits, features, ["Paris is in France."])
    ['France']
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from ptft_keras.data import tokenizer_files
from ptft_keras.data.tokenizer import Tokenizer
from ptft_keras.errors import ConfigError, DataError

_NEEDED_TOKENS = ("[CLS]", "[SEP]", "[PAD]", "[UNK]")


@dataclasses.dataclass
class QAFeatures:
    """Windows ready for a `QuestionAnswerer`, and what is needed to map answers back.

    Attributes:
        inputs: ``token_ids``, ``segment_ids``, ``padding_mask``, int32 ``[features, sequence_length]``.
        labels: ``start_positions``, ``end_positions`` int32 ``[features]``, or None without answers.
        example_index: the example each window comes from.
        offsets: ``[features, sequence_length, 2]`` character span of each token in its context,
            -1 for question, special and padding tokens.
    """

    inputs: dict
    labels: dict | None
    example_index: np.ndarray
    offsets: np.ndarray

    def __len__(self):
        return len(self.example_index)

    def dataset(self) -> tf.data.Dataset:
        """``(inputs, labels)`` (or ``inputs``) as an unbatched `tf.data.Dataset`."""
        return tf.data.Dataset.from_tensor_slices(self.inputs if self.labels is None else (self.inputs, self.labels))


class QAFeaturizer:
    """Turns (question, context[, answer]) examples into `QAFeatures`.

    Args:
        tokenizer: a `Tokenizer` (e.g. `Tokenizer.from_pretrained(checkpoint)`); for compatibility
            also WordPiece tokens (index = id) or the path of a ``vocab.txt``, read with the BERT
            defaults and `lowercase`.
        lowercase: only with a vocabulary: lower-case and strip accents (uncased checkpoints).
        sequence_length: tokens per window, specials included.
        doc_stride: context tokens shared by two neighbouring windows.
        max_question_length: questions are cut to this many tokens.
    """

    def __init__(
        self,
        tokenizer: Tokenizer | Sequence[str] | str | Path,
        *,
        lowercase: bool | None = None,
        sequence_length: int = 384,
        doc_stride: int = 128,
        max_question_length: int = 64,
    ):
        if isinstance(tokenizer, Tokenizer):
            if lowercase is not None:
                raise ConfigError("lowercase= applies to a vocabulary only; a Tokenizer brings its own "
                                  "setting (Tokenizer.from_pretrained(..., lowercase=...))")
        else:
            tokenizer = _tokenizer_of_vocabulary(tokenizer, lowercase=True if lowercase is None else lowercase)
        self.tokenizer = tokenizer
        self.cls_id, self.sep_id, self.pad_id = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
        self.sequence_length = sequence_length
        self.doc_stride = doc_stride
        self.max_question_length = max_question_length
        context_room = sequence_length - max_question_length - 3
        if context_room <= doc_stride:
            raise ConfigError(
                f"sequence_length={sequence_length} leaves {context_room} context tokens per window after a "
                f"{max_question_length}-token question, not more than doc_stride={doc_stride}; "
                "raise sequence_length or lower doc_stride / max_question_length"
            )

    def tokenize(self, texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``(ids, char_starts, char_ends)`` per text; offsets index the original string (code points).

        Example:
            >>> featurizer = QAFeaturizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "zurich", "!"], sequence_length=12,
            ...                           doc_stride=2, max_question_length=4)
            >>> [array.tolist() for array in featurizer.tokenize(["Zürich!"])[0]]
            [[4, 5], [0, 6], [6, 7]]
        """
        ids, starts, ends = self.tokenizer.tokenize_with_offsets(tf.constant(list(texts), tf.string))
        return [tuple(np.asarray(row, dtype) for row, dtype in zip(rows, (np.int32, np.int64, np.int64)))
                for rows in zip(ids.to_list(), starts.to_list(), ends.to_list())]

    def __call__(
        self, questions: Sequence[str], contexts: Sequence[str], answers: Sequence | None = None
    ) -> QAFeatures:
        if len(questions) != len(contexts) or (answers is not None and len(answers) != len(contexts)):
            raise DataError(
                f"{len(questions)} questions, {len(contexts)} contexts"
                + ("" if answers is None else f", {len(answers)} answers")
                + ": one of each per example"
            )
        unique_contexts = list(dict.fromkeys(contexts))
        context_tokens = dict(zip(unique_contexts, self.tokenize(unique_contexts)))
        question_tokens = self.tokenize(questions)
        rows = {"token_ids": [], "segment_ids": [], "padding_mask": [], "start_positions": [], "end_positions": []}
        example_index, offsets = [], []
        for i, (question, context) in enumerate(zip(question_tokens, contexts)):
            q_ids = question[0][: self.max_question_length]
            c_ids, c_starts, c_ends = context_tokens[context]
            span = None if answers is None else _answer_token_span(answers[i], context, c_starts, c_ends, example=i + 1)
            room = self.sequence_length - len(q_ids) - 3
            first = len(q_ids) + 2  # position of the first context token in a window
            for start in _window_starts(len(c_ids), room, room - self.doc_stride):
                stop = min(start + room, len(c_ids))
                ids = np.full(self.sequence_length, self.pad_id, np.int32)
                window = np.concatenate([[self.cls_id], q_ids, [self.sep_id], c_ids[start:stop], [self.sep_id]])
                ids[: len(window)] = window
                segments = np.zeros(self.sequence_length, np.int32)
                segments[first : len(window)] = 1
                token_offsets = np.full((self.sequence_length, 2), -1, np.int64)
                token_offsets[first : first + stop - start, 0] = c_starts[start:stop]
                token_offsets[first : first + stop - start, 1] = c_ends[start:stop]
                rows["token_ids"].append(ids)
                rows["segment_ids"].append(segments)
                rows["padding_mask"].append((np.arange(self.sequence_length) < len(window)).astype(np.int32))
                if span is not None and start <= span[0] and span[1] < stop:
                    rows["start_positions"].append(first + span[0] - start)
                    rows["end_positions"].append(first + span[1] - start)
                else:  # no answer in this window: point at [CLS]
                    rows["start_positions"].append(0)
                    rows["end_positions"].append(0)
                example_index.append(i)
                offsets.append(token_offsets)
        inputs = {name: np.stack(rows[name]) for name in ("token_ids", "segment_ids", "padding_mask")}
        labels = None
        if answers is not None:
            labels = {name: np.asarray(rows[name], np.int32) for name in ("start_positions", "end_positions")}
        return QAFeatures(inputs, labels, np.asarray(example_index, np.int32), np.stack(offsets))


def best_answers(
    start_logits, end_logits, features: QAFeatures, contexts: Sequence[str], *, max_answer_length: int = 30
) -> list[str]:
    """The best-scoring answer text per example (start + end logit, searched exactly over every
    window of the example); "" when no window holds a valid span."""
    start_logits, end_logits = np.asarray(start_logits, np.float64), np.asarray(end_logits, np.float64)
    if start_logits.shape != features.offsets.shape[:2] or end_logits.shape != start_logits.shape:
        raise DataError(
            f"logits of shape {start_logits.shape} / {end_logits.shape} do not match the "
            f"{features.offsets.shape[:2]} features they should score"
        )
    length = start_logits.shape[1]
    rows, cols = np.indices((length, length))
    band = (cols >= rows) & (cols - rows < max_answer_length)
    best_score = np.full(len(contexts), -np.inf)
    answers = [""] * len(contexts)
    for f, example in enumerate(features.example_index):
        valid = features.offsets[f, :, 0] >= 0
        scores = start_logits[f][:, None] + end_logits[f][None, :]
        scores = np.where(band & valid[:, None] & valid[None, :], scores, -np.inf)
        start, end = np.unravel_index(np.argmax(scores), scores.shape)
        if scores[start, end] > best_score[example]:
            best_score[example] = scores[start, end]
            answers[example] = contexts[example][features.offsets[f, start, 0] : features.offsets[f, end, 1]]
    return answers


def _window_starts(num_tokens: int, room: int, step: int) -> list[int]:
    starts = [0]
    while starts[-1] + room < num_tokens:
        starts.append(starts[-1] + step)
    return starts


def _tokenizer_of_vocabulary(vocabulary, *, lowercase: bool) -> Tokenizer:
    """A BERT `Tokenizer` of a token list or vocab.txt path; [MASK] is optional (QA never uses it)."""
    source = None
    if isinstance(vocabulary, (str, Path)):
        source = vocabulary
        vocabulary = tokenizer_files.read_vocabulary(vocabulary)
    vocabulary = list(vocabulary)
    missing = [token for token in _NEEDED_TOKENS if token not in vocabulary]
    if missing:
        where = "the vocabulary" if source is None else f"the vocabulary {source}"
        raise ConfigError(f"{where} lacks the special token(s) {', '.join(missing)}; QA windows need "
                          f"{', '.join(_NEEDED_TOKENS)}")
    mask = {} if "[MASK]" in vocabulary else {"mask_token": "[UNK]"}
    return Tokenizer(vocabulary, lowercase=lowercase, source=source, **mask)


def _answer_token_span(answer, context: str, starts: np.ndarray, ends: np.ndarray, example: int) -> tuple[int, int]:
    """First and last context token of the answer; `DataError` when the answer is not where it claims."""
    if isinstance(answer, dict):
        text, begin = answer.get("text"), answer.get("answer_start")
        if isinstance(text, (list, tuple)):  # SQuAD layout: lists of gold answers, train on the first
            text, begin = (text[0], begin[0]) if text else (None, None)
    else:
        text, begin = answer
    if not text or begin is None:
        raise DataError(f"example {example} has no answer text/answer_start", field="answers")
    if context[begin : begin + len(text)] != text:
        found = context.find(text)
        where = f"it occurs at character {found}" if found >= 0 else "it does not occur in the context at all"
        raise DataError(
            f"example {example}: answer {text!r} is not at character {begin} of its context ({where}); "
            "fix answer_start or the answer text",
            field="answer_start",
        )
    inside = np.nonzero((ends > begin) & (starts < begin + len(text)))[0]
    if inside.size == 0:
        raise DataError(f"example {example}: answer {text!r} covers no token of the context", field="answers")
    return int(inside[0]), int(inside[-1])
