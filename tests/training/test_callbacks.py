"""Pretraining callbacks: atomic writes, step-exact backups (with the dropout RNG), best checkpoint, TensorBoard."""
import doctest
import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from ptft_keras.errors import CheckpointError
from ptft_keras.training import callbacks as cb


def test_docstring_examples():
    result = doctest.testmod(cb, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_staged_write_leaves_the_old_file_when_interrupted(tmp_path):
    target = tmp_path / "state.json"
    cb.write_json_atomic(target, {"steps": 1})
    with pytest.raises(RuntimeError):
        with cb.staged(target) as tmp:
            tmp.write_text('{"steps": 2, "trunc')
            raise RuntimeError("killed while writing")
    assert json.loads(target.read_text()) == {"steps": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]

    generation = tmp_path / "step-000000004"  # left by a run killed before it updated its pointer
    generation.mkdir()
    (generation / "stale.h5").write_text("half written")
    with cb.staged(generation) as tmp:
        tmp.mkdir()
        (tmp / "model.weights.h5").write_text("complete")
    assert [p.name for p in generation.iterdir()] == ["model.weights.h5"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "step-000000004"]


def tiny_model(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dropout(0.5),
                              keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return model


def data(steps):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(steps * 4, 4)).astype("float32"), rng.normal(size=(steps * 4, 1)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(4)


def test_backup_resumes_weights_optimizer_and_dropout_stream(tmp_path):
    reference = tiny_model()
    reference.fit(data(6), epochs=1, verbose=0)  # 6 steps in one go

    first = tiny_model()
    backup = cb.PreemptionBackup(tmp_path / "backup", save_freq=2, keep=2)
    first.fit(data(6).take(3), epochs=1, verbose=0, callbacks=[backup])  # "killed" after step 3
    pointer = json.loads((tmp_path / "backup" / cb.POINTER_FILE).read_text())
    assert pointer == {"steps": 3, "directory": "step-000000003"}  # saved at step 2 and at the end
    generations = sorted(p.name for p in (tmp_path / "backup").iterdir())
    assert generations == [cb.POINTER_FILE, "step-000000002", "step-000000003"]

    resumed = tiny_model(seed=1)  # a fresh process: other initial weights
    again = cb.PreemptionBackup(tmp_path / "backup", save_freq=2)
    again.set_model(resumed)
    assert again.restore() == 3
    assert int(resumed.optimizer.iterations) == 3
    resumed.fit(data(6).skip(3), epochs=1, verbose=0, callbacks=[again])
    for a, b in zip(reference.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)  # would differ if the dropout stream restarted
    assert again.steps_done() == 6


def test_backup_never_saves_a_diverged_state_and_reports_a_broken_one(tmp_path):
    model = tiny_model()
    backup = cb.PreemptionBackup(tmp_path, save_freq=1)
    backup.set_model(model)
    backup.on_train_batch_end(0, {"loss": math.nan})
    assert backup.steps_done() == 0 and not list(tmp_path.iterdir())
    backup.on_train_batch_end(1, {"loss": 0.5})
    assert backup.steps_done() == 2

    (tmp_path / cb.POINTER_FILE).write_text('{"steps": 2, "direc')  # cannot happen with atomic writes, but
    with pytest.raises(CheckpointError, match="delete it to start over"):
        backup.restore()
    cb.write_json_atomic(tmp_path / cb.POINTER_FILE, {"steps": 9, "directory": "step-000000009"})
    with pytest.raises(CheckpointError, match="has no weights"):
        backup.restore()


def test_best_checkpoint_survives_a_resume(tmp_path):
    model = tiny_model()
    path = tmp_path / "best.weights.h5"
    best = cb.AtomicModelCheckpoint(path, monitor="val_mlm_loss", save_best_only=True, save_weights_only=True,
                                    mode="min")
    best.set_model(model)
    for epoch, value in enumerate([3.0, 2.0, 2.5]):
        best.on_epoch_end(epoch, {"val_mlm_loss": value})
    assert json.loads((tmp_path / "best.weights.h5.json").read_text())["value"] == 2.0
    saved = path.read_bytes()

    resumed = cb.AtomicModelCheckpoint(path, monitor="val_mlm_loss", save_best_only=True, save_weights_only=True,
                                       mode="min")
    resumed.set_model(model)
    resumed.on_epoch_end(3, {"val_mlm_loss": 2.2})  # worse than the best of the first run
    assert path.read_bytes() == saved
    resumed.on_epoch_end(4, {"val_mlm_loss": 1.5})
    assert json.loads((tmp_path / "best.weights.h5.json").read_text()) == {"monitor": "val_mlm_loss", "value": 1.5,
                                                                           "epoch": 5}
    assert not list(tmp_path.glob(cb.STAGING_PREFIX + "*"))


def _scalars(log_dir):
    found = {}
    for path in sorted(log_dir.rglob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                found.setdefault(value.tag, []).append(event.step)
    return found


def test_tensorboard_logs_learning_rate_and_tokens_per_second_at_global_steps(tmp_path):
    model = tiny_model()
    tensorboard = cb.PretrainTensorBoard(tmp_path, tokens_per_step=4 * 16, start_step=10, update_freq=2)
    model.fit(data(4).repeat(), epochs=2, steps_per_epoch=2, verbose=0, callbacks=[tensorboard])
    scalars = _scalars(tmp_path)
    assert scalars["batch_learning_rate"] == [12, 14]  # continues from the resumed step
    assert scalars["batch_tokens_per_second"] == [12, 14]
    assert {"epoch_tokens_per_second", "epoch_learning_rate", "batch_loss"} <= set(scalars)


def test_stop_after_and_the_callback_set(tmp_path):
    model = tiny_model()
    model.fit(data(4).repeat(), epochs=3, steps_per_epoch=4, verbose=0, callbacks=[cb.StopAfter(6)])
    assert int(model.optimizer.iterations) == 6

    backup = cb.PreemptionBackup(tmp_path / "backup")
    worker = cb.pretraining_callbacks(tmp_path, backup=backup, steps=5, tokens_per_step=64, writer=False)
    assert [type(c).__name__ for c in worker] == ["PreemptionBackup", "TerminateOnNaN", "StopAfter"]


def test_backup_by_time_and_the_input_position_of_each_worker(tmp_path, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(cb.time, "monotonic", lambda: clock[0])
    model = tiny_model()
    chief = cb.PreemptionBackup(tmp_path, save_freq=None, save_seconds=60, input_state=lambda steps: {"at": steps})
    other = cb.PreemptionBackup(tmp_path, save_freq=None, save_seconds=60, writer=False,
                                input_state=lambda steps: {"at": -steps}, input_name="worker-1")
    for backup in (chief, other):
        backup.set_model(model)
        backup.on_train_begin()
    for seconds in (10, 30, 61, 70, 125):  # 61 s and 125 s after the start: backups after steps 3 and 5
        clock[0] = 1000.0 + seconds
        for backup in (chief, other):
            backup.on_train_batch_end(0, {"loss": 0.1})
    assert chief.steps_done() == 5
    inputs = sorted(p.name for p in (tmp_path / cb.INPUTS_DIR).iterdir())
    assert inputs == ["worker-0-step-000000003.json", "worker-0-step-000000005.json",
                      "worker-1-step-000000003.json", "worker-1-step-000000005.json"]

    resumed = cb.PreemptionBackup(tmp_path, input_name="worker-1")
    resumed.set_model(tiny_model(seed=1))
    assert resumed.restore() == 5 and resumed.restored_input == {"at": -5}
    (tmp_path / cb.INPUTS_DIR / "worker-1-step-000000005.json").unlink()  # e.g. killed before it was written
    assert resumed.restore() == 5 and resumed.restored_input is None  # the job then replays the input


def test_backup_by_steps_waits_for_min_seconds_after_the_last(tmp_path, monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(cb.time, "monotonic", lambda: clock[0])
    backup = cb.PreemptionBackup(tmp_path, save_freq=2, min_seconds=60)
    backup.set_model(tiny_model())
    backup.on_train_begin()
    saved = []
    for seconds in (10, 20, 50, 70, 80, 90, 100, 140):  # steps 1..8 at these times
        clock[0] = seconds
        backup.on_train_batch_end(0, {"loss": 0.1})
        saved.append(backup.steps_done())
    assert saved == [0, 0, 0, 4, 4, 4, 4, 8]  # steps 2 and 6 came less than a minute after the last backup
