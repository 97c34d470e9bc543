"""Callbacks of a pretraining run: preemption-safe backups, latest/best checkpoints, TensorBoard, NaN stop.

Resuming exactly needs four things back: the weights, the optimizer state, the dropout random
stream and the position in the data. Keras' `BackupAndRestore` restores the first two, at epoch
granularity only (a mid-epoch backup restarts its epoch with later weights, replaying data), and
leaves the seed generators out. `PreemptionBackup` counts *steps*: it saves every `save_freq` steps
and/or every `save_seconds`, with the seed-generator states and the input position the job gives it
(`data.corpus.InputPositions`), so a resumed run starts its input where the backup was taken and
sees exactly the batches an uninterrupted run sees, without reading the ones before (`jobs.pretrain`).

Every file here is written to a temporary sibling and renamed into place, so a process killed at
any instant leaves either the previous file or the new one, never a torn one. The backup keeps
whole generations (`step-000001200/`) and a pointer file renamed last, because its weights and its
step count must change together.

Example:
    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> backup = PreemptionBackup(out + "/backup", save_freq=200)
    >>> callbacks = pretraining_callbacks(out, backup=backup, steps=1000, tokens_per_step=4096, log_every=10)
    >>> len(callbacks)
    6
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from pathlib import Path

import keras
import numpy as np

from ptft_keras.errors import CheckpointError

BACKUP_DIR, CHECKPOINT_DIR, LOG_DIR, INPUTS_DIR = "backup", "checkpoints", "logs", "inputs"
POINTER_FILE = "checkpoint.json"
STAGING_PREFIX = ".partial-"


@contextlib.contextmanager
def staged(path):
    """Yield a temporary sibling of `path` (same suffix) to write; it is renamed to `path` on success.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "result.json"
        >>> with staged(target) as tmp:
        ...     _ = tmp.write_text("{}")
        >>> target.read_text()
        '{}'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(STAGING_PREFIX + path.name)
    _remove(tmp)
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():  # a directory cannot be replaced in one rename
            old = path.with_name(STAGING_PREFIX + "old-" + path.name)
            _remove(old)
            os.replace(path, old)
            os.replace(tmp, path)
            _remove(old)
        else:
            os.replace(tmp, path)
    finally:
        _remove(tmp)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def write_json_atomic(path, data) -> None:
    """Write `data` as JSON to `path` via a temporary file and a rename.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "state.json"
        >>> write_json_atomic(path, {"steps": 3})
        >>> read_json(path), read_json(path.with_name("missing.json"), default={})
        ({'steps': 3}, {})
    """
    with staged(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def read_json(path, default=None):
    """The JSON in `path`, `default` when it does not exist; CheckpointError when it is corrupt (see above)."""
    path = Path(path)
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CheckpointError(f"cannot read ({error}); delete it to start over", path=path) from None


class PreemptionBackup(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` that counts steps, writes atomically, and restores the dropout random stream
    and the input position.

    It backs up every `save_freq` steps (counted from step 0, so every worker saves at the same
    steps; with `min_seconds`, only once that long has passed since the last backup), every
    `save_seconds` seconds since the last backup (None: never by time) and when training ends. A backup is a generation `backup_dir/step-000001200/` holding `model.weights.h5`
    (weights and optimizer state) and `rng.npz` (the seed-generator states, which `save_weights`
    leaves out), then `backup_dir/checkpoint.json` (`{"steps": 1200, "directory": ...}`) renamed into
    place. The previous generation is kept until the new one is complete; a non-finite loss never
    overwrites a backup.

    `input_state(steps)` (optional) returns a JSON-able position of this worker's input after `steps`
    steps; it is written first, to `backup_dir/inputs/{input_name}-step-000001200.json`, by every
    worker (the input of each worker differs; the weights are the chief's alone).

    `on_saved` (optional, a callable without arguments) runs after every backup, on every worker.

    `restore()` (called by `fit` via `on_train_begin`, or by the job before it, to know where the
    data must restart) loads the newest backup, sets `restored_input` (the saved input position, or
    None when there is none for that step) and returns the steps it had done. With `writer=False`
    (non-chief workers of a multi-worker job) the callback restores from the shared `backup_dir` and
    writes only its input positions.

    Example:
        >>> import tempfile
        >>> backup = PreemptionBackup(tempfile.mkdtemp(), save_freq=100, save_seconds=600)
        >>> backup.steps_done()   # nothing backed up yet
        0
    """

    def __init__(self, backup_dir, *, save_freq: int | None = 1000, save_seconds: float | None = None,
                 min_seconds: float | None = None, writer: bool = True, keep: int = 2, input_state=None,
                 input_name: str = "worker-0"):
        super().__init__(str(backup_dir), save_freq="epoch", delete_checkpoint=False)
        self.save_every = int(save_freq) if save_freq else None
        self.save_seconds = float(save_seconds) if save_seconds else None
        self.min_seconds = float(min_seconds) if min_seconds else None
        self.writer = writer
        self.keep = max(int(keep), 1)
        self.input_state = input_state
        self.input_name = input_name
        self.restored_input = None
        self.on_saved = None  # called after each backup (e.g. to copy it to an object store)
        self.steps = 0
        self._restored = False
        self._last_save = time.monotonic()

    def _pointer(self) -> dict:
        return read_json(Path(self.backup_dir) / POINTER_FILE, default={})

    def _input_file(self, steps: int) -> Path:
        return Path(self.backup_dir) / INPUTS_DIR / f"{self.input_name}-step-{steps:09d}.json"

    def steps_done(self) -> int:
        """Steps completed by the newest backup (0 when there is none)."""
        return int(self._pointer().get("steps", 0))

    def restore(self) -> int:
        """Load the newest backup into the model (a no-op without one); returns the steps it had done."""
        self._restored = True
        pointer = self._pointer()
        if not pointer:
            return 0
        generation = Path(self.backup_dir) / pointer["directory"]
        weights = generation / "model.weights.h5"
        if not weights.is_file():
            raise CheckpointError(
                f"the backup pointer names {pointer['directory']}, which has no weights; delete "
                f"{self.backup_dir} to start over", path=Path(self.backup_dir) / POINTER_FILE,
            )
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        try:
            self.model.load_weights(str(weights))
        except ValueError as error:
            raise CheckpointError(
                f"this backup was made by another model or configuration ({error}); resume with the same "
                f"options, or use a new output directory", path=weights,
            ) from None
        with np.load(generation / "rng.npz") as saved:
            states = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        variables = _seed_states(self.model)
        if len(states) != len(variables):
            raise CheckpointError(f"the backup has {len(states)} random-generator states, the model "
                                  f"{len(variables)}: it belongs to another model; delete it to start over",
                                  path=generation / "rng.npz")
        for variable, state in zip(variables, states):
            variable.assign(state)
        self.steps = int(pointer["steps"])
        self.restored_input = read_json(self._input_file(self.steps), default=None)
        return self.steps

    def on_train_begin(self, logs=None):
        if not self._restored:
            self.restore()
        self._last_save = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        self._finite = _finite_loss(logs)
        since = time.monotonic() - self._last_save
        due = (self.save_every is not None and self.steps % self.save_every == 0
               and (self.min_seconds is None or since >= self.min_seconds))
        late = self.save_seconds is not None and since >= self.save_seconds
        if due or late:
            self._save_model()

    def on_epoch_end(self, epoch, logs=None):
        pass  # saving follows steps, not epochs

    def on_train_end(self, logs=None):
        if self.steps != self.steps_done():
            self._save_model()

    def _save_model(self):
        self._last_save = time.monotonic()
        if not getattr(self, "_finite", True):
            return  # never let a diverged state overwrite the last good backup
        if self.input_state is not None:
            self._save_input()
        if self.writer:
            self._save_generation()
        if self.on_saved is not None:
            self.on_saved()

    def _save_generation(self):
        backup_dir = Path(self.backup_dir)
        name = f"step-{self.steps:09d}"
        with staged(backup_dir / name) as tmp:
            tmp.mkdir()
            self.model.save_weights(str(tmp / "model.weights.h5"))
            np.savez(tmp / "rng.npz", *[keras.ops.convert_to_numpy(v) for v in _seed_states(self.model)])
        write_json_atomic(backup_dir / POINTER_FILE, {"steps": self.steps, "directory": name})
        generations = sorted(p for p in backup_dir.glob("step-*") if p.is_dir())
        for old in generations[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)

    def _save_input(self):
        state = self.input_state(self.steps)
        if state is None:
            return
        write_json_atomic(self._input_file(self.steps), state)
        # Keep one more than the generations, so every kept generation has its input position.
        mine = sorted(self._input_file(0).parent.glob(f"{self.input_name}-step-*.json"))
        for old in mine[: -(self.keep + 1)]:
            old.unlink(missing_ok=True)


def _seed_states(model) -> list:
    """The state variables of the model's seed generators (dropout), which `save_weights` omits, in model order."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def _finite_loss(logs) -> bool:
    loss = (logs or {}).get("loss")
    return loss is None or math.isfinite(float(loss))


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """`ModelCheckpoint` writing to a temporary sibling then renaming; with `save_best_only` the best
    value is kept in `<filepath>.json`, so a resumed run does not replace the best with a worse model.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "best.keras")
        >>> write_json_atomic(path + ".json", {"monitor": "val_mlm_loss", "value": 2.5, "epoch": 3})
        >>> AtomicModelCheckpoint(path, monitor="val_mlm_loss", save_best_only=True).best  # a resumed run's bar
        2.5
    """

    def __init__(self, filepath, **kwargs):
        self._record = Path(str(filepath) + ".json")
        if kwargs.get("save_best_only") and kwargs.get("initial_value_threshold") is None:
            kwargs["initial_value_threshold"] = read_json(self._record, default={}).get("value")
        super().__init__(filepath, **kwargs)

    def _save_model(self, epoch, batch, logs):
        final = Path(self._get_file_path(epoch, batch, logs))
        tmp = final.with_name(STAGING_PREFIX + final.name)
        _remove(tmp)
        pattern, self.filepath = self.filepath, str(tmp)
        try:
            super()._save_model(epoch, batch, logs)
        finally:
            self.filepath = pattern
        if not tmp.exists():  # save_best_only and no improvement
            return
        os.replace(tmp, final)
        if self.save_best_only:
            value = float((logs or {})[self.monitor])
            write_json_atomic(self._record, {"monitor": self.monitor, "value": value, "epoch": epoch + 1})


class PretrainTensorBoard(keras.callbacks.TensorBoard):
    """Keras' TensorBoard with global steps that continue after a resume (`start_step`), plus
    `learning_rate` and `tokens_per_second` scalars every `update_freq` steps and per epoch.

    `tokens_per_step` is the global batch size times the sequence length (positions processed).

    Example:
        >>> import tempfile
        >>> tensorboard = PretrainTensorBoard(tempfile.mkdtemp(), tokens_per_step=32 * 128, start_step=500)
        >>> tensorboard.start_step, tensorboard.update_freq
        (500, 100)
    """

    def __init__(self, log_dir, *, tokens_per_step: int, start_step: int = 0, update_freq=100, **kwargs):
        kwargs.setdefault("write_graph", False)
        kwargs.setdefault("write_steps_per_second", True)
        super().__init__(str(log_dir), update_freq=update_freq, **kwargs)
        self.tokens_per_step = int(tokens_per_step)
        self.start_step = int(start_step)
        self._window = self._epoch_window = (time.perf_counter(), self.start_step)

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self._global_train_batch = self.start_step + epoch * self.params["steps"]
        self._window = self._epoch_window = (time.perf_counter(), self._global_train_batch)

    def _rates(self, window) -> dict:
        start_time, start_step = window
        elapsed = max(time.perf_counter() - start_time, 1e-9)
        return {
            "tokens_per_second": (self._global_train_batch - start_step) * self.tokens_per_step / elapsed,
            "learning_rate": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
        }

    def on_train_batch_end(self, batch, logs=None):
        if self.update_freq != "epoch" and self._global_train_batch % self.update_freq == 0:
            logs = {**(logs or {}), **self._rates(self._window)}
            self._window = (time.perf_counter(), self._global_train_batch)
        super().on_train_batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        rates = self._rates(self._epoch_window)
        super().on_epoch_end(epoch, {**(logs or {}), "tokens_per_second": rates["tokens_per_second"]})


class StopAfter(keras.callbacks.Callback):
    """Stop `fit` after `steps` batches, even in the middle of an epoch (the last one may be partial).

    Example:
        >>> StopAfter(250).steps
        250
    """

    def __init__(self, steps: int):
        super().__init__()
        self.steps = int(steps)
        self._seen = 0

    def on_train_batch_end(self, batch, logs=None):
        self._seen += 1
        if self._seen >= self.steps:
            self.model.stop_training = True


def pretraining_callbacks(output_dir, *, backup: PreemptionBackup, steps: int, tokens_per_step: int,
                          start_step: int = 0, log_every: int = 100, writer: bool = True,
                          monitor: str = "val_mlm_loss") -> list:
    """The callbacks of a pretraining job that runs `steps` more steps and writes under `output_dir`.

    `backup` (resume state), TerminateOnNaN, a stop after `steps`, and for the writer (the chief):
    `checkpoints/latest.weights.h5` and `checkpoints/best.keras` (lowest `monitor`) at each epoch end,
    TensorBoard logs in `logs/` with global steps from `start_step`.

    Example:
        >>> import tempfile
        >>> out = tempfile.mkdtemp()
        >>> callbacks = pretraining_callbacks(out, backup=PreemptionBackup(out + "/backup"), steps=100,
        ...                                   tokens_per_step=4096)
        >>> [type(c).__name__ for c in callbacks]  # doctest: +NORMALIZE_WHITESPACE
        ['PreemptionBackup', 'TerminateOnNaN', 'StopAfter', 'AtomicModelCheckpoint', 'AtomicModelCheckpoint',
         'PretrainTensorBoard']
    """
    output_dir = Path(output_dir)
    callbacks = [backup, keras.callbacks.TerminateOnNaN(), StopAfter(steps)]
    if writer:
        checkpoints = output_dir / CHECKPOINT_DIR
        callbacks += [
            AtomicModelCheckpoint(checkpoints / "latest.weights.h5", save_weights_only=True),
            AtomicModelCheckpoint(checkpoints / "best.keras", monitor=monitor, save_best_only=True, mode="min"),
            PretrainTensorBoard(output_dir / LOG_DIR, tokens_per_step=tokens_per_step, start_step=start_step,
                                update_freq=log_every),
        ]
    return callbacks
