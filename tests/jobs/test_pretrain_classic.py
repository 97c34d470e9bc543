"""`run_classic`: `ptft pretrain --model bilstm --objective autoencoder|word2vec|mlm` on a toy corpus, the backbone
`ptft finetune --model DIR/backbone` loads, the JSON last line, TensorBoard logs, and resuming after kill -9."""
import contextlib
import doctest
import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
from test_finetune import cli, sentiment_rows, write_tsv

import ptft_keras.jobs.pretrain_classic
from ptft_keras.errors import ConfigError, DataError
from ptft_keras.jobs.pretrain_classic import (
    WORD2VEC_EPOCHS,
    classic_settings,
    is_classic_pretraining,
    run_classic,
    split_heldout_lines,
)
from ptft_keras.models.bilstm import BiLSTMEncoder

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Config:
    """The fields `run_classic` reads, as PretrainConfig will hold them (`objective`, `vectors` added)."""

    corpus: str
    output: str
    objective: str = "autoencoder"
    model: str = "bilstm"
    max_steps: int = 12
    batch_size: int = 8
    sequence_length: int = 16
    seed: int = 0
    learning_rate: Optional[float] = None
    vocab_size: int = 60
    vectors: Optional[str] = None
    encoder_options: Optional[str] = "embedding_dim=16,lstm_units=8,dropout=0.1"
    heldout_lines: int = 20
    eval_every: int = 6
    log_every: int = 2
    save_every: Optional[int] = None
    max_predictions_per_seq: int = 4
    nsp: bool = False
    word2vec_init: Optional[bool] = None


def write_corpus(path, lines=200):
    path.write_text("\n".join(sentence for sentence, _ in sentiment_rows(lines, seed=3)) + "\n", encoding="utf-8")
    return path


def run(config):
    """`run_classic(config)`: (exit code, stdout)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = run_classic(config)
    return code, out.getvalue()


def test_docstring_examples():
    result = doctest.testmod(ptft_keras.jobs.pretrain_classic, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_settings_defaults_and_errors(tmp_path):
    settings = classic_settings(Config(corpus="c.txt", output="o", max_steps=40))
    assert (settings.learning_rate, settings.save_every, settings.encoder_options) == (1e-3, 4, Config.encoder_options)
    with pytest.raises(ConfigError, match="objective: 'cbow' is not one of"):
        classic_settings(Config(corpus="c.txt", output="o", objective="cbow"))
    with pytest.raises(ConfigError, match="pretrains a BiLSTM: pass --model bilstm"):
        classic_settings(Config(corpus="c.txt", output="o", model="tiny"))
    with pytest.raises(ConfigError, match="--vectors initialises the embedding that word2vec would overwrite"):
        classic_settings(Config(corpus="c.txt", output="o", objective="word2vec", vectors="v.txt"))
    with pytest.raises(ConfigError, match="--nsp is for BERT"):
        classic_settings(Config(corpus="c.txt", output="o", nsp=True))
    assert is_classic_pretraining(Config(corpus="c", output="o", objective="mlm"))
    assert is_classic_pretraining(Config(corpus="c", output="o", model="tiny", objective="word2vec"))
    assert not is_classic_pretraining(Config(corpus="c", output="o", model="tiny", objective="mlm"))


def test_the_heldout_slice_is_the_first_lines_and_at_most_a_tenth():
    heldout, train = split_heldout_lines([["a", "b", "c"], ["d"] * 47], lines=5)
    assert heldout == [["a", "b", "c"], ["d", "d"]] and sum(map(len, train)) == 45
    assert split_heldout_lines([[str(i) for i in range(30)]], lines=500)[0] == [["0", "1", "2"]]
    with pytest.raises(DataError, match="too few to hold out"):
        split_heldout_lines([["a"] * 9], lines=5)


@pytest.mark.parametrize("objective", ["autoencoder", "mlm", "word2vec"])
def test_each_objective_writes_a_backbone_and_ends_with_its_heldout_loss(objective, tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt")
    code, out = run(Config(corpus=str(corpus), output=str(tmp_path / "run"), objective=objective,
                           learning_rate=1e-2))
    assert code == 0
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["objective"] == objective and math.isfinite(summary["loss"])
    assert summary["loss"] < summary["initial_loss"], summary
    assert summary["steps"] == (WORD2VEC_EPOCHS if objective == "word2vec" else 12)
    assert (summary.get("word2vec_init") is not None) == (objective == "mlm")  # mlm starts from word2vec vectors
    assert summary["backbone"] == str(tmp_path / "run" / "backbone")
    encoder = BiLSTMEncoder.from_pretrained(summary["backbone"])
    assert (encoder.embedding_dim, encoder.lstm_units) == (16, 8)
    assert json.loads((tmp_path / "run" / "result.json").read_text())["loss"] == summary["loss"]
    assert any((tmp_path / "run" / "logs").rglob("events.out.tfevents.*"))


def test_finetune_loads_the_pretrained_backbone(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt")
    code, out = run(Config(corpus=str(corpus), output=str(tmp_path / "ae"), objective="word2vec"))
    backbone = json.loads(out.strip().splitlines()[-1])["backbone"]
    write_tsv(tmp_path / "train.tsv", sentiment_rows(80, seed=0))
    code, out, err = cli("finetune", "--model", backbone, "--train", tmp_path / "train.tsv", "--text-column",
                         "sentence", "--output", tmp_path / "run", "--epochs", 1, "--batch-size", 16, "--verbose", 0)
    assert code == 0, err
    assert f"fine-tuning {backbone} (BiLSTMEncoder, 1 layers, hidden 16)" in out


def test_vectors_initialise_the_embedding_before_pretraining(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt")
    (tmp_path / "vectors.txt").write_text("2 4\ngood 1 1 1 1\nbad -1 -1 -1 -1\n", encoding="utf-8")
    code, out = run(Config(corpus=str(corpus), output=str(tmp_path / "run"), vectors=str(tmp_path / "vectors.txt"),
                           encoder_options="lstm_units=4", max_steps=2, vocab_size=200))
    assert code == 0 and "word vectors: 2 of " in out
    assert BiLSTMEncoder.from_pretrained(tmp_path / "run" / "backbone").embedding_dim == 4  # the vectors' dimension


def test_mlm_on_a_fresh_bilstm_starts_from_word2vec_vectors_unless_switched_off(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt")
    config = Config(corpus=str(corpus), output=str(tmp_path / "on"), objective="mlm", max_steps=2)
    code, out = run(config)
    summary = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and "embedding initialised by word2vec (25 epochs" in out
    assert summary["word2vec_init"]["epochs"] == WORD2VEC_EPOCHS and summary["word2vec_init"]["found"] > 10
    code, out = run(config)  # finished: resumed from the backup, no word2vec again, the same summary
    assert "embedding initialised by word2vec" not in out
    assert json.loads(out.strip().splitlines()[-1])["word2vec_init"] == summary["word2vec_init"]

    code, out = run(Config(corpus=str(corpus), output=str(tmp_path / "off"), objective="mlm", max_steps=2,
                           word2vec_init=False))
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["word2vec_init"] is None
    on = BiLSTMEncoder.from_pretrained(tmp_path / "on" / "backbone").token_embedding.embeddings.numpy()
    off = BiLSTMEncoder.from_pretrained(tmp_path / "off" / "backbone").token_embedding.embeddings.numpy()
    assert np.abs(on).mean() > 3 * np.abs(off).mean()  # word2vec vectors, not the small random init


def test_mlm_default_is_the_two_command_recipe_word2vec_then_mlm(tmp_path):
    """`--objective mlm` on a fresh BiLSTM == `--objective word2vec`, then `--objective mlm --model W2V/backbone`
    (the benchmark's mlm_w2v): the same weights."""
    corpus = write_corpus(tmp_path / "corpus.txt")
    run(Config(corpus=str(corpus), output=str(tmp_path / "one"), objective="mlm", max_steps=3))
    run(Config(corpus=str(corpus), output=str(tmp_path / "w2v"), objective="word2vec"))
    run(Config(corpus=str(corpus), output=str(tmp_path / "two"), objective="mlm", max_steps=3,
               model=str(tmp_path / "w2v" / "backbone"), encoder_options=None, vocab_size=None))
    one = BiLSTMEncoder.from_pretrained(tmp_path / "one" / "backbone").get_weights()
    two = BiLSTMEncoder.from_pretrained(tmp_path / "two" / "backbone").get_weights()
    assert len(one) == len(two) and all(np.allclose(a, b, atol=1e-6) for a, b in zip(one, two))


KILLED_RUN = """
import sys, types
sys.path.insert(0, {tests!r})
from test_pretrain_classic import Config
from ptft_keras.jobs.pretrain_classic import run_classic
run_classic(Config(**{fields!r}))
"""


def test_a_run_killed_with_sigkill_resumes_from_its_backup(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt", lines=400)
    fields = dict(corpus=str(corpus), output=str(tmp_path / "killed"), max_steps=60, save_every=5, eval_every=30,
                  learning_rate=1e-2)
    env = {**os.environ, "PYTHONPATH": str(REPO), "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    script = KILLED_RUN.format(tests=str(Path(__file__).parent), fields=fields)
    process = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    pointer = tmp_path / "killed" / "backup" / "checkpoint.json"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        if pointer.exists() and json.loads(pointer.read_text())["steps"] >= 10:
            break
        time.sleep(0.2)
    assert process.poll() is None, "the run ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done = json.loads(pointer.read_text())["steps"]
    assert 10 <= done < 60

    code, out = run(Config(**fields))
    assert code == 0 and f"resuming at step {done} of 60" in out
    resumed = json.loads(out.strip().splitlines()[-1])
    assert (resumed["steps"], resumed["start_step"]) == (60, done)
    code, out = run(Config(**{**fields, "output": str(tmp_path / "whole")}))
    whole = json.loads(out.strip().splitlines()[-1])
    assert resumed["initial_loss"] == whole["initial_loss"]
    # weights, optimizer, dropout streams and data order are restored: the same model as an unbroken run
    assert resumed["loss"] == pytest.approx(whole["loss"], rel=1e-4)
    a = BiLSTMEncoder.from_pretrained(tmp_path / "killed" / "backbone").get_weights()
    b = BiLSTMEncoder.from_pretrained(tmp_path / "whole" / "backbone").get_weights()
    assert all(np.allclose(x, y, atol=1e-5) for x, y in zip(a, b))


def test_the_pretrain_command_dispatches_bilstm_runs_here(tmp_path):
    """`ptft pretrain --model bilstm --objective ...` (the CLI contract) runs this job with PretrainConfig's fields."""
    from ptft_keras.cli import main

    corpus = write_corpus(tmp_path / "corpus.txt")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["pretrain", "--model", "bilstm", "--objective", "word2vec", "--corpus", str(corpus), "--output",
                     str(tmp_path / "run"), "--vocab-size", "60", "--sequence-length", "16", "--heldout-lines", "20",
                     "--encoder-options", "embedding_dim=16,lstm_units=8"])
    assert code == 0
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    assert summary["objective"] == "word2vec" and math.isfinite(summary["loss"])
    assert BiLSTMEncoder.from_pretrained(tmp_path / "run" / "backbone").embedding_dim == 16
