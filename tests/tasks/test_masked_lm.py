"""MaskedLM: head on masked positions only, tied to the embedding; weighted loss/metrics; HF head parity and export."""
import torch  # noqa: F401  (reference side first; see tests/conftest.py)
import transformers  # noqa: F401

import doctest

import keras
import numpy as np
import pytest
import tensorflow as tf

from ptft_keras.errors import CheckpointError
from ptft_keras.models.backbone import Backbone
from ptft_keras.models.hf_checkpoint import read_hf_checkpoint
from ptft_keras.tasks import masked_lm
from ptft_keras.tasks.masked_lm import MaskedLM

VOCAB, LENGTH, SLOTS = 61, 12, 3


def tiny_backbone(model_type="bert", seed=0):
    keras.utils.set_random_seed(seed)
    return Backbone.from_size(None, model_type=model_type, vocabulary_size=VOCAB, num_layers=1, hidden_dim=32,
                              num_heads=2, intermediate_dim=64, max_sequence_length=32, dropout=0.0)


def batch(model_type="bert", size=4, seed=0):
    rng = np.random.default_rng(seed)
    features = {
        "token_ids": rng.integers(5, VOCAB, (size, LENGTH)).astype("int32"),
        "padding_mask": np.ones((size, LENGTH), "int32"),
        "mask_positions": np.stack([rng.choice(LENGTH - 2, SLOTS, replace=False) for _ in range(size)]).astype("int32"),
    }
    features["padding_mask"][0, LENGTH - 2:] = 0
    if model_type == "bert":
        features["segment_ids"] = np.zeros((size, LENGTH), "int32")
    labels = {"mlm": rng.integers(5, VOCAB, (size, SLOTS)).astype("int32"),
              "nsp": rng.integers(0, 2, size).astype("int32")}
    weights = {"mlm": np.ones((size, SLOTS), "float32")}
    weights["mlm"][1, -1] = weights["mlm"][3, 1:] = 0.0  # padded prediction slots
    return features, labels, weights


def test_docstring_examples():
    result = doctest.testmod(masked_lm, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_head_scores_only_masked_positions_with_weights_tied_to_the_embedding():
    model = MaskedLM(tiny_backbone())
    features, _, _ = batch()
    logits = model(features)["mlm"].numpy()
    assert logits.shape == (4, SLOTS, VOCAB)

    # The same numbers by hand: gather first, then dense + GELU + LayerNorm, then the *embedding* transposed.
    sequence = model.backbone({k: v for k, v in features.items() if k != "mask_positions"})["sequence_output"]
    gathered = np.take_along_axis(sequence.numpy(), features["mask_positions"][..., None], axis=1)
    head = model.mlm_head
    hidden = head._intermediate_layer_norm(keras.activations.gelu(gathered @ head._intermediate_dense.kernel.numpy()
                                                                  + head._intermediate_dense.bias.numpy()))
    embedding = model.backbone.token_embedding.embeddings.numpy()
    np.testing.assert_allclose(logits, hidden.numpy() @ embedding.T + head._bias.numpy(), atol=1e-5)

    # Tied: no [hidden, vocab] output kernel of its own; the embedding moves the logits.
    assert not any(tuple(v.shape) == (32, VOCAB) for v in model.trainable_variables)
    model.backbone.token_embedding.embeddings.assign(embedding * 2.0)
    assert not np.allclose(model(features)["mlm"].numpy(), logits)


def test_loss_and_metrics_count_only_weighted_slots():
    model = MaskedLM(tiny_backbone(), nsp=True)
    features, labels, weights = batch()
    outputs = model(features)
    loss = float(model.compute_loss(y=labels, y_pred=outputs, sample_weight=weights))

    token_losses = keras.losses.sparse_categorical_crossentropy(labels["mlm"], outputs["mlm"], from_logits=True).numpy()
    nsp_losses = keras.losses.sparse_categorical_crossentropy(labels["nsp"], outputs["nsp"], from_logits=True).numpy()
    expected = (token_losses * weights["mlm"]).sum() / weights["mlm"].sum() + nsp_losses.mean()
    assert loss == pytest.approx(expected, rel=1e-5)

    scrambled = {**labels, "mlm": np.where(weights["mlm"] > 0, labels["mlm"], 7)}  # change only padded slots
    rescored = float(model.compute_loss(y=scrambled, y_pred=outputs, sample_weight=weights))
    assert rescored == pytest.approx(loss, rel=1e-6)

    metrics = model.compute_metrics(features, labels, outputs, weights)
    weighted_mean = (token_losses * weights["mlm"]).sum() / weights["mlm"].sum()
    assert float(metrics["mlm_loss"]) == pytest.approx(weighted_mean, rel=1e-5)
    hits = (outputs["mlm"].numpy().argmax(-1) == labels["mlm"]) * weights["mlm"]
    assert float(metrics["mlm_accuracy"]) == pytest.approx(hits.sum() / weights["mlm"].sum(), abs=1e-6)
    assert {"nsp_loss", "nsp_accuracy"} <= set(metrics)


def test_distilbert_has_no_nsp_head():
    model = MaskedLM(tiny_backbone("distilbert"))
    features, _, _ = batch("distilbert")
    assert set(model(features)) == {"mlm"}
    with pytest.raises(ValueError, match="pooled output"):
        MaskedLM(tiny_backbone("distilbert"), nsp=True)


def test_config_round_trip_and_keras_file(tmp_path):
    model = MaskedLM(tiny_backbone(), nsp=True)
    features, _, _ = batch()
    clone = MaskedLM.from_config(model.get_config())
    assert clone.nsp and clone.hidden_act == "gelu" and clone.model_type == "bert"
    model.save(tmp_path / "mlm.keras")
    loaded = keras.saving.load_model(tmp_path / "mlm.keras")
    assert isinstance(loaded, MaskedLM)
    np.testing.assert_allclose(loaded(features)["mlm"], model(features)["mlm"], atol=1e-6)


def _reference(kind, directory):
    """A tiny transformers model with a (non-trivial) pretraining head, saved to `directory`."""
    torch.manual_seed(0)
    if kind == "bert":
        config = transformers.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                         intermediate_size=48, max_position_embeddings=32)
        model = transformers.BertForPreTraining(config)
        bias = model.cls.predictions.bias
    else:
        config = transformers.DistilBertConfig(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=2, hidden_dim=48,
                                               max_position_embeddings=32)
        model = transformers.DistilBertForMaskedLM(config)
        bias = model.vocab_projector.bias
    with torch.no_grad():
        bias.normal_()  # zeros by default: make the bias count
    model.eval().save_pretrained(directory)
    return model


def _reference_logits(reference, kind, features):
    inputs = {"input_ids": torch.tensor(features["token_ids"], dtype=torch.long),
              "attention_mask": torch.tensor(features["padding_mask"], dtype=torch.long)}
    if kind == "bert":
        inputs["token_type_ids"] = torch.tensor(features["segment_ids"], dtype=torch.long)
    with torch.no_grad():
        out = reference(**inputs)
    logits = out.prediction_logits if kind == "bert" else out.logits
    gathered = np.take_along_axis(logits.numpy(), features["mask_positions"][..., None], axis=1)
    return gathered, (out.seq_relationship_logits.numpy() if kind == "bert" else None)


@pytest.mark.parametrize("kind", ["bert", "distilbert"])
def test_checkpoint_head_matches_transformers_and_exports_back(kind, tmp_path):
    reference = _reference(kind, tmp_path / "hf")
    features, _, _ = batch(kind)
    if kind == "bert":
        features["segment_ids"][:, 6:] = 1
    expected_mlm, expected_nsp = _reference_logits(reference, kind, features)

    _, tensors = read_hf_checkpoint(tmp_path / "hf")
    model = MaskedLM(Backbone.from_pretrained(tmp_path / "hf"), nsp=kind == "bert")
    assert model.load_hf_head(tensors)
    outputs = model(features)
    np.testing.assert_allclose(outputs["mlm"], expected_mlm, atol=1e-4)
    if kind == "bert":
        np.testing.assert_allclose(outputs["nsp"], expected_nsp, atol=1e-4)

    # Our export loads into transformers' pretraining class with nothing missing, and back into ours.
    model.save_pretrained(tmp_path / "ours")
    cls = transformers.BertForPreTraining if kind == "bert" else transformers.DistilBertForMaskedLM
    reloaded, info = cls.from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    np.testing.assert_allclose(_reference_logits(reloaded.eval(), kind, features)[0], expected_mlm, atol=1e-4)
    again = MaskedLM(Backbone.from_pretrained(tmp_path / "ours"), nsp=kind == "bert")
    assert again.load_hf_head(read_hf_checkpoint(tmp_path / "ours")[1])
    np.testing.assert_allclose(again(features)["mlm"], outputs["mlm"], atol=1e-6)


def test_checkpoint_without_head_keeps_a_fresh_one_and_a_broken_head_is_an_error(tmp_path):
    model = MaskedLM(tiny_backbone())
    before = model.mlm_head._bias.numpy().copy()
    assert not model.load_hf_head({"embeddings.word_embeddings.weight": np.zeros((VOCAB, 32))})
    np.testing.assert_array_equal(model.mlm_head._bias.numpy(), before)

    head = model.hf_head_tensors()
    partial = {k: v for k, v in head.items() if "LayerNorm" not in k}
    with pytest.raises(CheckpointError, match="incomplete: missing cls.predictions.transform.LayerNorm.weight"):
        model.load_hf_head(partial, path=tmp_path)
    wrong = {**head, "cls.predictions.bias": np.zeros(VOCAB + 1, "float32")}
    with pytest.raises(CheckpointError, match="different model size or vocabulary"):
        model.load_hf_head(wrong)


def test_all_minilm_has_no_head(minilm_path):
    from ptft_keras.models.hf_checkpoint import read_hf_tensors

    model = MaskedLM(Backbone.from_pretrained(minilm_path))
    assert not model.load_hf_head(read_hf_tensors(minilm_path))


def test_loss_is_normalised_over_the_global_batch(two_cpus):
    """Two replicas with different numbers of real slots: the loss is the global weighted mean, as on one device.

    (The whole job under MirroredStrategy is compared with one device in tests/training/test_pretrain.py.)
    """
    features, labels, weights = batch(size=4)
    data = tf.data.Dataset.from_tensors((features, labels, weights))
    results = []
    for strategy in (tf.distribute.get_strategy(),
                     # ReductionToOneDevice: no collective ops, so this test cannot clash with other
                     # MirroredStrategy instances of the test session (TF reuses collective keys).
                     tf.distribute.MirroredStrategy(two_cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())):
        with strategy.scope():
            model = MaskedLM(tiny_backbone())
            model.compile(optimizer=keras.optimizers.SGD(0.5))
        pooler = model.backbone.pooled_dense.kernel.numpy()
        history = model.fit(data.repeat(2), epochs=1, steps_per_epoch=2, verbose=0)
        results.append((history.history["loss"][0], [w.copy() for w in model.get_weights()]))
        np.testing.assert_array_equal(model.backbone.pooled_dense.kernel.numpy(), pooler)  # unused without NSP
    (loss_one, weights_one), (loss_two, weights_two) = results
    assert loss_two == pytest.approx(loss_one, rel=1e-5)
    for a, b in zip(weights_one, weights_two):
        np.testing.assert_allclose(a, b, atol=1e-5)
