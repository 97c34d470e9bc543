"""Transfer-set augmentation (Tang et al. 2019): seeded, and the masking and n-gram rules hold."""
import doctest
import random

import pytest

from ptft_keras.data import augmentation as module
from ptft_keras.data.augmentation import Augmentation, augment, augment_words

TEXTS = [f"the {adjective} film was , by all accounts , a {noun} of the year" for adjective, noun in
         [("new", "highlight"), ("old", "disaster"), ("long", "surprise"), ("short", "bore")]] + ["dull", "a b"]


def test_docstring_examples_run():
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_the_same_seed_gives_the_same_copies_and_another_seed_others():
    rows = augment(TEXTS, augmentation=Augmentation(copies=4, p_mask=0.2, p_ngram=0.3, seed=7))
    assert rows == augment(list(TEXTS), augmentation=Augmentation(copies=4, p_mask=0.2, p_ngram=0.3, seed=7))
    assert rows != augment(TEXTS, augmentation=Augmentation(copies=4, p_mask=0.2, p_ngram=0.3, seed=8))


def test_a_copy_does_not_depend_on_how_many_copies_or_on_the_other_texts():
    four = augment(TEXTS, augmentation=Augmentation(copies=4, p_mask=0.3, seed=1))
    two = augment(TEXTS, augmentation=Augmentation(copies=2, p_mask=0.3, seed=1))
    assert two == [row for row in four if row.copy < 2]  # copy by copy: copies 0 and 1 come first, unchanged
    alone = augment(TEXTS[:2], augmentation=Augmentation(copies=4, p_mask=0.3, seed=1))
    assert alone == [row for row in four if row.source < 2]


def test_masking_replaces_whole_words_at_about_p_mask_and_keeps_the_others_in_place():
    texts = [" ".join(f"w{i}_{j}" for j in range(20)) for i in range(200)]
    rows = augment(texts, augmentation=Augmentation(copies=3, p_mask=0.1, p_ngram=0, mask_token="<mask>", seed=0))
    masked = words = 0
    for row in rows:
        original, copy = texts[row.source].split(), row.text.split()
        assert len(copy) == len(original)  # no n-gram sampling at p_ngram 0
        assert all(new in (old, "<mask>") for old, new in zip(original, copy))
        masked += copy.count("<mask>")
        words += len(copy)
    assert 0.8 * len(texts) * 3 < len(rows) < 0.95 * len(texts) * 3  # a copy without any mask (0.9^20) is dropped
    assert 0.08 < masked / words < 0.12  # 12,000 words at p = 0.1
    assert augment(texts, augmentation=Augmentation(copies=2, p_mask=0, p_ngram=0)) == []  # copies = texts: dropped
    assert augment([" a  film "], augmentation=Augmentation(copies=2, p_mask=0, p_ngram=0)) == []  # spacing too
    assert {r.text for r in augment(["a b c"], augmentation=Augmentation(copies=1, p_mask=1))} == {"[MASK] [MASK] [MASK]"}


def test_ngram_sampling_keeps_a_run_of_1_to_5_words_at_about_p_ngram():
    texts = [" ".join(f"w{i}_{j}" for j in range(12)) for i in range(400)]
    rows = augment(texts, augmentation=Augmentation(copies=1, p_mask=0, p_ngram=0.25, seed=3))
    lengths = set()
    for row in rows:
        original, copy = texts[row.source].split(), row.text.split()
        start = original.index(copy[0])
        assert original[start:start + len(copy)] == copy  # a contiguous n-gram of the text
        assert 1 <= len(copy) <= 5
        lengths.add(len(copy))
    assert lengths == {1, 2, 3, 4, 5}
    assert 0.19 < len(rows) / len(texts) < 0.31  # the other copies equal their text and are left out
    # a text of n words or fewer is kept whole, so here only the 1-grams differ from it
    short = augment(["a b"], augmentation=Augmentation(copies=20, p_mask=0, p_ngram=1, max_ngram=2))
    assert {row.text for row in short} == {"a", "b"} and len(short) == 2


def test_masking_comes_before_ngram_sampling():
    rng = random.Random(0)
    for _ in range(50):
        copy = augment_words("a b c d e f g h".split(), rng, Augmentation(p_mask=1, p_ngram=1))
        assert 1 <= len(copy) <= 5 and set(copy) == {"[MASK]"}


def test_no_copy_repeats_its_text_or_another_copy_and_pairs_are_augmented_together():
    rows = augment(["good", "bad movie"], augmentation=Augmentation(copies=10, p_mask=0.5, p_ngram=0.5))
    by_source = {}
    for row in rows:
        by_source.setdefault(row.source, []).append(row.text)
    assert all(len(set(copies)) == len(copies) for copies in by_source.values())
    assert by_source[0] == ["[MASK]"]  # "good" has one other form
    assert "good" not in by_source[0] and "bad movie" not in by_source[1]
    pairs = augment(["a fine film"] * 3, ["it was great fun"] * 3,
                    augmentation=Augmentation(copies=2, p_mask=0.5, seed=2))
    assert pairs and all(row.pair is not None and row.pair.split() for row in pairs)
    assert len({(row.text, row.pair) for row in pairs if row.source == 0}) == sum(row.source == 0 for row in pairs)


@pytest.mark.parametrize("options, match", [({"copies": -1}, "copies"), ({"p_mask": 1.5}, "p_mask"),
                                            ({"p_ngram": -0.1}, "p_ngram"), ({"max_ngram": 0}, "max_ngram"),
                                            ({"mask_token": "two words"}, "one word")])
def test_bad_settings_are_refused(options, match):
    with pytest.raises(ValueError, match=match):
        Augmentation(**options)
