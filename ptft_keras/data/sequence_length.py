"""Choose the sequence length from the training data instead of padding everything to 512.

The rule: the 95th percentile of the tokenized lengths (special tokens included), rounded up to a
multiple of 8 (friendly to tensor cores and XLA), capped at the checkpoint's maximum number of
positions. SST-2 sentences (about 13 tokens on average) get 48-64, IMDb reviews get the cap.

Only a seeded random sample of at most `max_rows` texts is tokenized: the percentile of 20,000 rows
is within a token or two of the full set's, and tokenizing 25k IMDb reviews would take longer.

Example:
    >>> from ptft_keras.data.sequence_length import choose_sequence_length
    >>> choose_sequence_length([10, 12, 13, 15, 40], max_length=512)
    40
    >>> choose_sequence_length([700, 900], max_length=512)
    512
"""
from __future__ import annotations

import numpy as np

from ptft_keras.errors import ConfigError, DataError

DEFAULT_PERCENTILE = 95.0
DEFAULT_MULTIPLE = 8
DEFAULT_MAX_ROWS = 20_000


def choose_sequence_length(
    lengths,
    *,
    max_length: int,
    percentile: float = DEFAULT_PERCENTILE,
    multiple: int = DEFAULT_MULTIPLE,
) -> int:
    """The `percentile` of `lengths` (full sequences, specials included) rounded up to `multiple`, capped.

    Example:
        >>> choose_sequence_length([3, 5, 9], max_length=128, percentile=100)
        16
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.size == 0:
        raise DataError("cannot choose a sequence length from no examples; pass --sequence-length N")
    if max_length < 1:
        raise ConfigError(f"max_length must be positive, got {max_length}")
    # "higher" so the chosen length really covers `percentile` percent of the examples.
    value = int(np.percentile(lengths, percentile, method="higher"))
    rounded = -(-max(value, 1) // multiple) * multiple
    return int(min(rounded, max_length))


def sample_rows(texts, max_rows: int = DEFAULT_MAX_ROWS, seed: int = 0) -> np.ndarray:
    """Indices of a seeded random sample of at most `max_rows` of `texts` (all indices when it is smaller).

    Example:
        >>> sample_rows(["a", "b", "c"], max_rows=10).tolist()
        [0, 1, 2]
    """
    n = len(texts)
    if n <= max_rows:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))


def token_lengths(tokenizer, texts, pairs=None, *, text_normalization: str | None = None, batch_size: int = 1024,
                  num_special_tokens: int | None = None):
    """Tokenized lengths of `texts` (and `pairs`) with special tokens: 2 for one segment, 3 for a pair.

    Texts are normalised and tokenized as for training (`truncation.tokenize_all`).

    Example:
        >>> token_lengths(tokenizer, ["hello world"])  # doctest: +SKIP
        array([4])
    """
    from ptft_keras.data.truncation import tokenize_all

    if num_special_tokens is None:
        num_special_tokens = 2 if pairs is None else 3
    lengths = 0
    for column in (texts, pairs):
        if column is not None:
            ids = tokenize_all(tokenizer, column, text_normalization=text_normalization, batch_size=batch_size)
            lengths = lengths + ids.row_lengths().numpy()
    return np.asarray(lengths, np.int64) + num_special_tokens


def sequence_length_from_data(
    tokenizer,
    texts,
    pairs=None,
    *,
    max_length: int,
    percentile: float = DEFAULT_PERCENTILE,
    multiple: int = DEFAULT_MULTIPLE,
    max_rows: int = DEFAULT_MAX_ROWS,
    seed: int = 0,
    text_normalization: str | None = None,
) -> int:
    """Tokenize (a sample of) the training texts and apply `choose_sequence_length`.

    Example:
        >>> sequence_length_from_data(tokenizer, train_texts, max_length=512)  # doctest: +SKIP
        64
    """
    index = sample_rows(texts, max_rows, seed)
    texts = [texts[i] for i in index]
    pairs = None if pairs is None else [pairs[i] for i in index]
    lengths = token_lengths(tokenizer, texts, pairs, text_normalization=text_normalization)
    return choose_sequence_length(lengths, max_length=max_length, percentile=percentile, multiple=multiple)
