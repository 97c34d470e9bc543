"""A teacher's logits for a transfer set: computed once per example, cached on disk, reused by every epoch
and by every later run with the same teacher and texts.

The cache file is named by a SHA-256 of what the logits depend on: the teacher's weights, how it reads
text (sequence length, truncation, normalisation: its `ModelInfo`) and the texts themselves. A changed
teacher or transfer set gets a new file; nothing stale is ever read. Large transfer sets are labelled in
chunks written into the cache as they finish, so a run killed while labelling resumes at its last
chunk:

    CACHE_DIR/teacher-logits-<key>.npy            the finished logits, float32 [examples, classes]
    CACHE_DIR/teacher-logits-<key>.partial.npy    while labelling; with .progress.json (chunks done)

Example:
    >>> logits = teacher_logits("runs/teacher", ["a gripping film", "dull"], cache_dir="runs/cache")  # doctest: +SKIP
    >>> logits.shape  # doctest: +SKIP
    (2, 2)
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ptft_keras.jobs import sequence_kind
from ptft_keras.jobs.task_kind import load

DEFAULT_CHUNK_SIZE = 8192
#: the `ModelInfo` fields that change what the teacher sees
READING_FIELDS = ("sequence_length", "truncation", "head_tokens", "window_stride", "window_pooling",
                  "text_normalization")


def cache_key(model, info, texts, pairs=None) -> str:
    """A hex SHA-256 of the teacher's weights, its reading settings and the texts (16 characters).

    Example:
        >>> import types
        >>> info = types.SimpleNamespace(sequence_length=64, truncation="head", head_tokens=32, window_stride=None,
        ...                              window_pooling="mean", text_normalization=None)
        >>> model = types.SimpleNamespace(weights=[np.zeros(3, np.float32)])
        >>> cache_key(model, info, ["a", "b"]) == cache_key(model, info, ["a", "b"]), len(cache_key(model, info, ["a"]))
        (True, 16)
        >>> cache_key(model, info, ["a", "b"]) == cache_key(model, info, ["ab"])
        False
    """
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(np.asarray(weight)).tobytes())
    digest.update(json.dumps({name: getattr(info, name) for name in READING_FIELDS}, sort_keys=True).encode())
    for column in (texts, pairs):
        digest.update(b"\x01" if column is None else b"\x02")
        for text in column or ():
            encoded = text.encode("utf-8")
            digest.update(len(encoded).to_bytes(8, "little") + encoded)
    return digest.hexdigest()[:16]


def teacher_logits(teacher, texts, pairs=None, *, cache_dir=None, batch_size: int = sequence_kind.DEFAULT_BATCH_SIZE,
                   chunk_size: int = DEFAULT_CHUNK_SIZE, log=print) -> np.ndarray:
    """The teacher's logits for `texts` (and `pairs`), one row per text, from the cache when it has them.

    Args:
        teacher: a fine-tuned model directory, or its loaded `(model, tokenizer, info)`.
        texts, pairs: the transfer set (lists of strings).
        cache_dir: where the logits are kept; None: computed in memory, not kept.
        batch_size: the teacher's prediction batch size.
        chunk_size: texts labelled (and saved) at a time.
        log: where the one progress line per chunk goes (None: silent).
    """
    model, tokenizer, info = load(teacher)
    texts = list(texts)
    pairs = None if pairs is None else list(pairs)
    log = log or (lambda *_: None)
    if not texts:
        return np.zeros((0, info.num_labels), np.float32)

    def predict(start, stop):
        return sequence_kind.predict_logits(model, tokenizer, info, texts[start:stop],
                                            None if pairs is None else pairs[start:stop], batch_size=batch_size)

    if cache_dir is None:
        return np.concatenate([predict(i, i + chunk_size) for i in range(0, len(texts), chunk_size)])
    cache_dir = Path(cache_dir)
    name = f"teacher-logits-{cache_key(model, info, texts, pairs)}"
    final = cache_dir / f"{name}.npy"
    if final.is_file():
        logits = np.load(final)
        if len(logits) == len(texts):
            log(f"teacher logits: {len(texts)} examples read from the cache {final}")
            return logits
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial, progress = cache_dir / f"{name}.partial.npy", cache_dir / f"{name}.progress.json"
    done = _chunks_done(progress, chunk_size, len(texts)) if partial.is_file() else 0
    store = None
    for start in range(done * chunk_size, len(texts), chunk_size):
        stop = min(start + chunk_size, len(texts))
        chunk = predict(start, stop)
        if store is None:
            store = (np.lib.format.open_memmap(partial, mode="r+") if start else
                     np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32,
                                               shape=(len(texts), chunk.shape[1])))
        store[start:stop] = chunk
        store.flush()
        _write_progress(progress, {"chunks": start // chunk_size + 1, "chunk_size": chunk_size, "rows": len(texts)})
        log(f"teacher logits: {stop} of {len(texts)} examples" + (f" (resumed at {done * chunk_size})" if done else ""))
    del store
    os.replace(partial, final)
    progress.unlink(missing_ok=True)
    return np.load(final)


def _chunks_done(progress: Path, chunk_size: int, rows: int) -> int:
    """Chunks a killed run finished (0 when it used another chunk size, or left no readable progress)."""
    try:
        state = json.loads(progress.read_text(encoding="utf-8"))
        same = state["chunk_size"] == chunk_size and state["rows"] == rows
        return int(state["chunks"]) if same else 0
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _write_progress(progress: Path, state: dict) -> None:
    staging = progress.with_suffix(".tmp")
    staging.write_text(json.dumps(state), encoding="utf-8")
    os.replace(staging, progress)
