"""The `ptft` subcommands: name -> (job module, config class, required fields, one-line help).

The config class is a name in the job module, or ``"module:Class"`` where the job keeps its options in a
module of their own (so that `ptft COMMAND --help` imports no TensorFlow).

A table of strings, so the CLI and the configuration reference can list every job without importing
one (importing a job loads TensorFlow).

Example:
    >>> sorted(COMMANDS)[:3]
    ['embed', 'evaluate', 'export']
"""
from __future__ import annotations

import importlib

COMMANDS: dict[str, tuple[str, str, tuple[str, ...], str]] = {
    "quickstart": (
        "ptft_keras.jobs.quickstart",
        "QuickstartConfig",
        (),
        "run the whole story offline: pretrain -> fine-tune -> evaluate -> export -> reload",
    ),
    "embed": ("ptft_keras.jobs.quickstart", "EmbedConfig", (), "print sentence embeddings from a checkpoint"),
    "pretrain": (
        "ptft_keras.jobs.pretrain",
        "ptft_keras.jobs.pretrain_config:PretrainConfig",
        ("corpus", "output"),
        "masked-LM (+NSP) pretraining, from scratch or continued from a checkpoint",
    ),
    "finetune": (
        "ptft_keras.jobs.finetune",
        "FinetuneConfig",
        ("train", "output"),
        "fine-tune a checkpoint on a labelled task (freeze-then-unfreeze by default)",
    ),
    "distill": (
        "ptft_keras.jobs.distill",
        "DistillConfig",
        ("teacher", "train", "output"),
        "distil a fine-tuned classifier into a smaller student (soft targets, teacher-labelled extra text)",
    ),
    "evaluate": (
        "ptft_keras.jobs.evaluate",
        "EvaluateConfig",
        ("model", "data"),
        "evaluate a fine-tuned model; prints one JSON object of metrics on its last line",
    ),
    "predict": (
        "ptft_keras.jobs.predict",
        "PredictConfig",
        ("model", "data", "output"),
        "predict on a CSV/TSV/JSONL or text file (token classification: CoNLL or text too)",
    ),
    "export": (
        "ptft_keras.jobs.export",
        "ExportConfig",
        ("model", "output"),
        "export a fine-tuned model as a TF Serving SavedModel (raw strings in, predictions out)",
    ),
}


def register(name: str, module: str, config_class: str, required: tuple[str, ...], help: str) -> None:  # noqa: A002
    """Add a subcommand (a job module with a config dataclass and a `run(config)` function)."""
    COMMANDS[name] = (module, config_class, required, help)


def config_class(name: str):
    """The config dataclass of subcommand `name`, imported without its job module where the table allows."""
    module_name, class_name, _, _ = COMMANDS[name]
    if ":" in class_name:
        module_name, class_name = class_name.split(":")
    return getattr(importlib.import_module(module_name), class_name)
