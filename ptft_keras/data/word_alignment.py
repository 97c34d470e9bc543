"""Words -> word pieces for token classification, and predictions back to one per word.

Pre-split words (CoNLL tokens) are tokenized one by one, as transformers' ``is_split_into_words``
does: each word is basic-tokenized and WordPiece'd, and all its pieces belong to it (a word that
gives no piece at all, e.g. only control characters, becomes ``[UNK]`` so that it still gets a
prediction). A word's label sits on its first piece; every other piece gets -100 (`IGNORE_INDEX`),
which the loss and the metrics skip.

A sentence with more pieces than fit between ``[CLS]`` and ``[SEP]`` is split into overlapping
windows (`truncation.split_windows`: starts `window_stride` pieces apart, half a window by
default). Each word is then labelled and predicted in exactly one window: the one where it has the
most context, i.e. where the nearer window edge that cuts the sentence is farthest away (an edge
at the sentence's own start or end cuts nothing). Every word gets exactly one prediction.

Everything is computed for the whole corpus at once with numpy and ragged tensors: the 14,041
sentences of CoNLL-2003 train take about two seconds, nearly all of it WordPiece.

Example:
    >>> import numpy as np
    >>> from ptft_keras.data.tokenizer import Tokenizer
    >>> tok = Tokenizer.from_vocabulary(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "john", "smith", "##s", "sings"])
    >>> pieces = tokenize_words(tok, [["John", "Smiths", "sings"]])
    >>> pieces.to_list()
    [[[5], [6, 7], [8]]]
    >>> aligned = align_words(pieces, [np.array([1, 2, 0])], sequence_length=8)
    >>> aligned.labels.to_list()                 # first piece of each word; "##s" is ignored
    [[1, 2, -100, 0]]
    >>> aligned.pick_positions.to_list()         # where each word is read in [CLS] john smith ##s sings [SEP]
    [[1, 2, 4]]
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from ptft_keras.data import batching
from ptft_keras.data.pipeline import check_batch_sizes, pack_batch
from ptft_keras.data.sequence_length import choose_sequence_length
from ptft_keras.data.truncation import content_budget, split_windows
from ptft_keras.errors import ConfigError, DataError

IGNORE_INDEX = -100  # the label losses and metrics skip (as tasks.heads.IGNORE_INDEX)
PADDINGS = ("grouped", "dynamic", "bucket", "fixed")
_FAR = np.iinfo(np.int64).max  # the context beyond an edge that is the sentence's own start or end


def tokenize_words(tokenizer, sentences: Sequence[Sequence[str]], *, batch_size: int = 65536) -> tf.RaggedTensor:
    """Word pieces of pre-split sentences: int32 ``[sentences, (words), (pieces)]``, no special tokens.

    Example:
        >>> from ptft_keras.data.tokenizer import Tokenizer
        >>> tok = Tokenizer.from_vocabulary(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "new", "york", "-"])
        >>> tokenize_words(tok, [["New-York", "\\u200b"]]).to_list()   # one word, 3 pieces; an empty word is [UNK]
        [[[5, 7, 6], [1]]]
    """
    words_per_sentence = [len(words) for words in sentences]
    flat = [word for words in sentences for word in words]
    chunks = [
        tokenizer.tokenize(tf.constant(flat[start:start + batch_size], tf.string), return_words=True).merge_dims(1, 2)
        for start in range(0, len(flat), batch_size)
    ]
    if chunks:
        pieces = tf.concat(chunks, axis=0) if len(chunks) > 1 else chunks[0]
        values, lengths = pieces.flat_values.numpy(), pieces.row_lengths().numpy()
    else:
        values, lengths = np.zeros([0], np.int32), np.zeros([0], np.int64)
    empty = lengths == 0
    if empty.any():  # words the basic tokenizer drops entirely still need a piece to be predicted from
        starts = np.cumsum(lengths) - lengths
        values = np.insert(values, starts[empty], np.int32(tokenizer.unk_token_id))
        lengths = np.where(empty, 1, lengths)
    per_word = tf.RaggedTensor.from_row_lengths(tf.constant(values, tf.int32), lengths)
    return tf.RaggedTensor.from_row_lengths(per_word, np.asarray(words_per_sentence, np.int64))


def longest_sequence_length(word_pieces: tf.RaggedTensor, max_length: int) -> int:
    """The packed length of the longest sentence ([CLS] and [SEP] included), rounded up to a multiple of 8
    and capped at `max_length`: the default for token classification, where a truncated word loses its
    label, and dynamic padding makes a long maximum cost nothing for short sentences.

    Example:
        >>> longest_sequence_length(tf.ragged.constant([[[5], [6, 7]], [[8]]]), max_length=512)
        8
    """

    pieces = word_pieces.merge_dims(1, 2).row_lengths().numpy()
    return choose_sequence_length(pieces + 2, max_length=max_length, percentile=100)


@dataclasses.dataclass
class AlignedWords:
    """Sentences as windows of word pieces, with where to read each word's prediction.

    Attributes:
        piece_ids: int32 ``[windows, (pieces)]``, without [CLS]/[SEP].
        labels: int32 ``[windows, (pieces)]``: a word's label on its first piece in the window it is
            assigned to, -100 elsewhere; None when built without labels.
        pick_positions: int32 ``[windows, (words)]``: the packed positions ([CLS] is 0) of the first
            pieces of the words this window predicts.
        pick_words: int64 ``[windows, (words)]``: the index of each of those words in the whole corpus.
        window_sentence_ids: ``[windows]``: the sentence each window comes from.
        words_per_sentence: ``[sentences]``.
        sequence_length: the packed length every window fits in.
    """

    piece_ids: tf.RaggedTensor
    labels: tf.RaggedTensor | None
    pick_positions: tf.RaggedTensor
    pick_words: tf.RaggedTensor
    window_sentence_ids: np.ndarray
    words_per_sentence: np.ndarray
    sequence_length: int

    def __len__(self) -> int:
        return int(self.piece_ids.nrows())

    @property
    def num_sentences(self) -> int:
        return len(self.words_per_sentence)

    @property
    def num_words(self) -> int:
        return int(self.words_per_sentence.sum())

    @property
    def window_lengths(self) -> np.ndarray:
        """Packed length of each window, [CLS] and [SEP] included."""
        return self.piece_ids.row_lengths().numpy() + 2

    def per_sentence(self, word_values) -> list:
        """Split values ``[words, ...]`` (in corpus order) into one array per sentence."""
        return np.split(np.asarray(word_values), np.cumsum(self.words_per_sentence)[:-1])


def _flat_word_labels(word_labels, words_per_sentence: np.ndarray) -> np.ndarray:
    counts = np.array([len(labels) for labels in word_labels], np.int64)
    if len(counts) != len(words_per_sentence):
        raise DataError(f"{len(counts)} label sequences for {len(words_per_sentence)} sentences", field="labels")
    for sentence in np.flatnonzero(counts != words_per_sentence)[:1]:
        raise DataError(f"sentence {sentence + 1} has {words_per_sentence[sentence]} words but "
                        f"{counts[sentence]} labels", field="labels")
    flat = [np.asarray(labels, np.int32).reshape(-1) for labels in word_labels]
    return np.concatenate(flat) if flat else np.zeros([0], np.int32)


def _context(slots, splits, window_sentence_ids, sentence_splits) -> np.ndarray:
    """For each window slot (a corpus piece index): the pieces of context between it and the nearer window
    edge that cuts its sentence; an edge at the sentence's own start or end cuts nothing (`_FAR`)."""
    padded = np.append(slots, 0)  # an empty window (of an empty sentence) reads a dummy; it has no slot anyway
    first, last = padded[splits[:-1]], padded[np.maximum(splits[1:] - 1, 0)]
    window = np.repeat(np.arange(len(splits) - 1), np.diff(splits))
    sentence = window_sentence_ids[window]
    left = np.where(first[window] > sentence_splits[:-1][sentence], slots - first[window], _FAR)
    right = np.where(last[window] < sentence_splits[1:][sentence] - 1, last[window] - slots, _FAR)
    return np.minimum(left, right)


def _most_context(candidates, word_of_slot, context) -> np.ndarray:
    """The slot (among `candidates`, the first pieces) each word is read from: most context, then earliest."""
    words = word_of_slot[candidates]
    ranked = np.lexsort((-context[candidates], words))  # by word, then most context first (stable: earliest)
    ranked_words = words[ranked]
    return np.sort(candidates[ranked[np.r_[True, ranked_words[1:] != ranked_words[:-1]]]])


def align_words(word_pieces: tf.RaggedTensor, word_labels: Sequence[Sequence[int]] | None = None, *,
                sequence_length: int, window_stride: int | None = None) -> AlignedWords:
    """Windows of at most ``sequence_length - 2`` pieces, with first-piece labels and word picks.

    Args:
        word_pieces: ``[sentences, (words), (pieces)]`` from `tokenize_words` (every word >= 1 piece).
        word_labels: one sequence of label ids per sentence, one id per word; None for prediction.
        sequence_length: packed length, [CLS] and [SEP] included.
        window_stride: pieces between the starts of a long sentence's windows (default: half a window).

    Example (a 5-piece sentence in windows of 3 pieces, 2 apart):
        >>> pieces = tf.ragged.constant([[[11], [12], [13], [14], [15]]])
        >>> aligned = align_words(pieces, [[1, 2, 3, 4, 5]], sequence_length=5, window_stride=2)
        >>> aligned.piece_ids.to_list(), aligned.labels.to_list()
        ([[11, 12, 13], [13, 14, 15]], [[1, 2, 3], [-100, 4, 5]])
        >>> aligned.pick_words.to_list()             # word 2 sits at an inner edge of both: the first wins
        [[0, 1, 2], [3, 4]]
    """
    budget = content_budget(sequence_length)
    if word_pieces.ragged_rank != 2:
        raise ConfigError("word_pieces must be ragged [sentences, (words), (pieces)] (see tokenize_words)")
    words_per_sentence = word_pieces.row_lengths().numpy().astype(np.int64)
    pieces_per_word = word_pieces.values.row_lengths().numpy()
    if (pieces_per_word == 0).any():
        raise DataError("a word has no word piece; tokenize with tokenize_words, which gives it [UNK]", field="words")
    sentence_pieces = word_pieces.merge_dims(1, 2)
    flat_ids = sentence_pieces.flat_values.numpy()
    num_words = len(pieces_per_word)
    word_of_piece = np.repeat(np.arange(num_words, dtype=np.int64), pieces_per_word)
    is_first = np.zeros(len(flat_ids), bool)
    is_first[np.cumsum(pieces_per_word) - pieces_per_word] = True

    # Window the corpus-wide piece indices; ids, words and labels are then gathered with them.
    piece_index = tf.RaggedTensor.from_row_splits(tf.range(len(flat_ids), dtype=tf.int64), sentence_pieces.row_splits)
    windows = split_windows(piece_index, budget, window_stride)
    window_sentence_ids = windows.value_rowids().numpy()
    splits = windows.values.row_splits.numpy()
    slots = windows.values.flat_values.numpy()  # corpus piece index of each window slot
    window_of_slot = np.repeat(np.arange(len(splits) - 1), np.diff(splits))
    position = np.arange(len(slots)) - splits[window_of_slot]

    context = _context(slots, splits, window_sentence_ids, sentence_pieces.row_splits.numpy())
    chosen = _most_context(np.flatnonzero(is_first[slots]), word_of_piece[slots], context)
    chosen_words = word_of_piece[slots[chosen]]
    if len(chosen) != num_words:  # split_windows covers every piece; this guards the invariant
        raise DataError(f"{num_words - len(chosen)} words fell outside every window", field="words")

    def per_window(values):
        return tf.RaggedTensor.from_row_splits(values, splits)

    labels = None
    if word_labels is not None:
        slot_labels = np.full(len(slots), IGNORE_INDEX, np.int32)
        slot_labels[chosen] = _flat_word_labels(word_labels, words_per_sentence)[chosen_words]
        labels = per_window(slot_labels)
    def picks(values):
        return tf.RaggedTensor.from_value_rowids(values, window_of_slot[chosen], nrows=len(splits) - 1)

    return AlignedWords(
        piece_ids=per_window(flat_ids[slots].astype(np.int32)),
        labels=labels,
        pick_positions=picks((position[chosen] + 1).astype(np.int32)),
        pick_words=picks(chosen_words),
        window_sentence_ids=window_sentence_ids,
        words_per_sentence=words_per_sentence,
        sequence_length=int(sequence_length),
    )


# ---------------------------------------------------------------------------------------------- batching
def num_batches(aligned: AlignedWords, batch_size: int, drop_remainder: bool = False) -> int:
    """Batches in one pass of `windows_dataset` (every padding mode cuts the windows into full batches
    and at most one partial batch).

    Example:
        >>> num_batches(align_words(tf.ragged.constant([[[5]], [[6]], [[7]]]), sequence_length=8), 2)
        2
    """
    whole, rest = divmod(len(aligned), batch_size)
    return whole + (rest > 0 and not drop_remainder)


def pack_labels(labels: tf.RaggedTensor, width) -> tf.Tensor:
    """Ragged piece labels ``[batch, (pieces)]`` -> ``[batch, width]``, -100 at [CLS], [SEP] and padding."""
    labels = tf.cast(labels, tf.int32)
    cls = tf.fill(tf.stack([labels.nrows(), tf.constant(1, labels.row_splits.dtype)]), IGNORE_INDEX)
    labels = tf.concat([tf.RaggedTensor.from_tensor(cls), labels], axis=1)
    shape = tf.stack([labels.nrows(), tf.cast(width, labels.row_splits.dtype)])
    return labels.to_tensor(default_value=IGNORE_INDEX, shape=shape)


def windows_dataset(aligned: AlignedWords, tokenizer, *, batch_size: int, padding: str = "grouped",
                    with_labels: bool = True, with_picks: bool = False, shuffle: bool = False, seed: int = 0,
                    sort_by_length: bool = False, drop_remainder: bool = False) -> tf.data.Dataset:
    """Batches of ``(features, labels)`` (training), or ``(features, picks)`` with `with_picks` (prediction).

    Padding:
        ``grouped``  `batching`'s length buckets (windows of similar length share a batch), each batch
                     padded to its longest: the least padding for training (the default).
        ``bucket``   the same batches, each padded to its bucket boundary: few shapes, for ``jit_compile``.
        ``dynamic``  batches in dataset order (shuffled if asked), padded to their longest; with
                     `sort_by_length` (prediction) the windows are ordered by length first.
        ``fixed``    every batch ``[batch_size, sequence_length]`` (TPU).

    `picks` is ``{"positions": [batch, (words)], "words": [batch, (words)]}``: see `AlignedWords`.

    Example:
        >>> aligned = align_words(tf.ragged.constant([[[5], [6, 7]]]), [[1, 2]], sequence_length=8)
        >>> features, labels = next(iter(windows_dataset(aligned, tok, batch_size=2)))  # doctest: +SKIP
        >>> labels.numpy().tolist()  # doctest: +SKIP
        [[-100, 1, 2, -100, -100]]
    """

    if padding not in PADDINGS:
        raise ConfigError(f"unknown padding {padding!r}; use one of {', '.join(PADDINGS)}")
    if with_labels and aligned.labels is None:
        raise ConfigError("these windows have no labels: align_words(..., word_labels) to train or evaluate on them")
    sequence_length = aligned.sequence_length
    check_batch_sizes(batch_size, sequence_length, tokenizer)
    columns = {"first": aligned.piece_ids}
    if with_labels:
        columns["label"] = aligned.labels
    if with_picks:
        columns["positions"], columns["words"] = aligned.pick_positions, aligned.pick_words
    if sort_by_length:
        order = np.argsort(aligned.window_lengths, kind="stable")
        columns = {name: tf.gather(values, order) for name, values in columns.items()}
    dataset = tf.data.Dataset.from_tensor_slices(columns)
    if shuffle:
        dataset = dataset.shuffle(max(len(aligned), 1), seed=seed, reshuffle_each_iteration=True)
    bucketed = padding in ("grouped", "bucket")
    dataset = batching.batch_examples(
        dataset, batch_size, padding="bucket" if bucketed else padding, sequence_length=sequence_length,
        drop_remainder=drop_remainder, shuffle_seed=seed if shuffle and bucketed else None,
    )
    fixed_batch = batch_size if padding == "fixed" and drop_remainder else None
    dynamic = tf.constant(batching.DYNAMIC_WIDTH, tf.int32)

    def pack(batch, width):
        features = pack_batch(tokenizer, batch, dynamic if padding == "grouped" else width, sequence_length, fixed_batch)
        outputs = [features]
        if with_labels:
            outputs.append(pack_labels(batch["label"], tf.shape(features["token_ids"])[1]))
        if with_picks:
            outputs.append({"positions": batch["positions"], "words": batch["words"]})
        return tuple(outputs) if len(outputs) > 1 else features

    dataset = dataset.map(pack, num_parallel_calls=tf.data.AUTOTUNE)
    # A known length: Keras shows progress from the first epoch and does not warn that the data "ran out".
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(num_batches(aligned, batch_size, drop_remainder)))
    return dataset.prefetch(tf.data.AUTOTUNE)


# ------------------------------------------------------------------------------------- predictions
def predict_words(predict_batch: Callable, aligned: AlignedWords, tokenizer, *, batch_size: int = 64) -> np.ndarray:
    """Per-word outputs ``[words, ...]`` (corpus order): `predict_batch(features)` gives ``[batch, width, ...]``
    (e.g. a token classifier's ``predict_on_batch``), read at each word's first piece in its window.

    Windows are run sorted by length, padded to the longest of each batch.

    Example:
        >>> logits = predict_words(model.predict_on_batch, aligned, tokenizer)  # doctest: +SKIP
        >>> tags = [[names[i] for i in row] for row in aligned.per_sentence(logits.argmax(-1))]  # doctest: +SKIP
    """
    dataset = windows_dataset(aligned, tokenizer, batch_size=batch_size, padding="dynamic", with_labels=False,
                              with_picks=True, sort_by_length=True)
    out, seen = None, np.zeros(aligned.num_words, bool)
    for features, picks in dataset:
        values = np.asarray(predict_batch(features))
        rows = picks["positions"].value_rowids().numpy()
        words = picks["words"].flat_values.numpy()
        if out is None:
            out = np.zeros((aligned.num_words,) + values.shape[2:], values.dtype)
        out[words] = values[rows, picks["positions"].flat_values.numpy()]
        seen[words] = True
    if not seen.all():  # align_words gives every word a window; this guards the invariant
        raise DataError(f"{int((~seen).sum())} words got no prediction", field="words")
    return out if out is not None else np.zeros([0])
