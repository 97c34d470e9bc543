"""`ptft distill`: a tiny teacher fine-tuned on a toy sentiment task, distilled into students that `ptft evaluate`
and `ptft export` take unchanged; teacher logits computed once per example and cached."""
import doctest
import importlib
import json
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf
from test_finetune import cli, sentiment_rows, write_tsv
from test_model_dir import write_tiny_checkpoint, write_tiny_model_dir

from ptft_keras.errors import ConfigError, DataError
from ptft_keras.jobs import teacher_outputs
from ptft_keras.jobs.distill import STUDENT_INIT_DIR, TEACHER_CACHE_DIR, distill
from ptft_keras.jobs.distill_kind import augmented_examples, read_unlabelled
from ptft_keras.jobs.model_dir import load_model_dir
from ptft_keras.jobs.sequence_kind import predict_logits
from ptft_keras.tasks.distiller import DistillationStudent


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A teacher fine-tuned on 160 toy rows, the files of a transfer set, and one `ptft distill` run (tiny)."""
    root = tmp_path_factory.mktemp("distill")
    write_tsv(root / "train.tsv", sentiment_rows(160, seed=0))
    write_tsv(root / "dev.tsv", sentiment_rows(40, seed=1))
    (root / "more.txt").write_text("\n".join(text for text, _ in sentiment_rows(120, seed=2)) + "\n\n", encoding="utf-8")
    code, _, err = cli("finetune", "--model", write_tiny_checkpoint(root / "ckpt"), "--train", root / "train.tsv",
                       "--validation", root / "dev.tsv", "--text-column", "sentence", "--output", root / "teacher",
                       "--epochs", 4, "--batch-size", 16, "--learning-rate", 1e-2, "--verbose", 0)
    assert code == 0, err
    code, out, err = cli("distill", "--teacher", root / "teacher", "--train", root / "train.tsv", "--validation",
                         root / "dev.tsv", "--text-column", "sentence", "--label-column", "label", "--output",
                         root / "student", "--student", "tiny", "--unlabelled", root / "more.txt",
                         "--max-train-examples", 40, "--epochs", 5, "--learning-rate", 3e-3, "--temperature", 2,
                         "--alpha", 0.5, "--seed", 0, "--batch-size", 16, "--verbose", 0)
    assert code == 0, err
    return SimpleNamespace(root=root, teacher=root / "teacher", student=root / "student", out=out)


@pytest.mark.parametrize("module", ["ptft_keras.jobs.distill", "ptft_keras.jobs.distill_kind",
                                    "ptft_keras.jobs.teacher_outputs"])
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_the_student_directory_names_its_teacher_and_transfer_set(toy):
    names = {p.name for p in toy.student.iterdir()}
    assert {"model.keras", "tokenizer", "labels.json", "training_config.json", "metrics.json", "report.txt"} <= names
    assert STUDENT_INIT_DIR not in names  # the starting checkpoint is gone once the run finished
    assert len(list((toy.student / TEACHER_CACHE_DIR).glob("teacher-logits-*.npy"))) == 2  # transfer set, validation
    config = json.loads((toy.student / "training_config.json").read_text())
    distillation = config["distillation"]
    assert distillation["teacher"] == str(toy.teacher)
    assert distillation["student"] == "tiny" and "random tiny BERT" in distillation["student_init"]
    assert distillation["transfer_set"] == {
        "labelled": {"data": str(toy.root / "train.tsv"), "rows": 40},
        "unlabelled": {"data": str(toy.root / "more.txt"), "rows": 120, "column": "sentence"}}
    assert (distillation["temperature"], distillation["alpha"], distillation["soft_loss"]) == (2.0, 0.5, "kl")
    assert config["text_column"] == "sentence" and config["sequence_length"] == 16  # the teacher's
    assert (config["learning_rate"], config["freeze_steps"], config["layer_lr_decay"]) == (3e-3, 0, 1.0)
    report = json.loads((toy.student / "metrics.json").read_text())
    assert report["teacher"]["model"] == str(toy.teacher) and report["teacher"]["metrics"]["accuracy"] > 0.9
    assert report["metrics"]["accuracy"] >= 0.75  # a 40-row toy task, learned mostly from the teacher
    assert "transfer set: 40 labelled rows" in toy.out and "120 texts" in toy.out


def test_evaluate_and_export_take_the_student_unchanged(toy, tmp_path):
    model, tokenizer, info = load_model_dir(toy.student)
    assert isinstance(model, DistillationStudent) and info.label_names == ["neg", "pos"]
    code, out, err = cli("evaluate", "--model", toy.student, "--data", toy.root / "dev.tsv")
    assert code == 0, err
    saved = json.loads((toy.student / "metrics.json").read_text())["metrics"]
    assert json.loads(out.strip().splitlines()[-1])["accuracy"] == pytest.approx(saved["accuracy"])

    code, out, err = cli("export", "--model", toy.student, "--output", tmp_path / "served")
    assert code == 0, err
    texts = ["good fun film", "the plot was dull and awful", "a very great movie"]
    served = tf.saved_model.load(out.strip().splitlines()[-1]).signatures["serving_default"](text=tf.constant(texts))
    np.testing.assert_allclose(served["logits"].numpy(), predict_logits(model, tokenizer, info, texts), atol=1e-4)
    card = json.loads((tmp_path / "served" / "1" / "model_card.json").read_text())
    assert card["training_config"]["distillation"]["teacher"] == str(toy.teacher)


def counting_teacher(directory):
    """The loaded teacher, whose `predict` counts the examples it is asked about."""
    model, tokenizer, info = load_model_dir(directory)
    predict, calls = model.predict, []

    def counted(*args, **kwargs):
        out = predict(*args, **kwargs)
        calls.append(len(out))
        return out

    model.predict = counted
    return (model, tokenizer, info), calls


def test_the_teacher_labels_each_example_once_and_the_cache_serves_later_runs(toy, tmp_path):
    teacher, calls = counting_teacher(toy.teacher)
    options = dict(train=str(toy.root / "train.tsv"), validation=str(toy.root / "dev.tsv"), max_train_examples=30,
                   unlabelled=str(toy.root / "more.txt"), max_unlabelled_examples=50, student="teacher:1",
                   teacher_cache=str(tmp_path / "cache"), batch_size=16, verbose=0, early_stopping_patience=0)
    result = distill(teacher=teacher, output=str(tmp_path / "a"), epochs=3, **options)
    assert len(result.history["loss"]) == 3
    assert sum(calls) == 30 + 50 + 40  # the transfer set once (for 3 epochs), and the 40 validation rows scored
    assert "teacher's embeddings and blocks 0 of 2" in result.info.training_config["distillation"]["student_init"]

    calls.clear()
    distill(teacher=teacher, output=str(tmp_path / "b"), epochs=1, **options)
    assert sum(calls) == 0  # the transfer set's and the validation rows' logits came from the cache


def test_a_killed_labelling_resumes_at_its_last_chunk(toy, tmp_path, monkeypatch):
    teacher, calls = counting_teacher(toy.teacher)
    texts = [text for text, _ in sentiment_rows(10, seed=3)]
    expected = teacher_outputs.teacher_logits(teacher, texts, cache_dir=None)
    calls.clear()
    real = teacher_outputs.sequence_kind.predict_logits

    def dies_on_the_third_chunk(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(teacher_outputs.sequence_kind, "predict_logits", dies_on_the_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        teacher_outputs.teacher_logits(teacher, texts, cache_dir=tmp_path, chunk_size=4, log=None)
    assert calls == [4, 4]
    monkeypatch.setattr(teacher_outputs.sequence_kind, "predict_logits", real)
    logits = teacher_outputs.teacher_logits(teacher, texts, cache_dir=tmp_path, chunk_size=4, log=None)
    assert calls == [4, 4, 2]  # only the last chunk was left
    np.testing.assert_allclose(logits, expected, atol=1e-6)
    assert [p.suffix for p in tmp_path.iterdir()] == [".npy"]  # no partial file or progress left


def test_a_finished_directory_is_refused_before_any_work(toy):
    code, _, err = cli("distill", "--teacher", toy.teacher, "--train", toy.root / "train.tsv", "--output", toy.student)
    assert code == 2 and "finished model" in err and "--overwrite" in err
    assert not (toy.student / STUDENT_INIT_DIR).exists()


def test_a_label_the_teacher_does_not_know_names_file_and_line(toy, tmp_path):
    write_tsv(tmp_path / "train.tsv", [("good film", "pos"), ("dull film", "meh")])
    with pytest.raises(DataError, match=r"train.tsv.*line 3.*meh"):
        distill(teacher=str(toy.teacher), train=str(tmp_path / "train.tsv"), output=str(tmp_path / "out"),
                validation_fraction=0.0, verbose=0)


def test_teachers_and_students_that_cannot_be_distilled(toy, tmp_path):
    regression = write_tiny_model_dir(tmp_path / "regression", task="regression")
    with pytest.raises(ConfigError, match="regression model; distillation takes classification"):
        distill(teacher=str(regression), train=str(toy.root / "train.tsv"), output=str(tmp_path / "a"))
    for student, match in (("teacher:3", "1 to 2 blocks"), ("teacher:1,0", "increasing"), ("tinny", "neither a size")):
        with pytest.raises(ConfigError, match=match):
            distill(teacher=str(toy.teacher), train=str(toy.root / "train.tsv"), output=str(tmp_path / "b"),
                    student=student)


def test_unlabelled_text_from_plain_and_column_files(toy, tmp_path):
    plain = read_unlabelled(toy.root / "more.txt", text_column="sentence")
    assert len(plain) == 120 and plain.labels is None  # the blank line at the end is no text
    assert len(read_unlabelled(toy.root / "dev.tsv", text_column="sentence", limit=7)) == 7
    with pytest.raises(ConfigError, match="needs a CSV/TSV/JSONL file with both columns"):
        read_unlabelled(toy.root / "more.txt", text_column="a", text_pair_column="b")


def test_a_bilstm_student_is_distilled_evaluated_and_exported(toy, tmp_path):
    code, out, err = cli("distill", "--teacher", toy.teacher, "--train", toy.root / "train.tsv", "--validation",
                         toy.root / "dev.tsv", "--output", tmp_path / "bilstm", "--student", "bilstm",
                         "--unlabelled", toy.root / "more.txt", "--encoder-options", "embedding_dim=16,lstm_units=8",
                         "--vocab-size", 200, "--epochs", 3, "--batch-size", 16, "--verbose", 0)
    assert code == 0, err
    assert "BiLSTMEncoder" in out and "new WordPiece vocabulary" in out
    student = tmp_path / "bilstm"
    assert not (student / STUDENT_INIT_DIR).exists()
    config = json.loads((student / "training_config.json").read_text())
    assert config["distillation"]["student"] == "bilstm" and "BiLSTM" in config["distillation"]["student_init"]
    assert (config["learning_rate"], config["freeze_steps"], config["layer_lr_decay"]) == (1e-3, 0, 1.0)
    model, tokenizer, info = load_model_dir(student)
    assert isinstance(model, DistillationStudent) and type(model.backbone).__name__ == "BiLSTMEncoder"
    assert tokenizer.vocab_size <= 200  # its own vocabulary, learnt from the transfer set
    accuracy = json.loads((student / "metrics.json").read_text())["metrics"]["accuracy"]
    code, out, err = cli("evaluate", "--model", student, "--data", toy.root / "dev.tsv")
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["accuracy"] == pytest.approx(accuracy)
    code, out, err = cli("export", "--model", student, "--output", tmp_path / "served")
    assert code == 0, err
    texts = ["good fun film", "the plot was dull and awful"]
    served = tf.saved_model.load(out.strip().splitlines()[-1]).signatures["serving_default"](text=tf.constant(texts))
    np.testing.assert_allclose(served["logits"].numpy(), predict_logits(model, tokenizer, info, texts), atol=1e-4)

    # augmented copies repeat the transfer set's words (and add masks): the vocabulary is learnt without them
    augmented = distill(teacher=str(toy.teacher), train=str(toy.root / "train.tsv"),
                        validation=str(toy.root / "dev.tsv"), output=str(tmp_path / "augmented"), student="bilstm",
                        unlabelled=str(toy.root / "more.txt"), encoder_options="embedding_dim=16,lstm_units=8",
                        vocab_size=200, augment=3, epochs=1, batch_size=16, verbose=0)
    assert augmented.info.training_config["distillation"]["transfer_set"]["augmented"]["rows"] > 0
    assert augmented.tokenizer.vocabulary == tokenizer.vocabulary


def test_bilstm_options_need_a_bilstm_student(toy, tmp_path):
    with pytest.raises(ConfigError, match="--vocab-size apply to BiLSTM encoders"):
        distill(teacher=str(toy.teacher), train=str(toy.root / "train.tsv"), output=str(tmp_path / "a"),
                student="tiny", vocab_size=100, verbose=0)


def test_augmented_copies_are_labelled_once_by_the_teacher_and_cached_copy_by_copy(toy, tmp_path):
    teacher, calls = counting_teacher(toy.teacher)
    options = dict(train=str(toy.root / "train.tsv"), validation=str(toy.root / "dev.tsv"), max_train_examples=30,
                   unlabelled=str(toy.root / "more.txt"), max_unlabelled_examples=20, student="teacher:1",
                   teacher_cache=str(tmp_path / "cache"), batch_size=16, verbose=0, early_stopping_patience=0,
                   augment_mask=0.3, augment_ngram=0.5, seed=4)
    result = distill(teacher=teacher, output=str(tmp_path / "a"), epochs=2, augment=2, **options)
    transfer = result.info.training_config["distillation"]["transfer_set"]
    augmented = transfer["augmented"]
    assert (augmented["copies"], augmented["p_mask"], augmented["p_ngram"], augmented["max_ngram"],
            augmented["mask_token"], augmented["seed"]) == (2, 0.3, 0.5, 5, "[MASK]", 4)
    assert 0.6 * 2 * 50 < augmented["rows"] <= 2 * 50  # copies equal to their text are left out
    assert sum(calls) == 50 + augmented["rows"] + 40  # every text once (for 2 epochs), and the validation rows
    assert len(calls) == 4  # the transfer set, copy 0, copy 1, validation: each part cached on its own

    # the copies the run made are those of data.augmentation, seeded by --seed, after the transfer set
    from ptft_keras.data.augmentation import Augmentation
    from ptft_keras.jobs.distill import DistillConfig, finetune_config
    from ptft_keras.jobs.distill_kind import DistillKind

    augmentation = Augmentation(copies=2, p_mask=0.3, p_ngram=0.5, seed=4)
    kind = DistillKind(teacher, unlabelled=options["unlabelled"], max_unlabelled=20, augmentation=augmentation)
    config = DistillConfig(**{k: v for k, v in options.items() if k in DistillConfig.__dataclass_fields__}, augment=2)
    splits = kind.read_splits(finetune_config(config, teacher[2], "unused", from_scratch=False))
    originals = splits.train.select(range(50))
    expected, _ = augmented_examples(originals, augmentation)
    assert splits.train.texts[50:] == expected.texts and len(expected) == augmented["rows"]
    assert splits.train.labels[50:] == [None] * len(expected)  # the teacher's soft targets only
    assert all("[MASK]" in text or len(text.split()) <= 5 for text in expected.texts)

    calls.clear()  # one more copy: only copy 2 is new; the transfer set and copies 0-1 come from the cache
    result = distill(teacher=teacher, output=str(tmp_path / "b"), epochs=1, augment=3, **options)
    assert len(calls) == 1 and sum(calls) == result.info.training_config["distillation"]["transfer_set"][
        "augmented"]["rows"] - augmented["rows"]
    calls.clear()  # and without augmentation the transfer set's logits are those cached above
    distill(teacher=teacher, output=str(tmp_path / "c"), epochs=1, augment=0, **options)
    assert calls == []


def test_augment_settings_that_cannot_work(toy, tmp_path):
    for options, match in (({"augment": -1}, "augment"), ({"augment": 2, "augment_mask": 2.0}, "p_mask")):
        with pytest.raises(ConfigError, match=match):
            distill(teacher=str(toy.teacher), train=str(toy.root / "train.tsv"), output=str(tmp_path / "a"),
                    verbose=0, **options)
