"""Helpers of the pretraining tests: a small real corpus, a tiny checkpoint with a masked-LM head, subprocesses.

The corpus is the docstrings of stdlib modules (shipped with Python, so offline and stable for a
given Python version): real English with a Zipfian vocabulary, one sentence per line, one docstring
per document.
"""
from __future__ import annotations

import collections
import hashlib
import importlib
import inspect
import os
import re
import socket
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
STDLIB_MODULES = (
    "argparse", "collections", "json", "textwrap", "string", "difflib", "pathlib", "logging", "random",
    "statistics", "fractions", "decimal", "datetime", "calendar", "csv", "shutil", "tempfile", "zipfile",
    "urllib.parse", "unittest.case", "typing", "dataclasses", "enum", "heapq", "bisect", "queue", "threading",
    "subprocess", "inspect", "pickle", "email.message", "http.client", "tarfile", "configparser", "optparse",
)


def stdlib_corpus(path, max_lines: int = 3000) -> Path:
    """Write docstrings of stdlib modules as a pretraining corpus (sentence per line, blank line per docstring)."""
    lines: list[str] = []
    for name in STDLIB_MODULES:
        module = importlib.import_module(name)
        for obj in [module] + [getattr(module, attr) for attr in sorted(vars(module)) if not attr.startswith("_")]:
            if not (inspect.ismodule(obj) or inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            if obj is not module and getattr(obj, "__module__", None) != name:
                continue  # re-exported from elsewhere
            for paragraph in (inspect.getdoc(obj) or "").split("\n\n"):
                text = " ".join(paragraph.split())
                lines += [s for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) >= 3]
            if lines and lines[-1]:
                lines.append("")
            if len(lines) >= max_lines:
                break
        if len(lines) >= max_lines:
            break
    path = Path(path)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def character_vocabulary(corpus, size: int = 600) -> list[str]:
    """A valid WordPiece vocabulary without training one: specials, characters, `##`characters, frequent words."""
    text = Path(corpus).read_text(encoding="utf-8").lower()
    characters = sorted({c for c in text if not c.isspace()})
    words = collections.Counter(re.findall(r"[a-z]+", text))
    vocabulary = SPECIAL_TOKENS + characters + ["##" + c for c in characters]
    for word, _ in words.most_common():
        if len(vocabulary) >= size:
            break
        if word not in vocabulary:
            vocabulary.append(word)
    return vocabulary


def tiny_checkpoint(directory, corpus, *, model_type: str = "bert", nsp: bool = False, seed: int = 0,
                    hidden_dim: int = 64, num_layers: int = 2, dropout: float = 0.0):
    """Save a tiny HF checkpoint (`*ForMaskedLM` with a random head, and a tokenizer) for continued pretraining."""
    import keras

    from ptft_keras.data.tokenizer import Tokenizer
    from ptft_keras.models.backbone import Backbone
    from ptft_keras.tasks.masked_lm import MaskedLM

    keras.utils.set_random_seed(seed)
    tokenizer = Tokenizer.from_vocabulary(character_vocabulary(corpus), model_type=model_type)
    backbone = Backbone.from_size(None, model_type=model_type, vocabulary_size=tokenizer.vocab_size,
                                  num_layers=num_layers, hidden_dim=hidden_dim, num_heads=2,
                                  intermediate_dim=2 * hidden_dim, max_sequence_length=128, dropout=dropout)
    return MaskedLM(backbone, nsp=nsp).save_pretrained(directory, tokenizer=tokenizer)


def weights_checksum(model) -> str:
    """A hash of every weight's bytes (rounded to 1e-6, so two processes agree despite last-bit noise)."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.round(np.asarray(weight, dtype="float64"), 6).tobytes())
    return digest.hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def subprocess_env(**extra) -> dict:
    """Environment for a child Python running the package from this checkout, quietly, on the CPU."""
    env = dict(os.environ)
    env.update(KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]), HF_HUB_OFFLINE="1")
    env.update(extra)
    return env


def cli_command(*args) -> list[str]:
    return [sys.executable, "-m", "ptft_keras.cli", "pretrain", *map(str, args)]
