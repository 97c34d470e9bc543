"""`ptft predict` and the inference path every job shares (`predict_logits`), on random tiny model dirs."""
import contextlib
import csv
import io
import json

import numpy as np
import pytest
from test_model_dir import write_tiny_model_dir

from ptft_keras.cli import main
from ptft_keras.errors import ConfigError
from ptft_keras.jobs.model_dir import load_model_dir
from ptft_keras.jobs.predict import predict
from ptft_keras.jobs.sequence_kind import predict_logits, predictions_from_logits, write_predictions

LONG = "the movie was very good and the plot was fun but the film is not a very good film and the plot was dull"


def model_logits(model, tokenizer, texts, sequence_length):
    return np.asarray(model(tokenizer(texts, sequence_length=sequence_length), training=False))


def windows_of(text, size, stride):
    """Independent reference: word windows (one token per word in the tiny vocabulary)."""
    words = text.split()
    starts = [0]
    while starts[-1] + size < len(words):
        starts.append(starts[-1] + stride)
    return [" ".join(words[s : s + size]) for s in starts]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    return load_model_dir(write_tiny_model_dir(tmp_path_factory.mktemp("predict") / "run", sequence_length=16))


def test_predictions_from_logits_per_task():
    out = predictions_from_logits("classification", np.array([[0.0, 2.0], [1.0, -1.0]]), ["neg", "pos"])
    assert out["prediction"] == ["pos", "neg"]
    np.testing.assert_allclose(out["score"], [1 / (1 + np.exp(-2.0)), 1 / (1 + np.exp(-2.0))], rtol=1e-5)
    out = predictions_from_logits("multilabel", np.array([[2.0, -1.0, 0.5], [-3.0, -3.0, -3.0]]), ["a", "b", "c"])
    assert out["prediction"] == ["a|c", ""]
    assert out["score"][0] == f"{1 / (1 + np.exp(-2.0)):.4f}|{1 / (1 + np.exp(-0.5)):.4f}"
    out = predictions_from_logits("regression", np.array([[0.25], [3.0]]), [])
    assert out["prediction"] == [0.25, 3.0] and out["score"] is None


def test_short_texts_are_scored_as_the_tokenizer_packs_them(classifier):
    model, tokenizer, info = classifier
    texts = ["a good film", "dull", "the plot was very fun and not boring"]
    np.testing.assert_allclose(predict_logits(model, tokenizer, info, texts), model_logits(model, tokenizer, texts, 16),
                               atol=1e-5)


@pytest.mark.parametrize("pooling", ["mean", "max"])
def test_windows_pool_the_logits_of_each_document(tmp_path, pooling):
    directory = write_tiny_model_dir(tmp_path / "run", sequence_length=8, truncation="windows", window_stride=4,
                                     window_pooling=pooling)
    model, tokenizer, info = load_model_dir(directory)
    texts = [LONG, "a good film"]
    pool = np.mean if pooling == "mean" else np.max
    expected = [pool(model_logits(model, tokenizer, windows_of(t, 6, 4), 8), axis=0) for t in texts]
    assert len(windows_of(LONG, 6, 4)) == 6
    np.testing.assert_allclose(predict_logits(model, tokenizer, info, texts), np.stack(expected), atol=1e-5)


def test_tail_truncation_keeps_the_end(tmp_path):
    model, tokenizer, info = load_model_dir(write_tiny_model_dir(tmp_path / "run", sequence_length=8, truncation="tail"))
    tail = " ".join(LONG.split()[-6:])
    np.testing.assert_allclose(predict_logits(model, tokenizer, info, [LONG]), model_logits(model, tokenizer, [tail], 8),
                               atol=1e-5)


def test_text_normalization_is_applied_as_in_training(tmp_path):
    texts = ["a good film<br /><br />not dull", "a good film  not dull"]
    plain = load_model_dir(write_tiny_model_dir(tmp_path / "plain"))
    logits = predict_logits(*plain, texts)
    assert not np.allclose(logits[0], logits[1])  # "<", "br", "/", ">" are tokens of the tiny vocabulary
    normalized = load_model_dir(write_tiny_model_dir(tmp_path / "html", text_normalization="html_breaks"))
    logits = predict_logits(*normalized, texts)
    np.testing.assert_allclose(logits[0], logits[1], atol=1e-6)


def test_predict_api_with_a_sequence_length_override(classifier):
    model, tokenizer, info = classifier
    out = predict(classifier, [LONG], sequence_length=6)
    np.testing.assert_allclose(out["logits"], model_logits(model, tokenizer, [LONG], 6), atol=1e-5)
    assert out["prediction"][0] in ("neg", "pos")


def test_csv_output_keeps_every_column_quotes_and_line_breaks(tmp_path):
    source = tmp_path / "in.csv"
    source.write_text('id,text,extra\n1,"a good, fun film",x\n2,"two\nlines ""quoted""",y\n3,dull,z\n', encoding="utf-8")
    predictions = {"prediction": ["pos", "neg"], "score": [0.9, 0.75]}
    write_predictions(source, tmp_path / "out.csv", predictions, lines=[2, 5])  # the row at line 3 was skipped
    rows = list(csv.reader((tmp_path / "out.csv").open(newline="")))
    assert rows == [["id", "text", "extra", "prediction", "score"], ["1", "a good, fun film", "x", "pos", "0.9"],
                    ["2", 'two\nlines "quoted"', "y", "", ""], ["3", "dull", "z", "neg", "0.75"]]


def test_jsonl_and_text_outputs(tmp_path):
    (tmp_path / "in.jsonl").write_text('{"text": "good", "id": 7}\n{"text": "bad", "meta": {"a": 1}}\n')
    write_predictions(tmp_path / "in.jsonl", tmp_path / "out.jsonl", {"prediction": [1.5, 2.5], "score": None}, [1, 2])
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert rows == [{"text": "good", "id": 7, "prediction": 1.5}, {"text": "bad", "meta": {"a": 1}, "prediction": 2.5}]
    (tmp_path / "in.txt").write_text("good film\n\ndull film\n")
    write_predictions(tmp_path / "in.txt", tmp_path / "out.jsonl", {"prediction": ["pos", "neg"], "score": [0.6, 0.7]}, [1, 3])
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert rows == [{"text": "good film", "prediction": "pos", "score": 0.6}, {"text": "dull film", "prediction": "neg", "score": 0.7}]


def run_cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        return main([str(a) for a in argv]), out.getvalue(), err.getvalue()


def test_cli_predicts_a_tsv_with_the_training_text_column(tmp_path, classifier):
    directory = write_tiny_model_dir(tmp_path / "run", text_column="sentence")
    model, tokenizer, _ = load_model_dir(directory)
    texts = ["a good film", "dull and boring", "fun"]
    (tmp_path / "in.tsv").write_text("id\tsentence\n" + "".join(f"{i}\t{t}\n" for i, t in enumerate(texts)))
    code, out, err = run_cli("predict", "--model", directory, "--data", tmp_path / "in.tsv", "--output", tmp_path / "p.tsv")
    assert code == 0, err
    rows = list(csv.DictReader((tmp_path / "p.tsv").open(), delimiter="\t"))
    expected = np.array(["neg", "pos"])[model_logits(model, tokenizer, texts, 16).argmax(-1)]
    assert [r["prediction"] for r in rows] == expected.tolist() and [r["sentence"] for r in rows] == texts


def test_cli_reads_the_model_and_data_from_an_object_store_and_writes_there(tmp_path, monkeypatch):
    """ram:// stands in for gs://: model directory, input and predictions all live there."""
    import tensorflow as tf

    from ptft_keras import storage

    monkeypatch.setattr(storage, "CACHE_DIR", tmp_path / "cache")
    directory = write_tiny_model_dir(tmp_path / "run", text_column="sentence")
    remote = "ram://predict-tests"
    for path in directory.rglob("*"):
        if path.is_file():
            target = f"{remote}/run/{path.relative_to(directory).as_posix()}"
            tf.io.gfile.makedirs(target.rsplit("/", 1)[0])
            tf.io.gfile.copy(str(path), target, overwrite=True)
    texts = ["a good film", "dull and boring"]
    with tf.io.gfile.GFile(f"{remote}/in.tsv", "w") as stream:
        stream.write("id\tsentence\n" + "".join(f"{i}\t{t}\n" for i, t in enumerate(texts)))
    code, out, err = run_cli("predict", "--model", f"{remote}/run", "--data", f"{remote}/in.tsv",
                             "--output", f"{remote}/out/p.tsv")
    assert code == 0, err
    assert f"{remote}/out/p.tsv" in out
    with tf.io.gfile.GFile(f"{remote}/out/p.tsv") as stream:
        rows = list(csv.DictReader(stream.read().splitlines(), delimiter="\t"))
    model, tokenizer, _ = load_model_dir(directory)
    expected = np.array(["neg", "pos"])[model_logits(model, tokenizer, texts, 16).argmax(-1)]
    assert [r["prediction"] for r in rows] == expected.tolist() and [r["id"] for r in rows] == ["0", "1"]


def test_cli_refuses_to_overwrite_the_input_or_read_many_files(tmp_path):
    directory = write_tiny_model_dir(tmp_path / "run")
    (tmp_path / "a.jsonl").write_text('{"text": "good"}\n')
    (tmp_path / "b.jsonl").write_text('{"text": "bad"}\n')
    code, _, err = run_cli("predict", "--model", directory, "--data", tmp_path / "a.jsonl", "--output", tmp_path / "a.jsonl")
    assert code == 2 and "is the input file" in err
    code, _, err = run_cli("predict", "--model", directory, "--data", tmp_path / "*.jsonl", "--output", tmp_path / "p.jsonl")
    assert code == 2 and "matches 2 files" in err
    with pytest.raises(ConfigError):
        write_predictions(tmp_path / "a.jsonl.gz", tmp_path / "p.jsonl", {"prediction": [], "score": None}, [])
