"""In-graph entity chunks equal the evaluation's (conlleval) spans, for BIO, IOB1 and BIOES tags."""
import random

import pytest
import tensorflow as tf

from ptft_keras.errors import ConfigError
from ptft_keras.export.entities import entity_chunks, tag_scheme
from ptft_keras.training.metrics import entity_spans

NAMES = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"]


def _graph_spans(sequences, names):
    rows, first, last, kinds = entity_chunks(tf.ragged.constant(sequences, dtype=tf.int32), names)
    spans = [[] for _ in sequences]
    for r, f, l, k in zip(rows.numpy(), first.numpy(), last.numpy(), kinds.numpy()):
        spans[r].append((k.decode(), int(f), int(l)))
    return spans


def test_random_tag_sequences_match_conlleval():
    rng = random.Random(0)
    sequences = [[rng.randrange(len(NAMES)) for _ in range(rng.randrange(0, 12))] for _ in range(300)]
    expected = [entity_spans([NAMES[i] for i in seq]) for seq in sequences]
    assert _graph_spans(sequences, NAMES) == expected


def test_empty_batch_and_all_outside():
    assert _graph_spans([[], [0, 0]], NAMES) == [[], []]


@pytest.mark.parametrize("bad", ["PER", "X-PER", "B-"])
def test_tags_that_are_not_bio_are_refused(bad):
    with pytest.raises(ConfigError, match="B-/I-/E-/S-"):
        tag_scheme(["O", bad])
