"""TokenClassifier: -100 skipped by loss and metrics; an overfit NER batch scored by entity F1."""
import warnings

import keras
import keras_hub
import numpy as np
import pytest

from ptft_keras.errors import DataError
from ptft_keras.tasks import TokenClassifier
from ptft_keras.training.metrics import entity_f1
from ptft_keras.training.optimizer import make_optimizer

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
SIZES = dict(vocabulary_size=64, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32, max_sequence_length=16)


def tiny_ner(backbone_cls=keras_hub.models.DistilBertBackbone):
    keras.utils.set_random_seed(0)
    return TokenClassifier(backbone_cls(**SIZES), label_names=TAGS)


def ner_batch():
    """Four sentences of [CLS] pieces [SEP] [PAD]...: a word's tag on its first piece, -100 elsewhere."""
    rng = np.random.default_rng(0)
    s = -100  # skipped
    labels = np.array([
        [s, 1, 2, s, 0, 3, s, s, s, s],  # 4 words, the 2nd of two pieces
        [s, 3, s, 4, 0, s, s, s, s, s],
        [s, 0, 1, 2, s, 0, s, s, s, s],
        [s, 3, 0, s, s, s, s, s, s, s],
    ])
    lengths = np.array([7, 6, 7, 4])
    padding_mask = (np.arange(10) < lengths[:, None]).astype("int32")
    token_ids = rng.integers(4, 64, (4, 10)).astype("int32") * padding_mask
    word_tags = [[TAGS[i] for i in row[row != s]] for row in labels]
    return {"token_ids": token_ids, "padding_mask": padding_mask}, labels, word_tags


def test_shapes_and_loss_skips_ignored_positions():
    model = tiny_ner()
    x, labels, _ = ner_batch()
    logits = keras.ops.convert_to_numpy(model(x))
    assert logits.shape == (4, 10, 5)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    valid = labels != -100
    expected = -np.mean(log_probs[valid, labels[valid]])  # mean over labelled pieces only
    assert float(model.default_loss()(labels, logits)) == pytest.approx(expected, rel=1e-5)


def test_loss_decreases_and_predictions_map_back_to_word_tags():
    model = tiny_ner(keras_hub.models.BertBackbone)  # BERT's pooler is unused and frozen: no empty gradients
    x, labels, word_tags = ner_batch()
    model.compile(optimizer=make_optimizer(1e-2), jit_compile=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Gradients do not exist")
        history = model.fit(x, labels, batch_size=4, epochs=25, verbose=0).history
    assert history["loss"][-1] < 0.3 * history["loss"][0]
    assert history["accuracy"][-1] == 1.0
    predictions = np.argmax(model.predict(x, verbose=0), axis=-1)
    predicted = [[TAGS[i] for i in row[gold != -100]] for row, gold in zip(predictions, labels)]
    assert entity_f1(word_tags, predicted)["f1"] == 1.0


def test_unknown_tag_is_a_data_error():
    with pytest.raises(DataError, match="'B-MISC' .* was not seen in training"):
        tiny_ner().encode_labels(["O", "B-MISC"])


def test_save_load_round_trip(tmp_path):
    model = tiny_ner()
    x, _, _ = ner_batch()
    model.save(tmp_path / "ner.keras")
    loaded = TokenClassifier.load(tmp_path / "ner.keras")
    assert loaded.label_names == TAGS and loaded.get_config() == model.get_config()
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)

