"""QuestionAnswerer: start/end logits, mean of the two losses, end to end through QA features."""
import warnings

import keras
import keras_hub
import numpy as np
import pytest

from ptft_keras.tasks import QAFeaturizer, QuestionAnswerer, best_answers
from ptft_keras.training.metrics import squad_scores
from ptft_keras.training.optimizer import make_optimizer

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "who", "where", "did", "does", "live", "lives", "in",
         "paris", "berlin", "rome", "anna", "ben", "carl", "work", "works", "and", ".", "?"]
SIZES = dict(num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64, max_sequence_length=32)
EXAMPLES = [  # question, context, answer
    ("Where does Anna live?", "Anna lives in Paris and Ben works in Rome.", "Paris"),
    ("Who works in Rome?", "Ben works in Rome and Anna lives in Paris.", "Ben"),
    ("Where does Carl work?", "Carl works in Berlin.", "Berlin"),
]


def tiny_qa():
    keras.utils.set_random_seed(0)
    return QuestionAnswerer(keras_hub.models.BertBackbone(vocabulary_size=len(VOCAB), **SIZES))


def squad_features():
    featurizer = QAFeaturizer(VOCAB, sequence_length=24, doc_stride=4, max_question_length=8)
    questions, contexts, answers = zip(*EXAMPLES)
    spans = [{"text": a, "answer_start": c.index(a)} for c, a in zip(contexts, answers)]
    return featurizer(questions, contexts, spans), list(contexts), list(answers)


def test_outputs_and_loss_is_the_mean_of_start_and_end():
    model = tiny_qa()
    features, _, _ = squad_features()
    outputs = model(features.inputs)
    assert set(outputs) == {"start_logits", "end_logits"}
    assert tuple(outputs["start_logits"].shape) == (3, 24)
    model.compile(jit_compile=False)
    result = model.evaluate(features.inputs, features.labels, verbose=0, return_dict=True)
    cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    start = float(cross_entropy(features.labels["start_positions"], outputs["start_logits"]))
    end = float(cross_entropy(features.labels["end_positions"], outputs["end_logits"]))
    assert result["loss"] == pytest.approx((start + end) / 2, rel=1e-5)
    assert {"start_logits_accuracy", "end_logits_accuracy"} <= set(result)


def test_overfits_and_answers_map_back_to_the_text():
    model = tiny_qa()
    features, contexts, answers = squad_features()
    model.compile(optimizer=make_optimizer(1e-2, warmup_steps=2), jit_compile=False)
    history = model.fit(features.inputs, features.labels, batch_size=3, epochs=40, verbose=0).history
    assert history["loss"][-1] < 0.2 * history["loss"][0]
    predictions = model.predict(features.inputs, verbose=0)
    found = best_answers(predictions["start_logits"], predictions["end_logits"], features, contexts)
    assert found == answers  # original casing, from character offsets
    assert squad_scores(found, [[a] for a in answers]) == {"exact_match": 1.0, "f1": 1.0, "count": 3}


def test_save_load_round_trip(tmp_path):
    model = tiny_qa()
    features, _, _ = squad_features()
    model.compile(jit_compile=False)
    model.save(tmp_path / "qa.keras")
    with warnings.catch_warnings():  # a compiled, never trained optimizer loads back silently
        warnings.filterwarnings("error", message="Skipping variable loading")
        loaded = QuestionAnswerer.load(tmp_path / "qa.keras")
    assert loaded.get_config() == model.get_config()
    for name, logits in model.predict(features.inputs, verbose=0).items():
        np.testing.assert_allclose(loaded.predict(features.inputs, verbose=0)[name], logits, atol=1e-6)
    assert loaded.evaluate(features.inputs, features.labels, verbose=0) == pytest.approx(
        model.evaluate(features.inputs, features.labels, verbose=0), rel=1e-6)
