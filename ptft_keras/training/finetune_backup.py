"""Fine-tuning that survives a kill: `FinetuneBackup` writes the whole training state every N optimizer
steps and at every epoch end; `restore_backup` puts it back, so a rerun continues where the last backup
was made, at the same batch of the same epoch.

A backup generation is a set of files written in place under new names, then committed by rewriting
one small pointer file (`state.json`, atomically): no directory is renamed, so a kill at any moment
leaves the previous generation whole, and object stores work. A generation holds:

- ``weights-<step>.weights.h5``: model weights and optimizer state (moments, step, warmup origin);
- ``rng-<step>.npz``: the dropout seed-generator states (`save_weights` leaves them out);
- ``best-<step>.npz``: early stopping's best weights so far, when it has some;
- the pointer: global step, epoch and batch within it, the Keras history of the finished epochs,
  early stopping's counters, the per-step loss curve, and the run's options (`fingerprint`), so a
  rerun with other options is refused rather than mixed.

Example:
    >>> import tempfile
    >>> read_backup_state(tempfile.mkdtemp()) is None   # nothing backed up
    True
"""
from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np

from ptft_keras.errors import CheckpointError
from ptft_keras.training.callbacks import read_json, write_json_atomic

STATE_FILE = "state.json"


def seed_states(model) -> list:
    """The state variables of the model's seed generators (dropout), in model order."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def optimizer_steps(model) -> int:
    """The optimizer updates made so far."""
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


def read_backup_state(directory) -> dict | None:
    """The committed backup state in `directory`, or None when there is none."""
    state = read_json(Path(directory) / STATE_FILE, default=None)
    return state or None


class FinetuneBackup(keras.callbacks.Callback):
    """Writes the training state every `save_every` optimizer steps and at every epoch end.

    `early_stopping` (a `ResumableEarlyStopping` or None) and `step_log` (a `StepLog` or None) are the
    run's callbacks whose state goes into the backup; put this callback after them. `fingerprint` is a
    JSON-able dict of the options a resumed run must share. `start` is `(global step, epoch, batch)` of
    a resumed run and `history` the Keras history of its finished epochs.
    """

    def __init__(self, directory, *, save_every: int, fingerprint: dict, early_stopping=None, step_log=None,
                 start=(0, 0, 0), history=None, keep: int = 2):
        super().__init__()
        self.directory = Path(directory)
        self.save_every = max(int(save_every), 1)
        self.fingerprint = fingerprint
        self.early_stopping, self.step_log = early_stopping, step_log
        self.step, self.epoch, self.batch = start
        self.history = {k: list(v) for k, v in (history or {}).items()}
        self.keep = max(int(keep), 1)
        self._finite = True
        self._last_saved, self._epoch_start = self.step, (self.step, self.batch)
        #: called after each committed backup (e.g. to copy it to an object store)
        self.on_saved = None

    def on_train_begin(self, logs=None):
        self._last_saved = self.step

    def on_epoch_begin(self, epoch, logs=None):
        if epoch != self.epoch:
            self.epoch, self.batch = epoch, 0
        self._epoch_start = (optimizer_steps(self.model), self.batch)

    def on_train_batch_end(self, batch, logs=None):
        # counted from the optimizer, not from calls: with steps_per_execution=N a call is N steps
        start_steps, start_batch = self._epoch_start
        self.step = optimizer_steps(self.model)
        self.batch = start_batch + self.step - start_steps
        loss = (logs or {}).get("loss")
        self._finite = loss is None or math.isfinite(float(loss))
        if self.step - self._last_saved >= self.save_every:
            self.save()

    def on_epoch_end(self, epoch, logs=None):
        for name, value in (logs or {}).items():
            if np.ndim(value) == 0:
                self.history.setdefault(name, []).append(float(value))
        self.epoch, self.batch = epoch + 1, 0
        self.save()

    def save(self) -> None:
        """Write a generation and commit it (never a state whose loss is not finite)."""
        if not self._finite:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        tag = f"{self.step:09d}-{self.epoch:04d}-{self.batch:07d}"
        files = {"weights": f"weights-{tag}.weights.h5", "rng": f"rng-{tag}.npz"}
        self.model.save_weights(str(self.directory / files["weights"]))
        np.savez(self.directory / files["rng"], *[keras.ops.convert_to_numpy(v) for v in seed_states(self.model)])
        stopping = None
        if self.early_stopping is not None:
            stopping = self.early_stopping.resume_state()
            if self.early_stopping.best_weights is not None:
                files["best"] = f"best-{tag}.npz"
                np.savez(self.directory / files["best"], *self.early_stopping.best_weights)
        state = {
            "step": self.step, "epoch": self.epoch, "batch": self.batch, "files": files,
            "history": self.history, "early_stopping": stopping, "fingerprint": self.fingerprint,
            "step_log": ({"steps": self.step_log.steps, "losses": self.step_log.losses}
                         if self.step_log is not None else None),
        }
        write_json_atomic(self.directory / STATE_FILE, state)
        self._last_saved = self.step
        self._prune(set(files.values()))
        if self.on_saved is not None:
            self.on_saved()

    def _prune(self, current: set) -> None:
        """Keep the newest `keep` generations (the committed one among them)."""
        generations = sorted({p.name.split("-", 1)[1].split(".")[0] for p in self.directory.glob("weights-*")})
        for tag in generations[: -self.keep]:
            for path in self.directory.glob(f"*-{tag}.*"):
                if path.name not in current:
                    path.unlink(missing_ok=True)


def restore_backup(model, directory, state: dict) -> None:
    """Load a committed backup `state` (from `read_backup_state`) into a built, compiled `model` whose
    optimizer has been built over all its variables."""
    directory = Path(directory)
    weights = directory / state["files"]["weights"]
    try:
        model.load_weights(str(weights))
    except (OSError, ValueError) as error:
        raise CheckpointError(f"the fine-tuning backup cannot be loaded ({error}); delete {directory} (or pass "
                              "--overwrite) to start over", path=weights) from None
    with np.load(directory / state["files"]["rng"]) as saved:
        states = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    variables = seed_states(model)
    if len(states) != len(variables):
        raise CheckpointError("the fine-tuning backup belongs to another model; delete it to start over",
                              path=directory / state["files"]["rng"])
    for variable, value in zip(variables, states):
        variable.assign(value)


def best_weights(directory, state: dict):
    """Early stopping's best weights saved with `state`, or None."""
    name = (state.get("files") or {}).get("best")
    if not name:
        return None
    with np.load(Path(directory) / name) as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files))]


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """`EarlyStopping` whose counters and best weights survive a resume (`resume_with` before `fit`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._resumed = None
        #: leave the best weights unrestored at the end of this `fit` (a resumed run's partial first epoch,
        #: which a second `fit` continues)
        self.defer_restore = False

    def resume_state(self) -> dict:
        return {"wait": int(self.wait), "best": None if self.best is None else float(self.best),
                "best_epoch": int(self.best_epoch)}

    def resume_with(self, state: dict | None, weights) -> None:
        self._resumed = (state, weights) if state else None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._resumed is not None:
            state, weights = self._resumed
            self.wait, self.best_epoch = state["wait"], state["best_epoch"]
            if state["best"] is not None:
                self.best = state["best"]
            self.best_weights = weights

    def on_train_end(self, logs=None):
        if not self.defer_restore:
            super().on_train_end(logs)

    def stopped_before_resume(self) -> bool:
        """Whether the run being resumed had already stopped early (its last backup is the stopping epoch's)."""
        state = self._resumed[0] if self._resumed else None
        return bool(state) and state["wait"] >= self.patience  # Keras stops at the epoch end where wait reaches it

    def restore_without_fit(self, model) -> None:
        """Put the best weights back when no further `fit` runs: a run resumed from the backup made at its
        last epoch's end (or at its early stop) restores them here, as `on_train_end` would have."""
        weights = self.best_weights if self.best_weights is not None else (self._resumed or (None, None))[1]
        if self.restore_best_weights and weights is not None:
            model.set_weights(weights)
