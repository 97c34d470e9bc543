"""`ptft quickstart` end to end on tiny settings, its shipped sample data, and `ptft embed`.

The quickstart runs through the command line from a tiny random BERT checkpoint that uses the real
all-MiniLM-L6-v2 vocabulary (continued pretraining, like the default), on the shipped sample data.
The real default run (`ptft quickstart` with no flags, minutes) is the slow test at the end.
"""
import csv
import doctest
import json
import re
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf

from ptft_keras.cli import main
from ptft_keras.errors import ConfigError
from ptft_keras.jobs.quickstart import (
    CORPUS_FILE,
    MARKER_FILE,
    SAMPLE_DEV,
    SAMPLE_TRAIN,
    QuickstartConfig,
    _data,
    _evaluate,
    _prepare_output,
    embed,
    quickstart,
)

MAX_TRAIN_EXAMPLES = 40
SENTENCES = ["The soup was cold and the waiter was rude.", "What a lovely, funny little film."]


def read_tsv(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def tiny_checkpoint(directory, minilm_path):
    """A random 2-layer, 64-wide BERT saved as an HF directory with the MiniLM tokenizer."""
    from ptft_keras.data.tokenizer import Tokenizer
    from ptft_keras.models.backbone import Backbone

    keras.utils.set_random_seed(0)
    tokenizer = Tokenizer.from_pretrained(minilm_path)
    backbone = Backbone.from_size(None, vocabulary_size=tokenizer.vocab_size, num_layers=2, hidden_dim=64,
                                  num_heads=2, intermediate_dim=128, max_sequence_length=128)
    return backbone.save_pretrained(directory, tokenizer=tokenizer)


@pytest.fixture(scope="module")
def run(tmp_path_factory, minilm_path):
    """One tiny `ptft quickstart` through the CLI, shared by the tests that inspect it."""
    import contextlib
    import io

    root = tmp_path_factory.mktemp("quickstart")
    checkpoint = tiny_checkpoint(root / "checkpoint", minilm_path)
    argv = ["quickstart", "--model", checkpoint, "--output", root / "run", "--export-dir", root / "saved",
            "--pretrain-steps", 2, "--max-train-examples", MAX_TRAIN_EXAMPLES, "--epochs", 1, "--batch-size", 8,
            "--verbose", 0, "--sentences", *SENTENCES]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    assert code == 0, err.getvalue()
    summary = json.loads((root / "run" / MARKER_FILE).read_text())
    return SimpleNamespace(root=root, dir=root / "run", export=root / "saved", out=out.getvalue(), summary=summary)


# --- the shipped sample data ---------------------------------------------------------------------
def test_sample_data_is_balanced_distinct_and_split_cleanly():
    train, dev = read_tsv(SAMPLE_TRAIN), read_tsv(SAMPLE_DEV)
    assert len(train) >= 300 and len(dev) >= 100
    for rows in (train, dev):
        labels = [r["label"] for r in rows]
        assert set(labels) == {"negative", "positive"}
        assert abs(labels.count("positive") - labels.count("negative")) <= len(rows) // 20
        assert all(r["sentence"].strip() and r["sentence"] == r["sentence"].strip() for r in rows)
    sentences = [r["sentence"].lower() for r in train + dev]
    assert len(set(sentences)) == len(sentences), "duplicate sentences (also across train and dev)"
    lengths = [len(s.split()) for s in sentences]
    assert min(lengths) <= 5 and max(lengths) >= 20  # varied lengths
    assert len({w for s in sentences for w in re.findall(r"[a-z]+", s)}) > 1000  # varied vocabulary


# --- the tiny end-to-end run -----------------------------------------------------------------------
def test_every_artefact_is_written_and_printed(run):
    version_dir = run.export / "1"
    artefacts = [
        run.dir / CORPUS_FILE,
        run.dir / "pretrain" / "backbone" / "config.json",
        run.dir / "pretrain" / "logs",
        run.dir / "finetune" / "model.keras",
        run.dir / "finetune" / "labels.json",
        run.dir / "evaluation" / "metrics.json",
        run.dir / "evaluation" / "report.txt",
        version_dir / "saved_model.pb",
        version_dir / "assets" / "vocab.txt",
    ]
    missing = [str(p) for p in artefacts if not p.exists()]
    assert not missing, missing
    for path in (run.dir / CORPUS_FILE, run.dir / "pretrain" / "backbone", run.dir / "finetune",
                 run.dir / "evaluation" / "report.txt", version_dir, run.dir / MARKER_FILE):
        assert str(path) in run.out, f"{path} is not printed"
    assert f"tensorboard --logdir {run.dir / 'pretrain' / 'logs'}" in run.out
    assert run.summary["finished"] is True
    assert run.summary["export"] == str(version_dir)
    assert set(run.summary["seconds"]) >= {"pretrain", "finetune", "evaluate", "export", "total"}


def test_pretraining_corpus_is_the_training_text_cut_to_max_train_examples(run):
    documents = [d.split("\n") for d in (run.dir / CORPUS_FILE).read_text(encoding="utf-8").strip().split("\n\n")]
    assert [len(d) for d in documents] == [8] * (MAX_TRAIN_EXAMPLES // 8)  # short texts grouped for packing
    assert sum(documents, []) == [r["sentence"] for r in read_tsv(SAMPLE_TRAIN)[:MAX_TRAIN_EXAMPLES]]
    result = json.loads((run.dir / "pretrain" / "result.json").read_text())
    assert result["steps"] == 2 and result["config"]["corpus"] == str(run.dir / CORPUS_FILE)


def test_evaluation_table_is_on_the_whole_dev_set(run):
    report = json.loads((run.dir / "evaluation" / "metrics.json").read_text())
    dev = read_tsv(SAMPLE_DEV)
    assert report["count"] == len(dev)
    assert np.sum(report["confusion_matrix"]["matrix"]) == len(dev)
    assert report["metrics"] == run.summary["metrics"]
    assert "confusion matrix" in run.out and f"{report['metrics']['accuracy']:.4f}" in run.out
    training_config = json.loads((run.dir / "finetune" / "training_config.json").read_text())
    assert training_config["max_train_examples"] == MAX_TRAIN_EXAMPLES and training_config["epochs"] == 1


def test_reloaded_export_predicts_what_the_fine_tuned_model_predicts(run):
    from ptft_keras.jobs.model_dir import load_model_dir
    from ptft_keras.jobs.sequence_kind import predict_logits

    serve = tf.saved_model.load(str(run.export / "1")).signatures["serving_default"]
    served = serve(text=tf.constant(SENTENCES))
    model, tokenizer, info = load_model_dir(run.dir / "finetune")
    expected = tf.nn.softmax(predict_logits(model, tokenizer, info, SENTENCES)).numpy()
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=1e-5)
    labels = [info.label_names[i] for i in expected.argmax(-1)]
    assert [p["label"] for p in run.summary["predictions"]] == labels
    assert [p["text"] for p in run.summary["predictions"]] == SENTENCES
    for prediction in run.summary["predictions"]:  # printed: label, probability, sentence
        assert re.search(rf"{prediction['label']}\s+{prediction['probability']:.3f}\s+{re.escape(prediction['text'])}",
                         run.out)


def test_docstring_examples():
    import ptft_keras.jobs.quickstart

    result = doctest.testmod(ptft_keras.jobs.quickstart, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 5 and result.failed == 0


# --- output directory and option checks (no training) -----------------------------------------
def test_rerun_clears_only_the_previous_quickstart_files(tmp_path):
    output = tmp_path / "run"
    (output / "finetune").mkdir(parents=True)
    (output / "finetune" / "model.keras").write_text("old")
    (output / CORPUS_FILE).write_text("old")
    (output / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not written by ptft quickstart"):
        _prepare_output(output, QuickstartConfig())
    (output / MARKER_FILE).write_text("{}")
    _prepare_output(output, QuickstartConfig())
    assert sorted(p.name for p in output.iterdir()) == sorted([MARKER_FILE, "notes.txt"])
    assert json.loads((output / MARKER_FILE).read_text())["finished"] is False


@pytest.mark.parametrize("options, message", [
    ({"tfds": "glue/sst2", "train": "train.tsv"}, "either --tfds"),
    ({"eval": "dev.tsv"}, "--eval needs --train"),
    ({"model": "tiny", "pretrain_steps": 0}, "pretrain-steps > 0"),
    ({"pretrain_steps": -1}, ">= 0"),
])
def test_inconsistent_options_are_config_errors(tmp_path, options, message):
    with pytest.raises(ConfigError, match=message):
        quickstart(output=str(tmp_path / "run"), **options)
    assert not (tmp_path / "run").exists()  # nothing written before the options are checked


def test_data_sources_of_each_option():
    default = _data(QuickstartConfig())
    assert (default.train, default.eval) == (str(SAMPLE_TRAIN), str(SAMPLE_DEV))
    tfds = _data(QuickstartConfig(tfds="glue/sst2"))
    assert (tfds.train, tfds.eval) == ("tfds:glue/sst2@train", "tfds:glue/sst2@validation")
    own = _data(QuickstartConfig(train="mine.csv"))
    assert (own.train, own.eval) == ("mine.csv", None)


def test_without_an_evaluation_file_the_table_is_the_held_out_rows(tmp_path, capsys):
    from ptft_keras.jobs.report import task_report

    held_out = task_report("classification", [0, 1, 1], np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), ["neg", "pos"])
    finetuned = SimpleNamespace(report=held_out)
    report, files = _evaluate(finetuned, _data(QuickstartConfig(train="mine.csv")), QuickstartConfig(), tmp_path)
    assert report is held_out
    assert json.loads(files["metrics"].read_text())["metrics"] == held_out["metrics"]
    out = capsys.readouterr().out
    assert "rows held out of mine.csv" in out and "confusion matrix" in out


def test_cli_reports_option_errors_without_a_traceback(tmp_path, capsys):
    assert main(["quickstart", "--output", str(tmp_path), "--eval", "dev.tsv"]) == 2
    assert "error: eval: --eval needs --train" in capsys.readouterr().err


# --- ptft embed -----------------------------------------------------------------------------------
def test_embed_prints_normalised_embeddings_and_their_cosine(capsys):
    sentences = ["A cat sat on the mat.", "A kitten rested on the rug.", "Quarterly tax filing deadlines."]
    assert main(["embed", "--sentences", *sentences]) == 0
    out = capsys.readouterr().out
    assert out.count("dim=384 first 8:") == 3
    vectors = embed(sentences)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=-1), 1.0, atol=1e-5)
    printed = float(re.search(r"cosine similarity of the first two: (-?[0-9.]+)", out).group(1))
    assert printed == pytest.approx(float(vectors[0] @ vectors[1]), abs=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2  # related sentences are closer


# --- the real default run -----------------------------------------------------------------------
@pytest.mark.slow
def test_default_quickstart_clearly_beats_chance(tmp_path):
    """`ptft quickstart` on all-MiniLM-L6-v2 and the shipped data, with fewer pretraining steps (~2 minutes)."""
    result = quickstart(output=str(tmp_path / "run"), export_dir=str(tmp_path / "saved"), pretrain_steps=5,
                        verbose=2)
    assert result.evaluation["count"] == len(read_tsv(SAMPLE_DEV))
    assert result.evaluation["metrics"]["accuracy"] >= 0.75, result.evaluation["metrics"]
    assert [p["label"] for p in result.predictions] == ["positive", "negative", "negative", "positive"]
