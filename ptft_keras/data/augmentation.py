"""Transfer-set augmentation for distillation (Tang et al. 2019, "Distilling Task-Specific Knowledge from BERT
into Simple Neural Networks", section 3.3): synthetic texts for the teacher to label, so that a student learns
the teacher's function on more inputs than the training set holds.

Each augmented copy of a text is made word by word (words are the whitespace-separated tokens):

1. token masking: each word is replaced by `mask_token` (the teacher's [MASK]) with probability `p_mask`;
2. n-gram sampling: then, with probability `p_ngram`, only a random n-gram of the masked words is kept, n drawn
   uniformly from 1..`max_ngram` (a text of n words or fewer is kept whole).

(Tang et al.'s third rule, part-of-speech-guided word replacement, needs a tagger and is left out.) A copy that
equals its text (word for word: spacing is not a difference) or an earlier copy of it is dropped: it would
only count the text twice.

Copies are deterministic: copy k of text i depends only on the seed, k, i and that text, never on how many
copies are asked for or on the other texts, so copy 0 of a transfer set is the same text list whether 1 or 8
copies are made (and its teacher outputs can be cached once for both).

Example:
    >>> augmentation = Augmentation(copies=3, p_mask=0.3, p_ngram=0.5, seed=0)
    >>> rows = augment(["a gripping , funny and touching film", "dull"], augmentation=augmentation)
    >>> for row in rows:
    ...     print(row.source, row.copy, row.text)
    0 0 gripping [MASK]
    1 0 [MASK]
    0 1 [MASK] [MASK] , [MASK] and touching [MASK]
    0 2 [MASK] gripping , [MASK] and touching film
    >>> augment(["a gripping , funny and touching film", "dull"], augmentation=augmentation) == rows
    True
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import NamedTuple, Sequence

DEFAULT_P_MASK = 0.1
DEFAULT_P_NGRAM = 0.25
DEFAULT_MAX_NGRAM = 5
DEFAULT_MASK_TOKEN = "[MASK]"


@dataclass(frozen=True)
class Augmentation:
    """How many augmented copies of each text to make, and the rules (see the module docstring)."""

    copies: int = 0
    p_mask: float = DEFAULT_P_MASK
    p_ngram: float = DEFAULT_P_NGRAM
    max_ngram: int = DEFAULT_MAX_NGRAM
    mask_token: str = DEFAULT_MASK_TOKEN
    seed: int = 0

    def __post_init__(self):
        if self.copies < 0:
            raise ValueError(f"augmentation: copies must be 0 or more, not {self.copies}")
        for name in ("p_mask", "p_ngram"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"augmentation: {name} must be between 0 and 1, not {getattr(self, name)}")
        if self.max_ngram < 1:
            raise ValueError(f"augmentation: max_ngram must be 1 or more, not {self.max_ngram}")
        if not self.mask_token or any(c.isspace() for c in self.mask_token):
            raise ValueError(f"augmentation: the mask token must be one word, not {self.mask_token!r}")


class AugmentedRow(NamedTuple):
    """One augmented text: `source` is the index of the text it was made from, `copy` which copy it is."""

    source: int
    copy: int
    text: str
    pair: str | None


def augment_words(words: Sequence[str], rng: random.Random, augmentation: Augmentation) -> list[str]:
    """One augmented copy of `words`: masking, then n-gram sampling (the rules of the module docstring).

    Example:
        >>> augment_words("the film is a delight".split(), random.Random(0), Augmentation(p_mask=1, p_ngram=0))
        ['[MASK]', '[MASK]', '[MASK]', '[MASK]', '[MASK]']
        >>> len(augment_words("one two three four five six seven".split(), random.Random(0),
        ...                   Augmentation(p_mask=0, p_ngram=1, max_ngram=2))) in (1, 2)
        True
    """
    masked = [augmentation.mask_token if rng.random() < augmentation.p_mask else word for word in words]
    if rng.random() < augmentation.p_ngram:
        n = rng.randint(1, augmentation.max_ngram)
        if n < len(masked):
            start = rng.randrange(len(masked) - n + 1)
            masked = masked[start:start + n]
    return masked


def augment_copy(text: str, pair: str | None, index: int, copy: int, augmentation: Augmentation):
    """Copy `copy` of the text at `index` (and its pair): `(text, pair)`, the same in every process."""
    rng = random.Random(f"{augmentation.seed}/{copy}/{index}")
    new_text = " ".join(augment_words(text.split(), rng, augmentation))
    new_pair = None if pair is None else " ".join(augment_words(pair.split(), rng, augmentation))
    return new_text, new_pair


def augment(texts: Sequence[str], pairs: Sequence[str] | None = None, *,
            augmentation: Augmentation) -> list[AugmentedRow]:
    """`augmentation.copies` augmented copies of each text (with its pair), copy by copy: all of copy 0, then
    all of copy 1, ...; a copy equal to its text or to an earlier copy of it (or empty) is left out."""
    rows = []
    def words(text):
        return None if text is None else " ".join(text.split())

    # a copy is compared with its text's words: "a film " and its unmasked copy "a film" are the same text
    seen: list[set] = [{(words(text), words(None if pairs is None else pairs[i]))} for i, text in enumerate(texts)]
    for copy in range(augmentation.copies):
        for i, text in enumerate(texts):
            pair = None if pairs is None else pairs[i]
            new = augment_copy(text, pair, i, copy, augmentation)
            if new in seen[i] or not new[0] or (pair is not None and not new[1]):
                continue
            seen[i].add(new)
            rows.append(AugmentedRow(i, copy, *new))
    return rows
