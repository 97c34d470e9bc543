"""The pretraining job: loss falls on real text, one code path for every strategy, exact resume after kill -9.

Runs on a corpus of stdlib docstrings with tiny models. The subprocess tests (kill/resume, two
workers) are marked slow; each child is bounded by a timeout so nothing can hang.
"""
import torch  # noqa: F401  (reference side first; see tests/conftest.py)
import transformers

import doctest
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from safetensors.numpy import load_file

from pretrain_helpers import cli_command, free_port, stdlib_corpus, subprocess_env, tiny_checkpoint
from ptft_keras.cli import main
from ptft_keras.data.tokenizer import Tokenizer
from ptft_keras.errors import DataError
from ptft_keras.models.backbone import Backbone
from ptft_keras.jobs import pretrain as pretrain_module
from ptft_keras.jobs.pretrain import PretrainConfig, backup_schedule, pretrain, split_heldout, with_defaults
from ptft_keras.jobs.pretrain_config import (
    CONTINUED_LEARNING_RATE, CONTINUED_WARMUP_RATIO, FROM_SCRATCH_LEARNING_RATES, FROM_SCRATCH_WARMUP_RATIO,
)

SMALL = dict(batch_size=8, sequence_length=32, heldout_lines=100, save_every=2, eval_every=2, learning_rate=1e-3,
             verbose=0)
TIMEOUT = 420


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return str(stdlib_corpus(tmp_path_factory.mktemp("corpus") / "stdlib.txt"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, corpus):
    """A tiny BERT checkpoint with a masked-LM head and dropout 0 (so strategies can be compared exactly)."""
    return str(tiny_checkpoint(tmp_path_factory.mktemp("checkpoint") / "tiny", corpus))


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def test_docstring_examples():
    result = doctest.testmod(pretrain_module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_heldout_slice():
    documents = [[f"d{d} s{s}" for s in range(5)] for d in range(20)]
    train, heldout = split_heldout(documents, lines=7)
    assert sum(map(len, heldout)) == 7 and heldout[-1] == documents[-1]
    assert train[-1] == documents[18][:3] and heldout[0] == documents[18][3:]  # cut between sentences
    assert sum(map(len, train + heldout)) == 100
    assert sum(map(len, split_heldout(documents, lines=500)[1])) == 10  # at most 10% of the corpus
    with pytest.raises(DataError, match="too few to hold out"):
        split_heldout([["one line"]], lines=5)


def test_defaults_depend_on_the_case_and_protect_short_runs():
    scratch = with_defaults(PretrainConfig(model="tiny", max_steps=60))
    assert (scratch.learning_rate, scratch.warmup_ratio) == (1e-3, FROM_SCRATCH_WARMUP_RATIO)
    assert with_defaults(PretrainConfig(model="base")).learning_rate == FROM_SCRATCH_LEARNING_RATES["base"] == 1e-4
    continued = with_defaults(PretrainConfig(model="some/checkpoint", max_steps=60))
    assert (continued.learning_rate, continued.warmup_ratio) == (CONTINUED_LEARNING_RATE, CONTINUED_WARMUP_RATIO)
    # a run of 60 steps backs up every 6 (once a minute has passed since the last) and every 10 minutes
    assert backup_schedule(scratch) == {"save_freq": 6, "save_seconds": 600, "min_seconds": 60}
    assert backup_schedule(PretrainConfig(max_steps=3, save_minutes=0)) == {"save_freq": 1, "save_seconds": None,
                                                                            "min_seconds": 60}
    assert backup_schedule(PretrainConfig(save_every=7), workers=2) == {"save_freq": 7, "save_seconds": None,
                                                                        "min_seconds": None}
    chosen = with_defaults(PretrainConfig(model="tiny", learning_rate=3e-4, warmup_ratio=0.2))
    assert (chosen.learning_rate, chosen.warmup_ratio) == (3e-4, 0.2)


def test_the_input_resumes_at_the_saved_position_not_by_replaying(corpus, checkpoint):
    """The first batch after a resume is the batch an unbroken run sees at that step, from the backup's position
    (and, for a backup without one, by replaying the batches before it)."""
    config = with_defaults(PretrainConfig(model=checkpoint, corpus=corpus, batch_size=8, sequence_length=32,
                                          heldout_lines=100, shuffle_buffer_size=16, max_steps=100, nsp=True))
    tokenizer = Tokenizer.from_pretrained(checkpoint)
    train, _ = pretrain_module._corpora(config)
    strategy = tf.distribute.get_strategy()
    positions = {}
    unbroken = iter(pretrain_module._train_dataset(config, tokenizer, train, strategy, None, positions, 0))
    batches = [next(unbroken) for _ in range(60)]
    state = pretrain_module.input_state(positions, 50)
    assert state["pipelines"]["0"]["batch"] == 50
    for saved in (state, None):
        resumed = next(iter(pretrain_module._train_dataset(config, tokenizer, train, strategy, saved, {}, 50)))
        for expected, got in zip(tf.nest.flatten(batches[50]), tf.nest.flatten(resumed)):
            np.testing.assert_array_equal(got.numpy(), expected.numpy())


def test_same_seed_and_corpus_give_the_same_losses_and_heldout_batches(tmp_path, corpus, capsys):
    """From scratch (vocabulary included), on a corpus far larger than the shuffle buffer, twice."""
    common = dict(model="tiny", corpus=corpus, max_steps=6, batch_size=8, sequence_length=32, vocab_size=600,
                  heldout_lines=100, shuffle_buffer_size=16, eval_every=3, save_every=1, verbose=0)
    runs = [pretrain(output=str(tmp_path / name), **common) for name in ("a", "b")]
    assert runs[0].initial_mlm_loss == runs[1].initial_mlm_loss  # the same held-out batches, the same init
    assert runs[0].mlm_loss == pytest.approx(runs[1].mlm_loss, abs=1e-6)
    assert runs[0].mlm_loss < runs[0].initial_mlm_loss
    config = with_defaults(PretrainConfig(**{k: v for k, v in common.items() if k != "verbose"}))
    _, heldout = pretrain_module._corpora(config)
    first, second = (list(pretrain_module._heldout_dataset(config, runs[0].tokenizer, heldout, static_eval=False))
                     for _ in range(2))
    for a, b in zip(tf.nest.flatten(first), tf.nest.flatten(second)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    backups = sorted(p.name for p in (tmp_path / "a" / "backup" / "inputs").iterdir())
    assert backups == ["worker-0-step-000000004.json", "worker-0-step-000000005.json", "worker-0-step-000000006.json"]


def test_cli_errors_name_the_problem(tmp_path, corpus, capsys):
    out = str(tmp_path / "out")
    assert main(["pretrain", "--corpus", str(tmp_path / "nowhere" / "*.txt"), "--output", out]) == 2
    assert "nowhere/*.txt: the pattern matches no files" in capsys.readouterr().err
    assert main(["pretrain", "--corpus", corpus, "--output", out, "--batch-size", "6",
                 "--gradient-accumulation-steps", "4"]) == 2
    assert "must be divisible by replicas x gradient_accumulation_steps = 1 x 4" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["pretrain", "--corpus", corpus, "--precision", "float8"])
    assert main(["pretrain", "--corpus", corpus]) == 2
    assert "--output" in capsys.readouterr().err


def test_from_scratch_the_masked_lm_loss_falls_and_the_outputs_load(tmp_path, corpus, capsys):
    out = tmp_path / "run"
    command = ["pretrain", "--model", "tiny", "--corpus", corpus, "--output", str(out), "--max-steps", "150",
               "--batch-size", "16", "--sequence-length", "64", "--vocab-size", "2000", "--learning-rate", "1e-3",
               "--warmup-steps", "10", "--save-every", "50", "--eval-every", "75", "--heldout-lines", "200"]
    assert main(command) == 0
    stdout = capsys.readouterr().out
    result = last_json(stdout)
    assert result["steps"] == 150 and result["start_step"] == 0
    # Held-out loss with fixed masks, before vs after: uniform guessing over 2000 pieces is ~7.6 nats.
    assert result["initial_mlm_loss"] > 7.0
    assert result["mlm_loss"] < result["initial_mlm_loss"] - 1.0
    assert f"tensorboard --logdir {out / 'logs'}" in stdout

    # Hugging Face directory: a MaskedLM checkpoint with its tokenizer, for transformers and for us.
    hf_model, info = transformers.AutoModelForMaskedLM.from_pretrained(out / "backbone", output_loading_info=True)
    assert not info["missing_keys"] and type(hf_model).__name__ == "BertForMaskedLM"
    tokenizer = Tokenizer.from_pretrained(out / "backbone")
    assert tokenizer.vocab_size == Backbone.from_pretrained(out / "backbone").vocabulary_size
    assert keras.saving.load_model(out / "backbone.keras").num_layers == 2
    assert (out / "checkpoints" / "best.keras").is_file() and (out / "checkpoints" / "latest.weights.h5").is_file()
    assert list((out / "logs").rglob("events.out.tfevents.*"))

    # The same command again: nothing left to train, the same evaluation.
    assert main(command) == 0
    again = capsys.readouterr().out
    assert "resuming at step 150 of 150" in again
    assert last_json(again)["mlm_loss"] == pytest.approx(result["mlm_loss"], abs=1e-6)


@pytest.mark.slow
def test_mirrored_strategy_matches_one_device(tmp_path, corpus, checkpoint, two_cpus):
    """The same job over 2 replicas (and with 2-step accumulation) gives the losses of one device.

    (Fast unit versions: tests/tasks/test_masked_lm.py::test_loss_is_normalised_over_the_global_batch and
    tests/training/test_accumulation.py::test_clipping_sees_the_sum_of_the_replicas_gradients.)
    """
    common = dict(model=checkpoint, corpus=corpus, max_steps=4, **{**SMALL, "eval_every": 4})
    one = pretrain(output=str(tmp_path / "one"), strategy=tf.distribute.get_strategy(), **common)
    # ReductionToOneDevice: no collective ops, which other MirroredStrategy instances of the session could clash with.
    mirrored = tf.distribute.MirroredStrategy(two_cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())
    two = pretrain(output=str(tmp_path / "two"), strategy=mirrored, **common)
    accumulated = pretrain(output=str(tmp_path / "acc"), strategy=mirrored, gradient_accumulation_steps=2, **common)
    assert one.mlm_loss < one.initial_mlm_loss - 0.05  # the four steps did something
    for other in (two, accumulated):
        assert other.initial_mlm_loss == pytest.approx(one.initial_mlm_loss, abs=1e-5)
        assert other.mlm_loss == pytest.approx(one.mlm_loss, abs=1e-4)
        # Gradients clipped to norm 1 after summing the replicas' shares, as on one device.
        for a, b in zip(one.model.get_weights(), other.model.get_weights()):
            np.testing.assert_allclose(a, b, atol=1e-4)
    assert not pretrain_module._jit_allowed(mirrored)  # XLA is turned off there, with a warning
    assert pretrain_module._jit_allowed(tf.distribute.get_strategy())


def test_tpu_path_fixed_shapes_and_an_xla_compiled_step(tmp_path, corpus, checkpoint):
    config = PretrainConfig(model=checkpoint, corpus=corpus, output=str(tmp_path), max_steps=2, batch_size=8,
                            sequence_length=32, heldout_lines=100, nsp=True)
    tokenizer = Tokenizer.from_pretrained(checkpoint)
    corpus, heldout = pretrain_module._corpora(pretrain_module.with_defaults(config))
    train = pretrain_module._train_dataset(config, tokenizer, corpus, tf.distribute.get_strategy(), None, {}, 0)
    evaluation = pretrain_module._heldout_dataset(config, tokenizer, heldout, static_eval=True)
    for dataset in (train, evaluation):
        shapes = [spec.shape for spec in tf.nest.flatten(dataset.element_spec)]
        assert all(shape.is_fully_defined() and shape[0] == 8 for shape in shapes), shapes

    result = pretrain(config, jit_compile=True, eval_every=2, verbose=0)  # whole step under XLA, NSP included
    assert result.model.jit_compile is True and result.steps == 2
    assert np.isfinite(result.mlm_loss)


def test_mixed_float16_trains_with_loss_scaling(tmp_path, corpus, checkpoint):
    result = pretrain(model=checkpoint, corpus=corpus, output=str(tmp_path), max_steps=2, precision="mixed_float16",
                      **SMALL)
    model = result.model
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.backbone.dtype_policy.name == "mixed_float16" and model.mlm_head.compute_dtype == "float16"
    assert model.backbone.token_embedding.embeddings.dtype == "float32"  # float32 master weights
    assert np.isfinite(result.mlm_loss) and result.mlm_loss < result.initial_mlm_loss


def test_an_object_store_holds_the_corpus_and_everything_written_and_a_stopped_run_resumes_there(
        tmp_path, corpus, checkpoint, monkeypatch):
    """TensorFlow's in-memory file system stands in for gs://: the corpus is read from it, backups reach it while
    training, a run stopped mid-way resumes from it (not from step 0), and the backbone, result and TensorBoard
    logs end up there; the weights equal an unbroken local run's."""
    from ptft_keras.training.callbacks import PreemptionBackup

    root = "ram://ptft-tests/pretrain-remote"
    with tf.io.gfile.GFile(f"{root}/corpus.txt", "wb") as stream:
        stream.write(Path(corpus).read_bytes())
    options = dict(model=checkpoint, max_steps=8, **{**SMALL, "eval_every": 4})
    unbroken = pretrain(output=str(tmp_path / "local"), corpus=corpus, **options)

    class Stopped(Exception):
        pass

    def stop_after_five(self, batch, logs=None):
        original(self, batch, logs)
        if self.steps == 5:
            raise Stopped

    original = PreemptionBackup.on_train_batch_end
    with monkeypatch.context() as patch:
        patch.setattr(PreemptionBackup, "on_train_batch_end", stop_after_five)
        with pytest.raises(Stopped):
            pretrain(output=f"{root}/run", corpus=f"{root}/corpus.txt", **options)
    with tf.io.gfile.GFile(f"{root}/run/backup/checkpoint.json") as stream:
        assert json.loads(stream.read())["steps"] == 4
    resumed = pretrain(output=f"{root}/run", corpus=f"{root}/corpus.txt", **options)
    assert (resumed.start_step, resumed.steps) == (4, 8) and resumed.backbone == f"{root}/run/backbone"
    for mine, theirs in zip(resumed.model.backbone.get_weights(), unbroken.model.backbone.get_weights()):
        np.testing.assert_allclose(mine, theirs, atol=1e-5, rtol=0)
    names = {name for _, _, files in tf.io.gfile.walk(f"{root}/run") for name in files}
    assert {"result.json", "model.safetensors", "backbone.keras", "vocab.txt", "checkpoint.json"} <= names
    assert any(name.startswith("events.out.tfevents") for name in names)
    assert not any(Path(tmp_path).glob("gs:*")) and not Path("ram:").exists()


@pytest.mark.slow
def test_a_killed_run_resumes_and_ends_with_the_weights_of_an_uninterrupted_run(tmp_path, corpus, checkpoint):
    def command(output):
        return cli_command("--model", checkpoint, "--corpus", corpus, "--output", output, "--max-steps", 24,
                           "--batch-size", 8, "--sequence-length", 32, "--heldout-lines", 100, "--save-every", 4,
                           "--eval-every", 10, "--learning-rate", "1e-3", "--deterministic")

    env = subprocess_env()
    reference = subprocess.Popen(command(tmp_path / "reference"), env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
    victim = subprocess.Popen(command(tmp_path / "killed"), env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    pointer = tmp_path / "killed" / "backup" / "checkpoint.json"
    try:
        deadline = time.monotonic() + TIMEOUT
        while not pointer.exists():  # kill -9 right after the first backup, in the middle of an epoch
            assert victim.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no backup appeared"
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=60)
        killed_at = json.loads(pointer.read_text())["steps"]
        assert 0 < killed_at < 24

        resumed = subprocess.run(command(tmp_path / "killed"), env=env, capture_output=True, text=True, timeout=TIMEOUT)
        assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
        assert f"resuming at step {killed_at} of 24" in resumed.stdout  # it did not start over
        assert last_json(resumed.stdout)["start_step"] == killed_at and last_json(resumed.stdout)["steps"] == 24

        output, _ = reference.communicate(timeout=TIMEOUT)
        assert reference.returncode == 0, output[-3000:]
        assert "starting at step 0 of 24" in output and "masked-LM head from the checkpoint" in output
    finally:
        for process in (reference, victim):
            if process.poll() is None:
                process.kill()
    uninterrupted = load_file(tmp_path / "reference" / "backbone" / "model.safetensors")
    interrupted = load_file(tmp_path / "killed" / "backbone" / "model.safetensors")
    assert set(uninterrupted) == set(interrupted)
    for name, value in uninterrupted.items():
        np.testing.assert_allclose(interrupted[name], value, atol=1e-5, err_msg=name)
    assert last_json(resumed.stdout)["mlm_loss"] == pytest.approx(last_json(output)["mlm_loss"], abs=1e-5)


@pytest.mark.slow
def test_two_processes_with_the_same_seed_and_corpus_print_the_same_losses(tmp_path, corpus):
    """From scratch in two processes with different hash seeds: vocabulary, data order, masks and init agree."""
    runs = []
    for index, hash_seed in enumerate(("1", "2")):
        done = subprocess.run(cli_command("--model", "tiny", "--corpus", corpus, "--output", tmp_path / f"run-{index}",
                                          "--max-steps", 8, "--batch-size", 8, "--sequence-length", 32,
                                          "--vocab-size", 800, "--heldout-lines", 100, "--eval-every", 4),
                              env=subprocess_env(PYTHONHASHSEED=hash_seed), capture_output=True, text=True,
                              timeout=TIMEOUT)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        runs.append(last_json(done.stdout))
    assert (tmp_path / "run-0" / "tokenizer" / "vocab.txt").read_text() == \
        (tmp_path / "run-1" / "tokenizer" / "vocab.txt").read_text()
    assert runs[0]["initial_mlm_loss"] == runs[1]["initial_mlm_loss"]
    assert runs[0]["mlm_loss"] == pytest.approx(runs[1]["mlm_loss"], abs=1e-6)


@pytest.mark.slow
def test_two_workers_train_in_step(tmp_path, corpus, checkpoint):
    """MultiWorkerMirroredStrategy, 2 processes on 127.0.0.1: both end with the same weights."""
    ports = f"{free_port()},{free_port()}"
    script = Path(__file__).with_name("multi_worker_pretrain.py")
    workers = [subprocess.Popen([sys.executable, str(script), str(index), ports, checkpoint, corpus, str(tmp_path)],
                                env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for index in (0, 1)]
    try:
        logs = [worker.communicate(timeout=TIMEOUT)[0] for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    for worker, log in zip(workers, logs):
        assert worker.returncode == 0, log[-3000:]
    chief, other = (json.loads((tmp_path / f"worker-{i}.json").read_text()) for i in (0, 1))
    assert chief["steps"] == other["steps"] == 4
    assert chief["checksum"] == other["checksum"]
    assert chief["mlm_loss"] == pytest.approx(other["mlm_loss"], abs=1e-6)
    assert chief["mlm_loss"] < chief["initial_mlm_loss"]
    assert (tmp_path / "backbone" / "model.safetensors").is_file()  # written once, by the chief
