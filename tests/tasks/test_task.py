"""TaskModel plumbing: trainable flags set by hand, loading errors."""
import keras
import keras_hub
import numpy as np
import pytest

from ptft_keras.errors import CheckpointError
from ptft_keras.tasks import SequenceClassifier, TokenClassifier

SIZES = dict(vocabulary_size=64, num_heads=2, hidden_dim=16, intermediate_dim=32, max_sequence_length=16)


def tiny(num_layers=2, task_cls=SequenceClassifier):
    keras.utils.set_random_seed(0)
    return task_cls(keras_hub.models.BertBackbone(num_layers=num_layers, **SIZES), num_labels=2)


def data():
    rng = np.random.default_rng(0)
    x = {"token_ids": rng.integers(1, 64, (8, 6)).astype("int32"), "padding_mask": np.ones((8, 6), "int32")}
    return x, rng.integers(0, 2, 8)


def values(layer):
    return [v.numpy().copy() for v in layer.weights]


def moved(before, layer):
    return any(not np.array_equal(a, b) for a, b in zip(before, values(layer)))


def test_freezing_by_hand_does_what_a_keras_user_expects():
    """Freeze every encoder layer but the last, fit: only the last layer and the head move.
    Then unfreeze by hand and fit again, without recompiling: now everything moves."""
    model = tiny()
    backbone = model.backbone
    frozen = [backbone.token_embedding, backbone.position_embedding, backbone.segment_embedding,
              backbone.embeddings_layer_norm, backbone.transformer_layers[0]]
    for layer in frozen:
        layer.trainable = False
    model.compile(jit_compile=False)
    training = [backbone.transformer_layers[-1], backbone.pooled_dense, model.head]
    before = {layer.name: values(layer) for layer in frozen + training}
    x, y = data()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert not any(moved(before[layer.name], layer) for layer in frozen)
    assert all(moved(before[layer.name], layer) for layer in training)

    for layer in frozen:
        layer.trainable = True
    before = {layer.name: values(layer) for layer in frozen}
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert all(moved(before[layer.name], layer) for layer in frozen)
    assert len(model.optimizer._trainable_variables) == len(model.trainable_variables)


def test_backbone_trainable_false_trains_the_head_only():
    model = tiny()
    model.backbone.trainable = False
    model.compile(jit_compile=False)
    before, head = values(model.backbone), values(model.head)
    model.fit(*data(), batch_size=8, epochs=1, verbose=0)
    assert not moved(before, model.backbone) and moved(head, model.head)


def test_load_errors_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(CheckpointError, match="no such model file"):
        SequenceClassifier.load(tmp_path / "missing.keras")
    token_model = tiny(task_cls=TokenClassifier)
    token_model.save(tmp_path / "ner.keras")
    wrong_class = r"ner.keras: holds a TokenClassifier, not a SequenceClassifier; load it with TokenClassifier.load"
    with pytest.raises(CheckpointError, match=wrong_class):
        SequenceClassifier.load(tmp_path / "ner.keras")
    assert isinstance(TokenClassifier.load(tmp_path / "ner.keras"), TokenClassifier)
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="junk.keras"):
        SequenceClassifier.load(tmp_path / "junk.keras")


def test_weights_of_another_architecture_are_refused(tmp_path):
    tiny(num_layers=3).save_weights(tmp_path / "three_layers.weights.h5")
    model = tiny(num_layers=2)
    misfit = (r"three_layers.weights.h5: the weights do not fit this SequenceClassifier .* \(2 layers, hidden 16\)"
              r".*holds 57 weights, the model has 41")
    with pytest.raises(CheckpointError, match=misfit):
        model.load_weights(tmp_path / "three_layers.weights.h5")
    with pytest.raises(CheckpointError, match="no such weights file"):
        model.load_weights(tmp_path / "none.weights.h5")


def test_weights_of_another_width_are_refused(tmp_path):
    keras.utils.set_random_seed(0)
    wide = SequenceClassifier(keras_hub.models.BertBackbone(num_layers=2, **{**SIZES, "hidden_dim": 32}), num_labels=2)
    wide.save_weights(tmp_path / "wide.weights.h5")
    with pytest.raises(CheckpointError, match="wide.weights.h5: the weights do not fit .* Keras said"):
        tiny().load_weights(tmp_path / "wide.weights.h5")


def test_own_weights_load_back(tmp_path):
    model, other = tiny(), tiny()
    other.head.logits.kernel.assign(np.ones_like(other.head.logits.kernel.numpy()))
    model.save_weights(tmp_path / "same.weights.h5")
    other.load_weights(tmp_path / "same.weights.h5")
    np.testing.assert_array_equal(other.head.logits.kernel.numpy(), model.head.logits.kernel.numpy())
