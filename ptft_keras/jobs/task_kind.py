"""What a task kind plugs into the one fine-tuning skeleton (`jobs.finetune`), and the helpers kinds share.

`jobs.finetune.run_finetune` does what every fine-tuning run does (seed, strategy, checkpoint, sequence
length, padding, optimizer, freeze-then-unfreeze, early stopping, writing the model directory); a
`TaskKind` says only what differs between tasks:

==========================  =====================================================================
hook                        what it answers
==========================  =====================================================================
``read_splits``             the training and validation rows (files -> `Splits`)
``choose_sequence_length``  the length picked from the training data when none is given
``resolve_fit``             how texts over the budget are fitted (truncation), checked
``datasets``                the training (and validation) `tf.data` pipelines (`Prepared`), one per worker
                            when it takes the strategy
``build_model``             the Keras task model on the backbone
``monitor``                 the validation metric early stopping watches, and its direction
``score``                   the final validation report
``evaluate``/``predict``    `ptft evaluate` and `ptft predict` on a model directory of this kind
==========================  =====================================================================

A new kind (QA, distillation students, ...) subclasses `TaskKind` and is registered in `jobs.kinds`.

Example:
    >>> hold_out(10, fraction=0.2, seed=0, path="train.tsv", unit="rows")
    ([0, 1, 2, 3, 5, 7, 8, 9], [4, 6])
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

from ptft_keras.errors import ConfigError, DataError


@dataclass
class Splits:
    """The rows of a run: `train`, `validation` (or None), a name for the validation source, label names."""

    train: Any
    validation: Any
    validation_name: Optional[str]
    label_names: list = field(default_factory=list)


@dataclass
class Prepared:
    """The training pipeline and what validation needs: `validation_data` for `fit`, or `callbacks` that
    score the validation set themselves (and `state` a kind keeps for `score`)."""

    train: Any
    steps_per_epoch: int
    train_rows: int
    validation_data: Any = None
    callbacks: list = field(default_factory=list)
    state: dict = field(default_factory=dict)


class TaskKind:
    """The hooks of one task kind; see the module docstring. Subclasses fill them in."""

    #: the `--task` values this kind runs
    tasks: tuple = ()
    #: what a row is called in messages
    unit = "rows"
    #: the batch padding when `--padding auto` and shapes need not be static
    default_padding = "bucket"
    #: options whose generic default is replaced for this kind (when left at that default)
    defaults: dict = {}

    def with_defaults(self, config):
        """`config` with `defaults` where it holds the generic `FinetuneConfig` default.

        Example:
            >>> from ptft_keras.jobs.token_kind import TokenKind
            >>> from ptft_keras.jobs.finetune import FinetuneConfig
            >>> config = TokenKind().with_defaults(FinetuneConfig(task="token-classification", learning_rate=3e-5))
            >>> config.learning_rate, config.freeze_steps, config.layer_lr_decay
            (3e-05, 0, 1.0)
        """
        generic = {f.name: f.default for f in dataclasses.fields(config)}
        changes = {name: value for name, value in self.defaults.items() if getattr(config, name) == generic[name]}
        return dataclasses.replace(config, **changes)

    def read_splits(self, config) -> Splits:
        raise NotImplementedError

    def describe(self, config, splits: Splits) -> list[str]:
        """Lines printed before training (after the model line)."""
        return []

    def choose_sequence_length(self, config, tokenizer, splits: Splits, limit: int) -> tuple[int, str]:
        raise NotImplementedError

    def resolve_fit(self, config, sequence_length: int, splits: Splits):
        """`config` with its truncation settings resolved for this kind (and checked)."""
        return config

    def datasets(self, config, tokenizer, splits: Splits, info, *, padding: str, drop_remainder: bool,
                 strategy=None) -> Prepared:
        """The training input and what validation needs. A kind that takes `strategy` gives each worker its
        own share of the training rows when it has several replicas (`data.batching.ShardedInput`); with
        one replica, and in kinds without the argument, `train` is one `tf.data` pipeline (which Keras
        splits across replicas itself, every worker reading every row)."""
        raise NotImplementedError

    def training_datasets(self, config, tokenizer, splits: Splits, info, *, padding: str, drop_remainder: bool,
                          strategy) -> Prepared:
        """`datasets`, passing `strategy` on to kinds whose `datasets` takes it."""
        import inspect

        takes_strategy = "strategy" in inspect.signature(self.datasets).parameters
        return self.datasets(config, tokenizer, splits, info, padding=padding, drop_remainder=drop_remainder,
                             **({"strategy": strategy} if takes_strategy else {}))

    def build_model(self, backbone, config, label_names):
        raise NotImplementedError

    def monitor(self, config) -> tuple[str, str]:
        """`(metric, "min" | "max")` early stopping and the best-epoch restore watch."""
        monitor = config.monitor or "val_loss"
        return monitor, "min" if monitor.endswith("loss") else "max"

    def fingerprint_extra(self, config) -> dict:
        """Settings outside the config that a resumed run must share (e.g. a distillation's teacher)."""
        return {}

    def info_extra(self, config) -> dict:
        """Values recorded in training_config.json besides the config (e.g. the columns read)."""
        return {}

    def score(self, model, tokenizer, info, splits: Splits, prepared: Prepared, history: dict) -> dict:
        raise NotImplementedError

    def evaluate(self, loaded, config) -> tuple[dict, str]:
        """`ptft evaluate`: `(report, headline)` of a loaded `(model, tokenizer, info)` on `config.data`."""
        raise NotImplementedError

    def predict(self, loaded, config) -> str:
        """`ptft predict`: write predictions of `config.data` to `config.output`; returns what it did, in words."""
        raise NotImplementedError


def hold_out(count: int, *, fraction: float, seed: int, path, unit: str):
    """`(training indices, validation indices)` with a seeded `fraction` held out; None when none is.

    Raises DataError when too few rows are left to hold any out.
    """
    import numpy as np

    if not 0 <= fraction < 1:
        raise ConfigError(f"validation_fraction must be in [0, 1), got {fraction}")
    held_out = int(round(count * fraction))
    if held_out == 0:
        return None
    if held_out >= count:
        raise DataError(f"only {count} training {unit}: too few to hold out a validation set; pass --validation FILE",
                        path=path)
    order = np.random.default_rng(seed).permutation(count)
    return sorted(int(i) for i in order[held_out:]), sorted(int(i) for i in order[:held_out])


def first_rows(rows, limit):
    """`rows` cut to the first `limit` (file order), when a limit is given."""
    if limit is not None and limit < len(rows):
        return rows.select(range(limit))
    return rows


def split_rows(config, train, read_validation, unit: str) -> tuple:
    """`(train, validation or None, validation name)`: the `--validation` file, or a seeded hold-out."""
    if config.validation:
        return train, read_validation(config.validation), str(config.validation)
    split = hold_out(len(train), fraction=config.validation_fraction, seed=config.seed, path=config.train, unit=unit)
    if split is None:
        return train, None, None
    train_rows, validation_rows = split
    name = f"{len(validation_rows)} {unit} held out of {config.train} (seed {config.seed})"
    return train.select(train_rows), train.select(validation_rows), name


def load(model):
    """`(model, tokenizer, info)` from a model directory path, or the same triple passed through."""
    if isinstance(model, (tuple, list)):
        return tuple(model)
    from ptft_keras.jobs.model_dir import load_model_dir

    return load_model_dir(model)


def with_sequence_length(info, sequence_length: int | None):
    """`info` with another sequence length (for --sequence-length); None keeps the one used in training."""
    if sequence_length is None:
        return info
    return dataclasses.replace(info, sequence_length=int(sequence_length))
