"""`ptft finetune` -> `ptft evaluate` -> `ptft predict` through the command line, on a tiny random BERT
and a toy sentiment task a 2-layer model learns in a few dozen steps."""
import contextlib
import csv
import io
import json
import random
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf
from test_model_dir import FILLER, NEGATIVE, POSITIVE, write_tiny_checkpoint

from ptft_keras.cli import main
from ptft_keras.errors import ConfigError, DataError
from ptft_keras.jobs.finetune import FinetuneConfig, finetune
from ptft_keras.jobs.model_dir import load_model_dir
from ptft_keras.jobs.sequence_kind import SequenceKind


def read_splits(config):
    splits = SequenceKind().read_splits(config)
    return splits.train, splits.validation, splits.validation_name


def sentiment_rows(n, seed):
    """`(sentence, label)` rows: two words of the label's sentiment among neutral filler words."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        positive = rng.random() < 0.5
        words = rng.sample(POSITIVE if positive else NEGATIVE, 2) + rng.sample(FILLER, rng.randint(1, 8))
        rng.shuffle(words)
        rows.append((" ".join(words), "pos" if positive else "neg"))
    return rows


def write_tsv(path, rows, header=("sentence", "label")):
    path.write_text("\n".join("\t".join(map(str, r)) for r in [header, *rows]) + "\n", encoding="utf-8")
    return path


def cli(*argv):
    """Run `ptft ARGV`; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One fine-tuning run through the CLI, shared by the tests that inspect it."""
    root = tmp_path_factory.mktemp("finetune")
    checkpoint = write_tiny_checkpoint(root / "ckpt")
    train, dev = sentiment_rows(160, seed=0), sentiment_rows(40, seed=1)
    write_tsv(root / "train.tsv", train)
    write_tsv(root / "dev.tsv", dev)
    code, out, err = cli(
        "finetune", "--model", checkpoint, "--train", root / "train.tsv", "--validation", root / "dev.tsv",
        "--text-column", "sentence", "--label-column", "label", "--output", root / "run", "--epochs", 4,
        "--batch-size", 16, "--learning-rate", 1e-2, "--seed", 0, "--verbose", 2,
    )
    assert code == 0, err
    return SimpleNamespace(root=root, dir=root / "run", out=out, train=train, dev=dev, checkpoint=checkpoint)


def test_model_directory_and_report_files(run):
    names = {p.name for p in run.dir.iterdir()}
    assert {"model.keras", "tokenizer", "labels.json", "training_config.json", "metrics.json", "report.txt",
            "curves.png"} <= names
    for name in ("model.keras", "metrics.json", "report.txt", "curves.png"):
        assert str(run.dir / name) in run.out  # where artefacts went is printed
    assert json.loads((run.dir / "labels.json").read_text()) == {"task": "classification", "labels": ["neg", "pos"]}
    report = json.loads((run.dir / "metrics.json").read_text())
    assert set(report["per_class"]) == {"neg", "pos"}
    assert np.sum(report["confusion_matrix"]["matrix"]) == len(run.dev)
    assert 1 <= len(report["history"]["val_accuracy"]) <= 4
    text = (run.dir / "report.txt").read_text()
    assert "precision" in text and "confusion matrix" in text


def test_the_model_learned_the_task(run):
    metrics = json.loads((run.dir / "metrics.json").read_text())["metrics"]
    assert metrics["accuracy"] >= 0.9, metrics


def test_sequence_length_is_chosen_from_the_training_data_and_printed(run):
    # every word is one token of the tiny vocabulary; + [CLS] and [SEP]
    lengths = [len(sentence.split()) + 2 for sentence, _ in run.train]
    expected = -(-int(np.percentile(lengths, 95, method="higher")) // 8) * 8
    config = json.loads((run.dir / "training_config.json").read_text())
    assert config["sequence_length"] == expected
    assert f"sequence length: {expected}" in run.out
    assert run.out.index("sequence length") < run.out.index("Epoch 1/")
    # auto: short texts keep their head; the resolved strategy is what is recorded and printed
    assert (config["truncation"], config["text_column"], config["epochs"], config["padding"]) == ("head", "sentence", 4, "bucket")
    assert f"truncation: head (texts over {expected - 2} tokens keep their first {expected - 2})" in run.out


def test_evaluate_prints_the_metrics_as_json_on_its_last_line(run):
    code, out, err = cli("evaluate", "--model", run.dir, "--data", run.root / "dev.tsv")  # columns as in training
    assert code == 0, err
    metrics = json.loads(out.strip().splitlines()[-1])
    assert {"accuracy", "f1", "mcc"} <= set(metrics)
    saved = json.loads((run.dir / "metrics.json").read_text())["metrics"]
    assert metrics == pytest.approx(saved, abs=1e-5)  # the same model and data as the final report
    assert "confusion matrix" in out and "precision" in out


def test_predict_writes_the_input_with_predictions(run):
    output = run.root / "predictions.tsv"
    code, out, err = cli("predict", "--model", run.dir, "--data", run.root / "dev.tsv", "--output", output)
    assert code == 0, err
    assert str(output) in out
    rows = list(csv.DictReader(output.open(), delimiter="\t", quoting=csv.QUOTE_NONE))
    assert list(rows[0]) == ["sentence", "label", "prediction", "score"]
    assert [(r["sentence"], r["label"]) for r in rows] == run.dev
    assert all(0.5 <= float(r["score"]) <= 1.0 for r in rows)
    accuracy = np.mean([r["prediction"] == r["label"] for r in rows])
    saved = json.loads((run.dir / "metrics.json").read_text())["metrics"]
    assert accuracy == pytest.approx(saved["accuracy"])


def test_max_train_examples_takes_the_first_rows_in_file_order(tmp_path):
    rows = sentiment_rows(30, seed=3)
    write_tsv(tmp_path / "train.tsv", rows)
    config = FinetuneConfig(train=str(tmp_path / "train.tsv"), text_column="sentence", max_train_examples=10,
                            validation_fraction=0.0)
    train, validation, _ = read_splits(config)
    assert train.texts == [s for s, _ in rows[:10]] and validation is None
    assert [line for _, line in train.locations] == list(range(2, 12))


def test_without_validation_file_a_seeded_share_is_held_out(tmp_path):
    write_tsv(tmp_path / "train.tsv", sentiment_rows(40, seed=4))
    config = FinetuneConfig(train=str(tmp_path / "train.tsv"), text_column="sentence", validation_fraction=0.25, seed=7)
    train, validation, name = read_splits(config)
    again = read_splits(config)[1]
    assert (len(train), len(validation)) == (30, 10) and "held out" in name
    assert not set(train.locations) & set(validation.locations)
    assert validation.locations == again.locations


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("errors")
    write_tiny_checkpoint(root / "ckpt")
    write_tsv(root / "train.tsv", sentiment_rows(20, seed=5))
    return root


def finetune_args(small, *extra):
    return ["finetune", "--model", small / "ckpt", "--train", small / "train.tsv", "--text-column", "sentence",
            "--output", small / "out", *extra]


def test_unseen_validation_label_names_file_and_line(small):
    write_tsv(small / "dev.tsv", [("a good film", "pos"), ("a dull film", "meh")])
    code, _, err = cli(*finetune_args(small, "--validation", small / "dev.tsv"))
    assert code == 2
    assert f"{small / 'dev.tsv'}, line 3, field 'label'" in err and "'meh'" in err


def test_missing_column_names_file_line_and_column(small):
    code, _, err = cli(*finetune_args(small, "--label-column", "sentiment"))
    assert code == 2
    assert f"{small / 'train.tsv'}, line 1, field 'sentiment'" in err and "available columns" in err


def test_empty_validation_file_is_an_error(small):
    (small / "empty.tsv").write_text("sentence\tlabel\n")
    code, _, err = cli(*finetune_args(small, "--validation", small / "empty.tsv"))
    assert code == 2 and str(small / "empty.tsv") in err and "no data rows" in err


def test_checkpoint_of_another_architecture(small):
    other = small / "gpt2"
    other.mkdir(exist_ok=True)
    (other / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 2, "n_embd": 32}))
    (other / "vocab.txt").write_text((small / "ckpt" / "vocab.txt").read_text())
    code, _, err = cli("finetune", "--model", other, "--train", small / "train.tsv", "--text-column", "sentence",
                       "--output", small / "out")
    assert code == 2 and "gpt2" in err and "model_type" in err and str(other) in err


def test_tasks_without_a_reader_and_bad_truncation_settings(small):
    with pytest.raises(ConfigError, match="question-answering.*not available"):
        finetune(train=str(small / "train.tsv"), output=str(small / "out"), task="question-answering")
    code, _, err = cli(*finetune_args(small, "--truncation", "head_tail", "--head-tokens", "200", "--sequence-length", "32"))
    assert code == 2 and "--head-tokens" in err
    with pytest.raises(DataError, match="too few"):
        read_splits(FinetuneConfig(train=str(small / "train.tsv"), text_column="sentence", validation_fraction=0.99))


def multilabel_documents(path, n, seed):
    """JSONL rows of 10-30 filler words plus 'good' for the label plot and 'fun' for acting."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        labels = sorted(rng.sample(["plot", "acting"], rng.randint(1, 2)))
        words = rng.choices(FILLER, k=rng.randint(10, 30))
        words += (["good"] if "plot" in labels else []) + (["fun"] if "acting" in labels else [])
        rows.append({"text": " ".join(words), "labels": labels})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def finetune_quietly(**options):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = finetune(**options)
    return result, out.getvalue()


def test_multilabel_long_texts_in_windows(tmp_path):
    result, out = finetune_quietly(
        model=str(write_tiny_checkpoint(tmp_path / "ckpt")), train=str(multilabel_documents(tmp_path / "train.jsonl", 40, 6)),
        output=str(tmp_path / "run"), task="multilabel", label_column="labels", sequence_length=16,
        truncation="windows", window_stride=7, epochs=1, freeze_epochs=0, batch_size=8, validation_fraction=0.25,
        verbose=0,
    )
    assert "training windows from 30 texts" in out
    assert result.info.truncation == "windows" and result.info.label_names == ["acting", "plot"]
    assert result.report["count"] == 10  # one pooled prediction per held-out document, not one per window
    assert set(result.report["per_class"]) == {"acting", "plot"}
    assert {"f1", "micro_f1", "subset_accuracy"} <= set(result.report["metrics"])


@pytest.fixture
def mirrored(two_cpus, monkeypatch):
    """`--strategy mirrored` over the 2 logical CPUs with `ReductionToOneDevice`: the job's own MirroredStrategy
    all-reduces with collective ops, whose keys collide between the strategy objects of one process (a second
    mirrored job in the same test process fails with mismatched all-reduce shapes; separate processes, as
    users run jobs, do not share keys)."""
    from ptft_keras.training import strategy as strategies

    original = strategies.resolve
    mirrored = tf.distribute.MirroredStrategy(two_cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())
    monkeypatch.setattr(strategies, "resolve", lambda name, **kw: mirrored if name == "mirrored" else original(name, **kw))
    return mirrored


@pytest.mark.slow  # distributed train functions trace slowly: ~40 s on 2 busy CPU cores
def test_mirrored_strategy(tmp_path, mirrored):
    """The same code path under MirroredStrategy over 2 logical CPUs, unfreezing after the first epoch."""
    write_tsv(tmp_path / "train.tsv", sentiment_rows(32, seed=8))
    result, out = finetune_quietly(
        model=str(write_tiny_checkpoint(tmp_path / "ckpt")), train=str(tmp_path / "train.tsv"), text_column="sentence",
        output=str(tmp_path / "run"), strategy="mirrored", epochs=2, batch_size=16, validation_fraction=0.0, verbose=0,
    )
    assert result.model.distribute_strategy.num_replicas_in_sync == 2
    assert len(result.history["loss"]) == 2 and "validation: none" in out
    assert load_model_dir(tmp_path / "run")[2].training_config["strategy"] == "mirrored"


@pytest.mark.slow  # XLA compiles one program per length bucket: about a minute on 2 CPU cores
def test_xla(tmp_path):
    """--jit-compile: the train step is XLA-compiled; batches come in length buckets (few shapes)."""
    write_tsv(tmp_path / "train.tsv", sentiment_rows(64, seed=9))
    result, out = finetune_quietly(
        model=str(write_tiny_checkpoint(tmp_path / "ckpt")), train=str(tmp_path / "train.tsv"), text_column="sentence",
        output=str(tmp_path / "run"), jit_compile=True, epochs=2, batch_size=16, verbose=0,
    )
    assert result.model.jit_compile is True and result.info.training_config["padding"] == "bucket"
    assert len(result.history["loss"]) == 2 and result.report["count"] == 6


def test_pooling_and_head_dropout_reach_the_model_and_its_saved_config(tmp_path):
    write_tsv(tmp_path / "train.tsv", sentiment_rows(24, seed=4))
    result, _ = finetune_quietly(
        model=str(write_tiny_checkpoint(tmp_path / "ckpt")), train=str(tmp_path / "train.tsv"), text_column="sentence",
        output=str(tmp_path / "run"), pooling="mean", head_dropout=0.0, epochs=1, batch_size=8, verbose=0,
    )
    assert (result.model.pooling, result.model.get_config()["dropout"]) == ("mean", 0.0)
    assert result.info.training_config["pooling"] == "mean"
    with pytest.raises(ConfigError, match="head_dropout must be in"):
        finetune(train=str(tmp_path / "train.tsv"), output=str(tmp_path / "bad"), head_dropout=1.0)
    with pytest.raises(SystemExit) as exit_:
        cli("finetune", "--train", tmp_path / "train.tsv", "--output", tmp_path / "bad", "--pooling", "max")
    assert exit_.value.code == 2


def test_freeze_schedule_from_the_options():
    from ptft_keras.jobs.finetune import freeze_schedule

    default = freeze_schedule(FinetuneConfig(), steps_per_epoch=100)
    assert (default.head_only, default.unit, default.top_blocks) == (30, "step", None)  # the warmup: 10% of 300
    recipe = freeze_schedule(FinetuneConfig(train_top_blocks=1), steps_per_epoch=100)
    assert recipe.top_blocks == 1 and recipe.trainable_groups(1_000, num_groups=8) == 2
    epochs = freeze_schedule(FinetuneConfig(freeze_epochs=1, unfreeze="gradual", train_top_blocks=2))
    assert [epochs.trainable_groups(e, 8) for e in range(5)] == [1, 2, 3, 3, 3]
    assert freeze_schedule(FinetuneConfig(freeze_steps=0)).head_only == 0
    with pytest.raises(ConfigError, match="--train-top-blocks"):
        freeze_schedule(FinetuneConfig(train_top_blocks=-1), steps_per_epoch=100)


# ------------------------------------------------------------------------------------------ resume
class Killed(Exception):
    """Stands in for kill -9 in-process: raised from inside `fit` at a chosen optimizer step."""


def kill_at(monkeypatch, step):
    from ptft_keras.training.step_log import StepLog

    original = StepLog.on_train_batch_end

    def dying(self, batch, logs=None):
        original(self, batch, logs)
        if self.step == step:
            raise Killed(step)

    monkeypatch.setattr(StepLog, "on_train_batch_end", dying)


def killed_at(monkeypatch, step, **options):
    """A fine-tuning run killed at optimizer step `step`."""
    with monkeypatch.context() as patch:
        kill_at(patch, step)
        with pytest.raises(Killed):
            finetune(**options)


@pytest.fixture(scope="module")
def resumable(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    write_tsv(root / "train.tsv", sentiment_rows(48, seed=11))
    options = dict(model=str(write_tiny_checkpoint(root / "ckpt")), train=str(root / "train.tsv"),
                   text_column="sentence", validation_fraction=0.25, epochs=3, batch_size=8, save_every=2,
                   learning_rate=1e-2, seed=3, verbose=0, padding="dynamic")
    unbroken = finetune(output=str(root / "unbroken"), **options)
    return SimpleNamespace(root=root, options=options, unbroken=unbroken)


def weights_of(result):
    return [np.asarray(w) for w in result.model.get_weights()]


@pytest.mark.parametrize("step", [5, 7])  # at an epoch's end (5 steps an epoch) and in the middle of one
def test_a_killed_run_resumes_where_its_last_backup_was_and_ends_as_an_unbroken_one(resumable, monkeypatch, step,
                                                                                  capsys):
    output = resumable.root / f"killed-{step}"
    with monkeypatch.context() as patch:
        kill_at(patch, step)
        with pytest.raises(Killed):
            finetune(output=str(output), **resumable.options)
    assert (output / ".resume" / "state.json").is_file() and not (output / "model.keras").exists()
    capsys.readouterr()
    resumed = finetune(output=str(output), **resumable.options)
    assert "resuming from the backup" in capsys.readouterr().out
    assert not (output / ".resume").exists()  # finished: the backup is gone
    for mine, theirs in zip(weights_of(resumed), weights_of(resumable.unbroken)):
        np.testing.assert_allclose(mine, theirs, atol=1e-5, rtol=0)
    assert resumed.history["val_accuracy"] == pytest.approx(resumable.unbroken.history["val_accuracy"], abs=1e-6)
    assert resumed.report["metrics"] == pytest.approx(resumable.unbroken.report["metrics"], abs=1e-5)


def test_a_run_killed_after_its_last_backup_restores_the_best_epoch_as_an_unbroken_one(resumable, monkeypatch,
                                                                                       capsys):
    """Killed after the last epoch's backup, before the best weights were put back (found by
    benchmarks/kill_resume.py: the rerun, with nothing left to train, kept the last epoch's weights)."""
    from ptft_keras.training.finetune_backup import ResumableEarlyStopping

    history = resumable.unbroken.history["val_accuracy"]
    assert history.index(max(history)) < len(history) - 1  # the best epoch (the first of ties) is not the last
    output = resumable.root / "killed-after-training"

    def dying(self, logs=None):
        raise Killed("after the last backup")

    with monkeypatch.context() as patch:
        patch.setattr(ResumableEarlyStopping, "on_train_end", dying)
        with pytest.raises(Killed):
            finetune(output=str(output), **resumable.options)
    capsys.readouterr()
    resumed = finetune(output=str(output), **resumable.options)
    assert "optimizer step 15 of 15" in capsys.readouterr().out
    for mine, theirs in zip(weights_of(resumed), weights_of(resumable.unbroken)):
        np.testing.assert_allclose(mine, theirs, atol=1e-5, rtol=0)
    assert resumed.report["metrics"] == pytest.approx(resumable.unbroken.report["metrics"], abs=1e-5)


def test_a_run_killed_after_stopping_early_does_not_train_on(tmp_path, monkeypatch):
    from ptft_keras.training.finetune_backup import ResumableEarlyStopping

    write_tsv(tmp_path / "train.tsv", sentiment_rows(32, seed=2))
    options = dict(model=str(write_tiny_checkpoint(tmp_path / "ckpt")), train=str(tmp_path / "train.tsv"),
                   text_column="sentence", validation_fraction=0.25, epochs=8, batch_size=8, learning_rate=1e-6,
                   early_stopping_patience=1, seed=1, verbose=0, padding="dynamic")
    unbroken = finetune(output=str(tmp_path / "unbroken"), **options)
    ran = len(unbroken.history["loss"])
    assert ran < 8  # it stopped early

    def dying(self, logs=None):
        raise Killed("after the early stop")

    with monkeypatch.context() as patch:
        patch.setattr(ResumableEarlyStopping, "on_train_end", dying)
        with pytest.raises(Killed):
            finetune(output=str(tmp_path / "killed"), **options)
    resumed = finetune(output=str(tmp_path / "killed"), **options)
    assert len(resumed.history["loss"]) == ran
    for mine, theirs in zip(weights_of(resumed), weights_of(unbroken)):
        np.testing.assert_allclose(mine, theirs, atol=1e-5, rtol=0)


def test_a_finished_directory_is_kept_unless_overwrite(resumable):
    finished = resumable.root / "unbroken"
    before = (finished / "metrics.json").read_text()
    with pytest.raises(ConfigError, match="holds a finished model; pass --overwrite"):
        finetune(output=str(finished), **resumable.options)
    assert (finished / "metrics.json").read_text() == before


def test_an_unfinished_run_with_other_options_is_not_mixed(resumable, monkeypatch):
    output = resumable.root / "other-options"
    killed_at(monkeypatch, 3, output=str(output), **resumable.options)
    with pytest.raises(ConfigError, match=r"other options \(learning_rate\)"):
        finetune(output=str(output), **{**resumable.options, "learning_rate": 5e-3})
    finetune(output=str(output), overwrite=True, **{**resumable.options, "epochs": 1})
    assert not (output / ".resume").exists() and (output / "model.keras").is_file()


def test_a_backup_from_before_an_option_existed_resumes_when_the_option_is_at_its_default(resumable, monkeypatch):
    import tensorflow as tf

    output = resumable.root / "older-backup"
    killed_at(monkeypatch, 3, output=str(output), **resumable.options)
    state_file = output / ".resume" / "state.json"
    state = json.loads(state_file.read_text())
    for newer in ("pooling", "head_dropout", "deterministic"):
        del state["fingerprint"][newer]
    state_file.write_text(json.dumps(state))
    with pytest.raises(ConfigError, match=r"other options \(pooling\)"):
        finetune(output=str(output), **{**resumable.options, "pooling": "mean"})
    calls = []
    monkeypatch.setattr(tf.config.experimental, "enable_op_determinism", lambda: calls.append(True))
    with pytest.raises(ConfigError, match=r"other options \(deterministic\)"):  # checked after the switch
        finetune(output=str(output), **{**resumable.options, "deterministic": True})
    assert calls == [True]
    resumed = finetune(output=str(output), **resumable.options)
    for mine, theirs in zip(weights_of(resumed), weights_of(resumable.unbroken)):
        np.testing.assert_allclose(mine, theirs, atol=1e-5, rtol=0)


def test_an_object_store_output_holds_everything_and_resumes_there(resumable, monkeypatch):
    """TensorFlow's in-memory file system stands in for gs://: the backup reaches it while training, a killed
    run resumes from it, and the finished model directory, report and TensorBoard logs end up there."""
    output = "ram://ptft-tests/resume-remote"
    with monkeypatch.context() as patch:
        kill_at(patch, 7)
        with pytest.raises(Killed):
            finetune(output=output, **resumable.options)
    assert tf.io.gfile.exists(f"{output}/.resume/state.json")
    resumed = finetune(output=output, **resumable.options)
    for mine, theirs in zip(weights_of(resumed), weights_of(resumable.unbroken)):
        np.testing.assert_allclose(mine, theirs, atol=1e-5, rtol=0)
    names = {name for _, _, files in tf.io.gfile.walk(output) for name in files}
    assert {"model.keras", "metrics.json", "training_config.json", "labels.json", "curves.png"} <= names
    assert any(name.startswith("events.out.tfevents") for name in names)
    assert not tf.io.gfile.exists(f"{output}/.resume")


def test_a_non_chief_worker_resumes_from_the_chiefs_backup_without_touching_it(tmp_path):
    """In a multi-worker job every worker resumes at the chief's backup (a worker starting at step 0 beside a
    resumed chief would hang the job); only the chief checks options, clears or writes the directory."""
    from ptft_keras.jobs.finetune import BACKUP_DIR, worker_resume_state
    from ptft_keras.training.callbacks import write_json_atomic
    from ptft_keras.training.finetune_backup import STATE_FILE

    state = {"step": 7, "epoch": 1, "batch": 2, "fingerprint": {"learning_rate": 1.0}}
    write_json_atomic(tmp_path / BACKUP_DIR / STATE_FILE, state)
    (tmp_path / "logs").mkdir()
    assert worker_resume_state(tmp_path, FinetuneConfig(learning_rate=5e-3)) == state
    assert worker_resume_state(tmp_path, FinetuneConfig(overwrite=True)) is None
    assert (tmp_path / BACKUP_DIR / STATE_FILE).is_file() and (tmp_path / "logs").is_dir()
    assert worker_resume_state(tmp_path / "elsewhere", FinetuneConfig()) is None


def test_a_file_system_tensorflow_cannot_open_is_a_clear_error(small):
    code, _, err = cli(*finetune_args(small)[:-2], "--output", "nosuch://bucket/run")
    assert code == 2 and "TensorFlow cannot open nosuch:// paths" in err


def test_the_final_report_reuses_the_best_epochs_validation_logits(resumable, monkeypatch, tmp_path):
    """No second pass over the validation set after training: the report comes from the logits scored at the
    end of the epoch whose weights were restored, and equals scoring the finished model afresh."""
    from ptft_keras.jobs import sequence_kind

    def no_second_pass(*args, **kwargs):
        raise AssertionError("the validation set was scored again after training")

    with monkeypatch.context() as patch:
        patch.setattr(sequence_kind, "score_examples", no_second_pass)
        result = finetune(output=str(tmp_path / "run"), **{**resumable.options, "epochs": 2})
    fresh = sequence_kind.score_examples(result.model, result.tokenizer, result.info,
                                         SequenceKind().read_splits(FinetuneConfig(**{
                                             k: v for k, v in resumable.options.items() if k != "padding"},
                                             output="x")).validation)
    assert result.report["metrics"] == pytest.approx(fresh["metrics"], abs=1e-6)
    best = int(np.argmax(result.history["val_accuracy"]))
    assert result.report["metrics"]["accuracy"] == pytest.approx(result.history["val_accuracy"][best], abs=1e-6)


def test_steps_per_execution_keeps_backups_logs_and_the_result_exact(resumable, monkeypatch):
    """With two optimizer steps per call, backups and the loss curve still count optimizer steps, and a run
    killed mid-epoch resumes to the same weights as the unbroken one-step-per-call run."""
    from ptft_keras.training.finetune_backup import read_backup_state

    output = resumable.root / "two-per-call"
    options = {**resumable.options, "steps_per_execution": 2}
    with monkeypatch.context() as patch:
        kill_at(patch, 9)
        with pytest.raises(Killed):
            finetune(output=str(output), **options)
    state = read_backup_state(output / ".resume")
    assert (state["step"], state["epoch"], state["batch"]) == (7, 1, 2)  # epochs of 5 steps: 2+2+1, then 2 more
    resumed = finetune(output=str(output), **options)
    for mine, theirs in zip(weights_of(resumed), weights_of(resumable.unbroken)):
        np.testing.assert_allclose(mine, theirs, atol=1e-5, rtol=0)
    logged = resumed.report["steps"]["step"]  # one point a call (every step is due): the calls' last steps
    assert logged == [2, 4, 5, 7, 9, 10, 12, 14, 15] and set(logged) <= set(resumable.unbroken.report["steps"]["step"])


def test_a_run_killed_at_the_unfreeze_resumes_with_the_same_fresh_warmup(tmp_path, monkeypatch):
    """The fresh warmup after the head-only stage lasts a tenth of an epoch also when the resumed run starts in
    the middle of that epoch (where Keras reports only the remaining steps as the epoch's length): 21 steps
    an epoch, a head-only stage of 3, a backup at step 3, killed at step 4 (found by benchmarks/kill_resume.py)."""
    from ptft_keras.training.finetune_backup import read_backup_state

    write_tsv(tmp_path / "train.tsv", sentiment_rows(56, seed=5))
    options = dict(model=str(write_tiny_checkpoint(tmp_path / "ckpt")), train=str(tmp_path / "train.tsv"),
                   text_column="sentence", validation_fraction=0.25, epochs=1, batch_size=2, save_every=3,
                   learning_rate=1e-2, seed=3, verbose=0, padding="dynamic")
    unbroken = finetune(output=str(tmp_path / "unbroken"), **options)
    with monkeypatch.context() as patch:
        kill_at(patch, 4)
        with pytest.raises(Killed):
            finetune(output=str(tmp_path / "killed"), **options)
    assert read_backup_state(tmp_path / "killed" / ".resume")["step"] == 3
    resumed = finetune(output=str(tmp_path / "killed"), **options)
    for mine, theirs in zip(weights_of(resumed), weights_of(unbroken)):
        np.testing.assert_allclose(mine, theirs, atol=1e-5, rtol=0)


def test_a_job_prints_no_tensorflow_chatter_and_no_keras_warnings(run):
    """`ptft evaluate` in a fresh process, output to a pipe: no C++ log line (absl banner, oneDNN/CUDA notices,
    cuInit), no Python warning, and progress as plain lines."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "PTFT_USER_TF_LOG_LEVEL")}
    done = subprocess.run([sys.executable, "-m", "ptft_keras.cli", "evaluate", "--model", str(run.dir), "--data",
                           str(run.root / "dev.tsv")], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    import re

    chatter = [line for line in output.splitlines()
               if re.match(r"^[IWEF]\d{4} ", line) or "absl::InitializeLog" in line or "Warning:" in line
               or "oneDNN" in line or "cuda" in line.lower()]
    assert not chatter, chatter
    assert "\r" not in output and "\x1b[" not in output
    assert json.loads(done.stdout.strip().splitlines()[-1])["accuracy"] >= 0


# ------------------------------------------------------------------- one input pipeline per worker, static scoring
def sharded_sequence_input(tmp_path, *, rows=37, batch_size=8, truncation="head", sequence_length=16,
                           padding="bucket"):
    """`(ShardedInput, row count, examples)` of the sequence kind; each row's target is its index."""
    from test_model_dir import tiny_tokenizer

    write_tsv(tmp_path / "train.tsv", sentiment_rows(rows, seed=5))
    config = FinetuneConfig(train=str(tmp_path / "train.tsv"), text_column="sentence", validation_fraction=0.0,
                            truncation=truncation, window_stride=2, batch_size=batch_size, seed=3)
    train = read_splits(config)[0]
    info = SimpleNamespace(sequence_length=sequence_length)
    sharded, count = SequenceKind().sharded_input(config, tiny_tokenizer(), info, train, np.arange(len(train)),
                                                  padding=padding, global_batch_size=batch_size)
    return sharded, count, train


def pipeline_epoch(sharded, index, pipelines=2, replicas=4, sequence_length=16):
    """The per-replica batches of pipeline `index` of `pipelines` (`replicas` in all): a list of label arrays.
    With several pipelines (workers) every batch has the same shape, [per-replica batch, sequence length]."""
    context = tf.distribute.InputContext(num_input_pipelines=pipelines, input_pipeline_id=index,
                                         num_replicas_in_sync=replicas)
    batches = list(sharded.dataset(context))
    per_replica = sharded.global_batch_size // replicas
    assert {tuple(features["token_ids"].shape) for features, _ in batches} == {(per_replica, sequence_length)}
    return [labels.numpy() for _, labels in batches]


def test_each_worker_tokenizes_and_trains_on_its_own_share_in_equal_steps(tmp_path, monkeypatch):
    import ptft_keras.data.truncation as truncation

    encoded = []
    original = truncation.encode_texts
    monkeypatch.setattr(truncation, "encode_texts", lambda tok, texts, *a, **k: (encoded.append(len(texts)),
                                                                                  original(tok, texts, *a, **k))[1])
    sharded, rows, _ = sharded_sequence_input(tmp_path)  # 37 rows, global batch 8: 5 steps, the last filled up
    assert (rows, sharded.steps) == (37, 5) and encoded == []
    first, second = pipeline_epoch(sharded, 0), pipeline_epoch(sharded, 1)
    assert encoded == [20, 20]  # each of the 2 workers tokenized its 20 rows (5 steps x 2 replicas x 2 rows), no more
    assert len(first) == len(second) == 5 * 2  # per-replica batches: 5 steps on each of a worker's 2 replicas
    assert all(len(batch) == 2 for batch in first + second)  # full per-replica batches: 8 / 4 replicas
    seen = np.concatenate(first + second)
    assert sorted(set(seen.tolist())) == list(range(37)) and len(seen) == 40  # every row; 3 repeated to fill step 5
    repeated = {row for row, count in zip(*np.unique(seen, return_counts=True)) if count > 1}
    assert set(np.concatenate(first).tolist()) & set(np.concatenate(second).tolist()) <= repeated  # else disjoint
    # seeded and deterministic: the same split and order from a fresh input; reshuffled in the next epoch
    again = pipeline_epoch(sharded_sequence_input(tmp_path)[0], 0)
    assert [b.tolist() for b in again] == [b.tolist() for b in first]
    next_epoch = pipeline_epoch(sharded, 0)
    assert sorted(np.concatenate(next_epoch).tolist()) == sorted(np.concatenate(first).tolist())
    assert [b.tolist() for b in next_epoch] != [b.tolist() for b in first]


def test_windows_are_counted_before_the_split_so_steps_are_equal(tmp_path):
    sharded, windows, train = sharded_sequence_input(tmp_path, rows=21, truncation="windows", sequence_length=8)
    assert windows > len(train) and sharded.steps == -(-windows // 8)
    first, second = (pipeline_epoch(sharded, i, replicas=2, sequence_length=8) for i in range(2))
    assert len(first) == len(second) == sharded.steps and all(len(b) == 4 for b in first + second)
    assert set(np.concatenate(first + second).tolist()) == set(range(len(train)))  # every document trained on


@pytest.mark.parametrize("pipelines,replicas,batch_size", [(1, 2, 6), (3, 3, 12), (4, 8, 32)])
def test_pipeline_rows_cover_the_epoch_in_equal_disjoint_shares(pipelines, replicas, batch_size):
    from ptft_keras.data.batching import equal_steps, pipeline_rows

    for rows in (1, 5, 31, 32, 33, 100):
        shares = [pipeline_rows(rows, batch_size, tf.distribute.InputContext(pipelines, i, replicas), seed=1)
                  for i in range(pipelines)]
        steps = equal_steps(rows, batch_size)
        assert {len(share) for share in shares} == {steps * batch_size // pipelines}
        everything = np.concatenate(shares)
        assert sorted(set(everything.tolist())) == list(range(rows))
        if rows >= steps * batch_size - rows:  # repeats only fill the last step: each row at most twice
            assert np.bincount(everything).max() <= 2 and len(everything) - rows < batch_size


def test_a_batch_that_does_not_split_across_replicas_is_a_config_error(small, mirrored):
    with pytest.raises(ConfigError, match="not a positive multiple of the 4 replicas in sync; use e.g. 28 or 32"):
        SequenceKind().datasets(FinetuneConfig(batch_size=30), None, None, None, padding="bucket",
                                drop_remainder=False, strategy=SimpleNamespace(num_replicas_in_sync=4))
    code, _, err = cli(*finetune_args(small, "--strategy", "mirrored", "--batch-size", 15))
    assert code != 0 and "batch_size 15 must be divisible by the 2 replicas of --strategy mirrored" in err


def test_mirrored_replicas_get_disjoint_batches_and_a_resume_continues_the_epoch(tmp_path, two_cpus):
    strategy = tf.distribute.MirroredStrategy(two_cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())

    def epoch(distributed, widths=None):
        steps = []
        for x, y in distributed:
            steps.append([labels.numpy().tolist() for labels in strategy.experimental_local_results(y)])
            if widths is not None:
                widths.append({int(t.shape[1]) for t in strategy.experimental_local_results(x["token_ids"])})
        return steps

    unbroken = sharded_sequence_input(tmp_path)[0].distribute(strategy)
    assert unbroken.cardinality == 5  # Keras reads it as the steps of an epoch
    widths = []
    epochs = [epoch(unbroken, widths), epoch(unbroken)]
    steps = epochs[0]
    assert len(steps) == 5 and all(len(replica) == 4 for step in steps for replica in step)
    assert all(len(step) == 1 for step in widths) and len(set.union(*widths)) > 1  # one bucket width a step
    seen = [row for step in steps for replica in step for row in replica]
    assert sorted(set(seen)) == list(range(37)) and len(seen) == 40
    # a resume in epoch 2 (as fit_resumably: an iterator per finished epoch, then skip) sees the unbroken epoch's rest
    unbroken = sharded_sequence_input(tmp_path, padding="dynamic")[0].distribute(strategy)
    epochs = [epoch(unbroken), epoch(unbroken)]
    resumed = sharded_sequence_input(tmp_path, padding="dynamic")[0].distribute(strategy)
    iter(resumed)
    rest = resumed.skip(2)
    assert rest.cardinality == 3 and epoch(rest) == epochs[1][2:]


@pytest.mark.slow  # distributed train functions trace slowly: ~40 s on 2 busy CPU cores
def test_mirrored_fine_tuning_feeds_each_replica_its_share(resumable, monkeypatch, mirrored, tmp_path):
    """Under MirroredStrategy the input is one pipeline per worker (`SequenceKind.sharded_input`), with the
    steps of one device: 36 rows, global batch 8, 5 steps an epoch, 15 for the LR schedule."""
    sharded = []
    original = SequenceKind.sharded_input
    monkeypatch.setattr(SequenceKind, "sharded_input", lambda *a, **k: sharded.append(original(*a, **k)) or sharded[-1])
    result = finetune(output=str(tmp_path / "run"), **{**resumable.options, "strategy": "mirrored"})
    assert sharded and sharded[0][0].steps == 5 and len(result.history["loss"]) == 3
    assert result.report["steps"]["step"][-1] == 15


@pytest.mark.slow
def test_a_killed_mirrored_run_resumes_exactly(resumable, monkeypatch, mirrored, tmp_path):
    """Under MirroredStrategy (one input pipeline, two replicas) a run killed mid-epoch resumes to the weights of
    an unbroken mirrored run."""
    options = {**resumable.options, "strategy": "mirrored"}
    unbroken = finetune(output=str(tmp_path / "unbroken"), **options)
    output = tmp_path / "killed"
    with monkeypatch.context() as patch:
        kill_at(patch, 7)
        with pytest.raises(Killed):
            finetune(output=str(output), **options)
    resumed = finetune(output=str(output), **options)
    for mine, theirs in zip(weights_of(resumed), weights_of(unbroken)):
        np.testing.assert_allclose(mine, theirs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("truncation", ["head", "windows"])
def test_static_shape_validation_scores_give_the_dynamic_logits(tmp_path, monkeypatch, truncation):
    """On TPU every scoring batch is [batch, sequence_length] (the last one filled with empty rows whose logits
    are dropped): the same logits as batches padded to their longest, with a ragged last one."""
    import dataclasses

    from test_model_dir import write_tiny_model_dir

    from ptft_keras.jobs.sequence_kind import predict_logits

    model, tokenizer, info = load_model_dir(write_tiny_model_dir(tmp_path / "model"))
    info = dataclasses.replace(info, truncation=truncation, window_stride=5)
    texts = [text for text, _ in sentiment_rows(13, seed=4)]
    texts[3] = " ".join([texts[3]] * 4)  # longer than the 16 positions: truncated, or several windows
    shapes = []
    predict = model.predict
    monkeypatch.setattr(model, "predict", lambda data, **k: (shapes.extend(
        tuple(f["token_ids"].shape) for f in data), predict(data, **k))[1])
    dynamic = predict_logits(model, tokenizer, info, texts, batch_size=4, static_shapes=False)
    ragged = set(shapes)
    shapes.clear()
    static = predict_logits(model, tokenizer, info, texts, batch_size=4, static_shapes=True)
    assert len(ragged) > 1 and set(shapes) == {(4, 16)}
    assert static.shape == dynamic.shape == (13, 2)
    np.testing.assert_allclose(static, dynamic, atol=1e-5, rtol=0)
