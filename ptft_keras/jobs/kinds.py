"""The task kinds `ptft finetune --task`, `ptft evaluate` and `ptft predict` dispatch on.

A table of names (importing a kind loads TensorFlow, and `ptft --help` must not): `kind_for(task)`
imports the kind's module when a job runs. A new kind is one `TaskKind` subclass and one entry here.

Example:
    >>> TASKS
    ('classification', 'multilabel', 'regression', 'token-classification', 'question-answering')
    >>> type(kind_for("multilabel")).__name__
    'SequenceKind'
"""
from __future__ import annotations

import importlib

from ptft_keras.errors import ConfigError

#: --task -> "module:TaskKind subclass" (None: a task model exists, but no job reads its files yet)
KINDS: dict[str, str | None] = {
    "classification": "ptft_keras.jobs.sequence_kind:SequenceKind",
    "multilabel": "ptft_keras.jobs.sequence_kind:SequenceKind",
    "regression": "ptft_keras.jobs.sequence_kind:SequenceKind",
    "token-classification": "ptft_keras.jobs.token_kind:TokenKind",
    "question-answering": None,
}
TASKS = tuple(KINDS)


def kind_for(task: str):
    """The `TaskKind` that runs `task`; a ConfigError for a task without a job."""
    if task not in KINDS:
        raise ConfigError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    target = KINDS[task]
    if target is None:
        runnable = ", ".join(t for t, k in KINDS.items() if k)
        raise ConfigError(f"task {task!r} is not available in `ptft finetune` yet (it needs its own file reader); "
                          f"use one of {runnable}, or build the task model from ptft_keras.tasks in Python")
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)()
