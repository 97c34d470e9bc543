"""Tests of the fine-tuned model directory, and the tiny checkpoints / model directories the other
job tests (test_finetune, test_evaluate, test_predict) build with `write_tiny_checkpoint` and
`write_tiny_model_dir`."""
import io
import json
import zipfile

import h5py
import keras
import numpy as np
import pytest

from ptft_keras.errors import CheckpointError
from ptft_keras.jobs.model_dir import (
    CONFIG_FILE,
    LABELS_FILE,
    MODEL_FILE,
    TOKENIZER_DIR,
    check_model_dir,
    is_model_dir,
    load_model_dir,
    read_model_info,
    save_model_dir,
)

POSITIVE = ["good", "great", "fine", "fun"]
NEGATIVE = ["bad", "awful", "dull", "boring"]
FILLER = ["the", "movie", "film", "plot", "was", "is", "very", "not", "a", "and"]
VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ",", ".", "<", ">", "/", "br"] + POSITIVE + NEGATIVE + FILLER


def tiny_tokenizer():
    from ptft_keras.data.tokenizer import Tokenizer

    return Tokenizer.from_vocabulary(VOCABULARY, model_max_length=64)


def tiny_backbone(model_type="bert"):
    from ptft_keras.models.backbone import Backbone

    return Backbone.from_size(None, model_type=model_type, vocabulary_size=len(VOCABULARY), num_layers=2,
                              hidden_dim=32, num_heads=2, intermediate_dim=64, max_sequence_length=64)


def write_tiny_checkpoint(directory, model_type="bert"):
    """A random 2-layer, 32-wide HF checkpoint directory with a 33-word vocabulary (one id per word)."""
    keras.utils.set_random_seed(0)
    return tiny_backbone(model_type).save_pretrained(directory, tokenizer=tiny_tokenizer())


def write_tiny_model_dir(directory, *, task="classification", label_names=("neg", "pos"), **training_config):
    """A fine-tuned model directory holding a random tiny classifier (no training: fast)."""
    from ptft_keras.tasks.sequence_classifier import SequenceClassifier
    from ptft_keras.jobs.sequence_kind import SEQUENCE_TASKS

    keras.utils.set_random_seed(0)
    label_names = list(label_names) if task != "regression" else []
    model = SequenceClassifier(tiny_backbone(), label_names=label_names or None, num_labels=None if label_names else 1,
                               problem_type=SEQUENCE_TASKS[task])
    config = {"task": task, "sequence_length": 16, "text_column": "text", "label_column": "label", **training_config}
    save_model_dir(directory, model, tiny_tokenizer(), task=task, label_names=label_names, training_config=config)
    return directory


def features(tokenizer, texts, sequence_length=16):
    return tokenizer(texts, sequence_length=sequence_length)


def test_round_trip_keeps_weights_labels_and_settings(tmp_path):
    directory = write_tiny_model_dir(tmp_path / "run", sequence_length=24, truncation="tail", text_normalization="html_breaks",
                                     text_column="sentence", text_pair_column=None)
    assert is_model_dir(directory)
    assert sorted(p.name for p in directory.iterdir()) == sorted([MODEL_FILE, TOKENIZER_DIR, LABELS_FILE, CONFIG_FILE])
    model, tokenizer, info = load_model_dir(directory)
    assert (info.task, info.label_names, info.num_labels) == ("classification", ["neg", "pos"], 2)
    assert (info.sequence_length, info.truncation, info.text_normalization, info.text_column) == (24, "tail", "html_breaks", "sentence")
    assert info.training_config["truncation"] == "tail"
    assert tokenizer.vocabulary == VOCABULARY
    keras.utils.set_random_seed(0)
    reference = write_tiny_model_dir(tmp_path / "again")  # same seed -> the same weights as saved
    again, _, _ = load_model_dir(reference)
    x = features(tokenizer, ["a good film", "dull"])
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(again(x)), atol=1e-6)


def test_labels_file_is_readable_by_label_vocabulary(tmp_path):
    from ptft_keras.data.labels import LabelVocabulary

    directory = write_tiny_model_dir(tmp_path / "run", label_names=["b", "a", "c"])
    assert json.loads((directory / LABELS_FILE).read_text()) == {"task": "classification", "labels": ["b", "a", "c"]}
    assert LabelVocabulary.load(directory / LABELS_FILE).labels == ["b", "a", "c"]


def test_saved_model_has_no_optimizer_state(tmp_path):
    from ptft_keras.tasks.sequence_classifier import SequenceClassifier

    model = SequenceClassifier(tiny_backbone(), label_names=["neg", "pos"])
    model.compile()
    model.optimizer.build(model.trainable_variables)  # Adam slots exist, as after fit
    tokenizer = tiny_tokenizer()
    save_model_dir(tmp_path / "run", model, tokenizer, task="classification", label_names=["neg", "pos"],
                   training_config={"sequence_length": 16})
    loaded, _, _ = load_model_dir(tmp_path / "run")
    x = features(tokenizer, ["a good film"])
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)
    with zipfile.ZipFile(tmp_path / "run" / MODEL_FILE) as archive:
        config = json.loads(archive.read("config.json"))
        weights = h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r")
        assert "optimizer" not in weights and not config.get("compile_config"), list(weights)


def test_info_defaults_for_a_minimal_config(tmp_path):
    directory = write_tiny_model_dir(tmp_path / "run")
    (directory / CONFIG_FILE).write_text(json.dumps({"sequence_length": 32}))
    info = read_model_info(directory)
    assert (info.sequence_length, info.truncation, info.window_pooling, info.text_pair_column) == (32, "head", "mean", None)


def test_a_pretrained_checkpoint_is_not_a_model_dir(tmp_path):
    checkpoint = write_tiny_checkpoint(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match="pretrained checkpoint.*ptft finetune --model") as error:
        load_model_dir(checkpoint)
    assert error.value.path == str(checkpoint)


def test_missing_pieces_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="no such directory"):
        check_model_dir(tmp_path / "nowhere")
    directory = write_tiny_model_dir(tmp_path / "run")
    (directory / MODEL_FILE).unlink()
    with pytest.raises(CheckpointError, match="missing model.keras"):
        load_model_dir(directory)


def test_broken_json_is_a_checkpoint_error_naming_the_file(tmp_path):
    directory = write_tiny_model_dir(tmp_path / "run")
    (directory / CONFIG_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON") as error:
        read_model_info(directory)
    assert error.value.path.endswith(CONFIG_FILE)
    (directory / CONFIG_FILE).unlink()
    with pytest.raises(CheckpointError, match="no training config"):
        read_model_info(directory)


@pytest.mark.parametrize("config, match", [
    ([1, 2], "expected a JSON object of training options, found a JSON list"),
    ({"task": "banana"}, "task 'banana' is not one of classification"),
    ({"sequence_length": "long"}, "sequence_length must be a positive whole number, found 'long'"),
    ({"sequence_length": 0}, "sequence_length must be a positive whole number, found 0"),
])
def test_an_edited_training_config_is_refused_naming_the_field(tmp_path, config, match):
    directory = write_tiny_model_dir(tmp_path / "run")
    labels = json.loads((directory / "labels.json").read_text())
    (directory / "labels.json").write_text(json.dumps({**labels, "task": None}))  # the task then comes from the config
    (directory / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=match) as error:
        read_model_info(directory)
    assert error.value.path.endswith((CONFIG_FILE, "labels.json"))
