"""`ptft export`: from a fine-tuned model directory, with its own preprocessing settings, through the CLI."""
import json

import numpy as np
import pytest
import tensorflow as tf

from ptft_keras import cli
from ptft_keras.jobs.export import ExportConfig, load_finetuned_dir, run
from ptft_keras.data.text_rewrites import normalize_text
from ptft_keras.jobs.model_dir import METRICS_FILE, save_model_dir, write_json

from export.conftest import finetuned, tokenizer  # noqa: F401 - the export tests' fixtures
from export.helpers import LABELS, fitted_reference_logits, reference_outputs


@pytest.fixture(scope="module")
def model_dir(finetuned, tokenizer, tmp_path_factory):
    directory = tmp_path_factory.mktemp("runs") / "sentiment"
    save_model_dir(directory, finetuned, tokenizer, task="classification", label_names=LABELS,
                   training_config={"sequence_length": 24, "text_normalization": "html_breaks", "learning_rate": 1e-3})
    write_json(directory / METRICS_FILE, {"accuracy": 0.875, "loss": 0.31})
    return directory


@pytest.fixture
def export_command(monkeypatch):
    """`ptft export` registered as the lead registers it in cli.COMMANDS."""
    monkeypatch.setitem(cli.COMMANDS, "export", ("ptft_keras.jobs.export", "ExportConfig", ("model", "output"),
                                                 "export a fine-tuned model for TF Serving"))


def test_run_prints_the_version_dir_last_and_uses_the_directory_settings(model_dir, finetuned, tokenizer, tmp_path,
                                                                          capsys):
    base = tmp_path / "saved_models" / "sentiment"
    assert run(ExportConfig(model=str(model_dir), output=str(base))) == 0
    version_dir = capsys.readouterr().out.strip().splitlines()[-1]
    assert version_dir == str(base / "1")
    card = json.loads((base / "1" / "model_card.json").read_text(encoding="utf-8"))
    assert (card["sequence_length"], card["text_normalization"]) == (24, "html_breaks")
    assert card["metrics"] == {"accuracy": 0.875, "loss": 0.31}
    assert card["training_config"]["learning_rate"] == 1e-3 and card["source"] == str(model_dir)

    texts = ["Loved it.<br /><br />Really!", "dull<br>and long"]
    out = tf.saved_model.load(version_dir).signatures["serving_default"](text=tf.constant(texts))
    logits, _ = reference_outputs(finetuned, tokenizer, normalize_text(texts, "html_breaks"), sequence_length=24)
    np.testing.assert_allclose(out["logits"].numpy(), logits, atol=1e-5, rtol=0)


def test_cli_flags_override_and_a_second_export_is_version_2(model_dir, tmp_path, capsys, export_command):
    base = tmp_path / "sentiment"
    assert cli.main(["export", "--model", str(model_dir), "--output", str(base)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(base / "1")
    assert cli.main(["export", "--model", str(model_dir), "--output", str(base), "--sequence-length", "12",
                     "--text-normalization", "none", "--model-name", "reviews"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(base / "2")
    card = json.loads((base / "2" / "model_card.json").read_text(encoding="utf-8"))
    assert (card["sequence_length"], card["text_normalization"], card["model_name"]) == (12, None, "reviews")


def test_a_model_directory_on_an_object_store_exports_to_one(model_dir, finetuned, tokenizer, tmp_path, capsys,
                                                           export_command, monkeypatch):
    """TensorFlow's ram:// stands in for gs://: the model directory is read from it, versions 1 and 2 are
    written there (saved_model.pb last), and the uploaded version serves what a local export serves."""
    from ptft_keras import storage

    monkeypatch.setattr(storage, "CACHE_DIR", tmp_path / "cache")
    remote_model, base = "ram://ptft-tests/export/model", "ram://ptft-tests/export/served"
    for path in model_dir.rglob("*"):
        if path.is_file():
            target = f"{remote_model}/{path.relative_to(model_dir).as_posix()}"
            tf.io.gfile.makedirs(target.rsplit("/", 1)[0])
            tf.io.gfile.copy(str(path), target)
    for version in (1, 2):
        assert cli.main(["export", "--model", remote_model, "--output", base]) == 0
        assert capsys.readouterr().out.strip().splitlines()[-1] == f"{base}/{version}"
    assert not any(name.startswith(".tmp") for name in tf.io.gfile.listdir(base))
    served = storage.local_copy(f"{base}/2")
    assert (served / "saved_model.pb").is_file() and (served / "model_card.json").is_file()
    texts = ["Loved it.<br /><br />Really!", "dull<br>and long"]
    out = tf.saved_model.load(str(served)).signatures["serving_default"](text=tf.constant(texts))
    logits, _ = reference_outputs(finetuned, tokenizer, normalize_text(texts, "html_breaks"), sequence_length=24)
    np.testing.assert_allclose(out["logits"].numpy(), logits, atol=1e-5, rtol=0)


def test_cli_reports_a_pretrained_checkpoint_and_missing_options(minilm_path, tmp_path, capsys, export_command):
    assert cli.main(["export", "--model", str(minilm_path), "--output", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "pretrained checkpoint, not a fine-tuned model directory" in err and "ptft finetune" in err
    assert not (tmp_path / "m").exists()
    assert cli.main(["export", "--model", str(minilm_path)]) == 2
    assert "--output" in capsys.readouterr().err


def test_load_finetuned_dir(model_dir):
    model, tokenizer, info, metrics = load_finetuned_dir(model_dir)
    assert info.task == "classification" and info.label_names == LABELS and info.sequence_length == 24
    assert metrics["accuracy"] == 0.875 and tokenizer.vocab_size == model.backbone.vocabulary_size


def test_the_directory_truncation_strategy_is_exported(finetuned, tokenizer, tmp_path):
    directory = tmp_path / "runs" / "reviews"
    save_model_dir(directory, finetuned, tokenizer, task="classification", label_names=LABELS,
                   training_config={"sequence_length": 12, "truncation": "windows", "window_stride": 4,
                                    "window_pooling": "max"})
    assert run(ExportConfig(model=str(directory), output=str(tmp_path / "reviews"))) == 0
    card = json.loads((tmp_path / "reviews" / "1" / "model_card.json").read_text(encoding="utf-8"))
    assert card["truncation"] == {"truncation": "windows", "window_stride": 4, "window_pooling": "max"}
    texts = ["a wonderful film " * 10 + "but awful in the end", "fine"]
    out = tf.saved_model.load(str(tmp_path / "reviews" / "1")).signatures["serving_default"](text=tf.constant(texts))
    expected = fitted_reference_logits(finetuned, tokenizer, texts, sequence_length=12, truncation="windows",
                                       window_stride=4, window_pooling="max")
    np.testing.assert_allclose(out["logits"].numpy(), expected, atol=1e-5, rtol=0)
