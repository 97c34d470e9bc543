"""TFLite export: the .tflite gives the in-memory model's logits, shapes fall back for a BiLSTM, the job's flag."""
import json

import keras
import numpy as np
import pytest

from ptft_keras.errors import ConfigError
from ptft_keras.export.tflite import TFLITE_FILE, TFLiteModel, export_tflite
from ptft_keras.jobs.export import ExportConfig, run
from ptft_keras.jobs.model_dir import save_model_dir

from export.conftest import finetuned, tokenizer  # noqa: F401 - the export tests' fixtures
from export.helpers import LABELS, SEQUENCE_LENGTH, reference_outputs

TEXTS = ["a wonderful, moving film", "dull", "i hated every minute of this tedious, far too long and awful film"]


def test_a_bert_classifier_takes_any_batch_and_width_and_gives_the_models_logits(finetuned, tokenizer, tmp_path):
    version_dir = export_tflite(finetuned, tokenizer, tmp_path / "sentiment", task="classification",
                                label_names=LABELS, sequence_length=SEQUENCE_LENGTH)
    assert version_dir == tmp_path / "sentiment" / "1"
    card = json.loads((version_dir / "model_card.json").read_text(encoding="utf-8"))
    assert (card["tflite"]["batch"], card["tflite"]["width"]) == (None, None)
    assert card["tflite"]["inputs"] == ["padding_mask", "segment_ids", "token_ids"]
    assert (version_dir / "labels.txt").read_text(encoding="utf-8").split() == LABELS
    assert "TensorFlow Lite" in (version_dir / "README.md").read_text(encoding="utf-8")

    outputs = TFLiteModel(version_dir).predict(TEXTS)
    logits, probabilities = reference_outputs(finetuned, tokenizer, TEXTS)
    np.testing.assert_allclose(outputs["logits"], logits, atol=1e-5, rtol=0)
    np.testing.assert_allclose(outputs["probabilities"], probabilities, atol=1e-5, rtol=0)
    assert [label.decode() for label in outputs["label"]] == [LABELS[i] for i in logits.argmax(-1)]


def test_dynamic_quantization_shrinks_the_file_and_keeps_the_predictions(finetuned, tokenizer, tmp_path):
    plain = export_tflite(finetuned, tokenizer, tmp_path / "m", task="classification", label_names=LABELS,
                          sequence_length=SEQUENCE_LENGTH)
    small = export_tflite(finetuned, tokenizer, tmp_path / "m", task="classification", label_names=LABELS,
                          sequence_length=SEQUENCE_LENGTH, quantization="dynamic")
    assert small.name == "2"
    assert (small / TFLITE_FILE).stat().st_size < 0.6 * (plain / TFLITE_FILE).stat().st_size
    logits, _ = reference_outputs(finetuned, tokenizer, TEXTS)
    np.testing.assert_allclose(TFLiteModel(small).predict(TEXTS)["logits"], logits, atol=0.05, rtol=0)


def test_a_bilstm_falls_back_to_batch_one_at_the_sequence_length(tokenizer, tmp_path):
    from ptft_keras.models.bilstm import BiLSTMEncoder
    from ptft_keras.tasks import SequenceClassifier

    keras.utils.set_random_seed(0)
    model = SequenceClassifier(BiLSTMEncoder(vocabulary_size=tokenizer.vocab_size, embedding_dim=8, lstm_units=8),
                               num_labels=2, label_names=LABELS)
    features = tokenizer(TEXTS, sequence_length=SEQUENCE_LENGTH)
    logits = keras.ops.convert_to_numpy(model(features, training=False))
    version_dir = export_tflite(model, tokenizer, tmp_path / "bilstm", task="classification", label_names=LABELS,
                                sequence_length=SEQUENCE_LENGTH)
    card = json.loads((version_dir / "model_card.json").read_text(encoding="utf-8"))
    assert (card["tflite"]["batch"], card["tflite"]["width"]) == (1, SEQUENCE_LENGTH)
    np.testing.assert_allclose(TFLiteModel(version_dir).predict(TEXTS)["logits"], logits, atol=1e-5, rtol=0)


def test_ptft_export_format_tflite_from_a_model_directory(finetuned, tokenizer, tmp_path, capsys):
    model_dir = tmp_path / "runs" / "sentiment"
    save_model_dir(model_dir, finetuned, tokenizer, task="classification", label_names=LABELS,
                   training_config={"sequence_length": SEQUENCE_LENGTH})
    base = tmp_path / "exports" / "sentiment"
    assert run(ExportConfig(model=str(model_dir), output=str(base), format="tflite")) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(base / "1")
    assert (base / "1" / TFLITE_FILE).is_file() and (base / "1" / "tokenizer" / "vocab.txt").is_file()
    logits, _ = reference_outputs(finetuned, tokenizer, TEXTS)
    np.testing.assert_allclose(TFLiteModel(base / "1").predict(TEXTS)["logits"], logits, atol=1e-5, rtol=0)

    with pytest.raises(ConfigError, match="quantization='dynamic' is for format='tflite'"):
        run(ExportConfig(model=str(model_dir), output=str(base), quantization="dynamic"))
    assert sorted(p.name for p in base.iterdir()) == ["1"]


def test_token_classification_is_refused_with_a_pointer_to_the_savedmodel(finetuned, tokenizer, tmp_path):
    with pytest.raises(ConfigError, match="sequence tasks"):
        export_tflite(finetuned, tokenizer, tmp_path / "ner", task="token-classification", label_names=LABELS)
    assert not (tmp_path / "ner").exists()


def test_settings_the_savedmodel_export_refuses_are_refused_before_converting(finetuned, tokenizer, tmp_path):
    limit = finetuned.backbone.max_sequence_length
    with pytest.raises(ConfigError, match="sequence"):
        export_tflite(finetuned, tokenizer, tmp_path / "m", task="classification", sequence_length=limit + 8)
    with pytest.raises(ConfigError, match="pairs"):
        export_tflite(finetuned, tokenizer, tmp_path / "m", task="classification", pair=True, truncation="tail",
                      sequence_length=SEQUENCE_LENGTH)
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())


def test_sentence_pairs_are_packed_as_in_training(finetuned, tokenizer, tmp_path):
    pairs = ["the plot", "it is short", "nothing at all"]
    version_dir = export_tflite(finetuned, tokenizer, tmp_path / "pairs", task="classification", label_names=LABELS,
                                sequence_length=SEQUENCE_LENGTH, pair=True)
    logits, _ = reference_outputs(finetuned, tokenizer, TEXTS, pairs)
    np.testing.assert_allclose(TFLiteModel(version_dir).predict(TEXTS, pairs)["logits"], logits, atol=1e-5, rtol=0)


def test_a_model_no_shape_converts_leaves_no_version_and_names_each_try(finetuned, tokenizer, tmp_path, monkeypatch):
    import ptft_keras.export.tflite as tflite
    from ptft_keras.errors import CheckpointError

    def refuse(model, names, shape, quantization, scratch):
        raise ValueError(f"op X needs a static shape\nat {shape}" if shape[1] else "")

    monkeypatch.setattr(tflite, "_convert", refuse)
    with pytest.raises(CheckpointError, match=r"(?s)\[any, any\]: ValueError.*\[any, 32\]: at \[None, 32\].*"
                                              r"\[1, 32\]: at \[1, 32\].*export a SavedModel"):
        export_tflite(finetuned, tokenizer, tmp_path / "m", task="classification", label_names=LABELS,
                      sequence_length=SEQUENCE_LENGTH)
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())
