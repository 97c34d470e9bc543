"""The model card of an export: `model_card.json` (for programs) and `README.md` (for people), in the version dir.

TF Serving ignores both files; they say what the model predicts, what its signatures take and return,
how text is preprocessed, and the training configuration and metrics it came from.

Example:
    >>> import json, tempfile, pathlib
    >>> from ptft_keras.export.model_card import write_model_card
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> card = write_model_card(folder, model_name="reviews", task="classification", label_names=["neg", "pos"],
    ...                         sequence_length=128, metadata={"metrics": {"accuracy": 0.91}})
    >>> json.loads((folder / "model_card.json").read_text())["metrics"]
    {'accuracy': 0.91}
"""
from __future__ import annotations

import datetime
import json
from pathlib import Path

import tensorflow as tf


def _spec(dtype, shape) -> dict:
    return {"dtype": tf.as_dtype(dtype).name, "shape": [None if d is None else int(d) for d in shape]}


def describe_signature(concrete_function) -> dict:
    """``{"inputs": {name: {dtype, shape}}, "outputs": {...}}`` of a signature's concrete function."""
    inputs = {spec.name: _spec(spec.dtype, spec.shape) for spec in tf.nest.flatten(concrete_function.structured_input_signature)}
    outputs = {name: _spec(t.dtype, t.shape) for name, t in concrete_function.structured_outputs.items()}
    return {"inputs": inputs, "outputs": outputs}


def _markdown(card: dict) -> str:
    lines = [f"# {card['model_name']}", "", f"A `{card['task']}` model exported by ptft_keras {card['ptft_keras_version']} "
             f"(TensorFlow {card['tensorflow_version']}) on {card['exported_at']}.", ""]
    if card.get("label_names"):
        lines += ["## Labels (id: name)", ""] + [f"- {i}: `{n}`" for i, n in enumerate(card["label_names"])] + [""]
    tflite = card.get("tflite")
    lines += [
        "## Preprocessing (by the client, with `tokenizer/`)" if tflite else "## Preprocessing (inside the graph)", "",
        f"- text normalisation: `{card['text_normalization'] or 'none'}`",
        f"- WordPiece tokenization{'' if tflite else ' with core TensorFlow ops'}; truncated/padded to "
        f"{card['sequence_length']} tokens",
        f"- longer texts: {_describe_truncation(card)}",
        "",
    ]
    if tflite:
        shape = f"[{tflite['batch'] or 'batch'}, {tflite['width'] or 'width'}]"
        lines += [f"## TensorFlow Lite (`{tflite['file']}`, {tflite['bytes']:,} bytes, quantization "
                  f"`{tflite['quantization']}`)", "",
                  f"- inputs: {', '.join(f'`{name}`' for name in tflite['inputs'])}, int32 {shape}",
                  "- output: `logits`, float32 [batch, labels]",
                  "- in Python: `ptft_keras.export.tflite.TFLiteModel(version_dir).predict(texts)`", ""]
    for name, sig in card.get("signatures", {}).items():
        lines += [f"## Signature `{name}`", "", "| | name | dtype | shape |", "|---|---|---|---|"]
        for kind in ("inputs", "outputs"):
            lines += [f"| {kind[:-1]} | `{n}` | {s['dtype']} | {s['shape']} |" for n, s in sig[kind].items()]
        lines.append("")
    if card.get("example"):
        body = json.dumps({"instances": _rows(card["example"])}, ensure_ascii=False)
        lines += [
            "## Request (TF Serving REST)", "", "```bash",
            f"curl -X POST http://localhost:8501/v1/models/{card['model_name']}:predict -d '{body}'", "```", "",
        ]
    for key, title in (("training_config", "Training configuration"), ("metrics", "Metrics")):
        if card.get(key):
            lines += [f"## {title}", "", "```json", json.dumps(card[key], indent=2, ensure_ascii=False, default=str),
                      "```", ""]
    return "\n".join(lines)


def _describe_truncation(card: dict) -> str:
    """`data.truncation.describe_truncation` for the card's sequence length and ``truncation`` settings."""
    from ptft_keras.data.truncation import content_budget, describe_truncation

    settings = dict(card.get("truncation") or {"truncation": "head"})
    strategy = settings.pop("truncation")
    return f"`{strategy}` ({describe_truncation(strategy, content_budget(card['sequence_length']), **settings)})"


def _rows(columns: dict) -> list:
    """Columnar inputs -> TF Serving `instances` rows (bare values when there is a single input)."""
    names = list(columns)
    rows = [dict(zip(names, values)) for values in zip(*columns.values())]
    return [row[names[0]] for row in rows] if len(names) == 1 else rows


def write_model_card(folder, *, model_name: str, task: str, sequence_length: int, label_names=None,
                     text_normalization=None, signatures=None, example=None, metadata=None) -> dict:
    """Write `model_card.json` and `README.md` into `folder`; returns the card as a dict.

    `metadata` keys (e.g. ``training_config``, ``metrics``) are copied into the card as they are.
    """
    from ptft_keras.version import __version__

    card = {
        "model_name": model_name,
        "task": task,
        "label_names": list(label_names or []),
        "sequence_length": sequence_length,
        "text_normalization": text_normalization,
        "signatures": signatures or {},
        "example": example,
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "ptft_keras_version": __version__,
        "tensorflow_version": tf.__version__,
        **(metadata or {}),
    }
    folder = Path(folder)
    (folder / "model_card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False, default=str) + "\n",
                                            encoding="utf-8")
    (folder / "README.md").write_text(_markdown(card), encoding="utf-8")
    return card
