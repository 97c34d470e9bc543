"""TensorFlow Lite export of a sequence task model, for phones and small CPUs: token ids in, logits out.

TFLite has no string lookup tables without the Flex (select TF ops) runtime, so unlike the SavedModel the
``.tflite`` file takes token ids, and the version directory carries what a client needs to make them:

    saved_models/NAME/N/
        model.tflite        inputs token_ids, padding_mask (and segment_ids for BERT), int32 [batch, width];
                            output logits
        tokenizer/          the training tokenizer (vocab.txt, tokenizer_config.json)
        labels.txt          class names in id order
        model_card.json     task, sequence length, truncation, text normalisation, and "tflite": the
                            input names and shapes (batch / width null: any), the quantization
        README.md

Shapes: the converter is asked for any batch and any width first (BERT-family models convert so; a
client then pads to its longest text). A model whose loop TFLite can only lower with static shapes (a
masked Keras LSTM, e.g. the BiLSTM) falls back to [batch, sequence_length], then to [1, sequence_length].
``quantization="dynamic"`` stores weights as int8 (about 4x smaller; activations stay float).

`TFLiteModel` runs an export from Python with the same tokenization, truncation and outputs as the
SavedModel's ``serving_default`` (for checks and benchmarks; on a device use the TFLite runtime).

Example:
    >>> from ptft_keras.export.tflite import TFLiteModel, export_tflite
    >>> version_dir = export_tflite(model, tokenizer, "saved_models/sst2-tflite",      # doctest: +SKIP
    ...                             task="classification", label_names=["neg", "pos"], sequence_length=64)
    >>> TFLiteModel(version_dir).predict(["What a lovely film."])["label"]              # doctest: +SKIP
    array([b'pos'], dtype=object)
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import tensorflow as tf

from ptft_keras.data.text_rewrites import check_mode
from ptft_keras.data.truncation import DEFAULT_HEAD_TOKENS
from ptft_keras.errors import CheckpointError, ConfigError
from ptft_keras import storage
from ptft_keras.export.layout import new_version_dir, scratch_dir
from ptft_keras.export.model_card import write_model_card
from ptft_keras.export.predictions import TOKEN_TASK
from ptft_keras.export.serving import (
    DEFAULT_SIGNATURE,
    ServingModule,
    check_model_sequence_length,
    checked_fitting,
    core_tokenizer_for,
)

TFLITE_FILE = "model.tflite"
TOKENIZER_DIR = "tokenizer"
LABELS_FILE = "labels.txt"
CARD_FILE = "model_card.json"
QUANTIZATIONS = ("none", "dynamic")


def _logits(outputs):
    return outputs["logits"] if isinstance(outputs, dict) else outputs


def _convert(model, feature_names, shape, quantization: str, scratch: Path) -> bytes:
    """One conversion attempt at input `shape` ([batch, width], None for any)."""
    spec = {name: tf.TensorSpec(shape, tf.int32, name=name) for name in feature_names}
    function = tf.function(lambda features: {"logits": _logits(model(features, training=False))},
                           input_signature=[spec], autograph=False)
    concrete = function.get_concrete_function()
    # The converter reads variables from a SavedModel: save the traced function with the raw variables it
    # captures (converting the concrete function directly left Keras 3's variables out of the file).
    holder = tf.Module()
    holder.model_variables = list(concrete.variables)
    saved = scratch / f"saved_{shape[0]}_{shape[1]}"
    tf.saved_model.save(holder, str(saved), signatures={"serving_default": concrete})
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    if quantization == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


@contextlib.contextmanager
def _stderr_into(path: Path):
    """Point file descriptor 2 (where TensorFlow's C++ logs go) at `path` for the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "ab") as log:
            os.dup2(log.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def convert_to_tflite(model, feature_names, sequence_length: int, *, quantization: str = "none",
                      scratch=None) -> tuple[bytes, list]:
    """`(flatbuffer, [batch, width])`: the first of any/any, any/sequence_length, 1/sequence_length that
    TFLite's builtin ops can express (see the module docstring)."""
    if quantization not in QUANTIZATIONS:
        raise ConfigError(f"quantization={quantization!r} is not one of {', '.join(QUANTIZATIONS)}")
    errors = []
    with scratch_dir(prefix="ptft-tflite-") if scratch is None else contextlib.nullcontext(scratch) as folder:
        for shape in ([None, None], [None, sequence_length], [1, sequence_length]):
            try:
                # The converter logs each failed attempt's MLIR errors to the process's stderr; they are
                # noise when a later shape succeeds, and the last lines are kept in the error otherwise.
                with _stderr_into(Path(folder) / "converter.log"):
                    return _convert(model, feature_names, shape, quantization, Path(folder)), shape
            except Exception as error:  # the converter raises ConverterError, or ValueError while tracing
                last_line = (str(error).strip().splitlines() or [type(error).__name__])[-1]
                errors.append(f"[{shape[0] or 'any'}, {shape[1] or 'any'}]: {last_line}")
    raise CheckpointError("TFLite's builtin ops cannot express this model at any input shape tried:\n  "
                          + "\n  ".join(errors) + "\nexport a SavedModel instead (ptft export without --format)")


def export_tflite(model, tokenizer, output, *, task: str, label_names=None, sequence_length: int = 128,
                  text_normalization: str | None = None, pair: bool = False, quantization: str = "none",
                  truncation: str = "head", head_tokens: int = DEFAULT_HEAD_TOKENS, window_stride=None,
                  window_pooling: str = "mean", model_name: str | None = None, metadata: dict | None = None) -> Path:
    """Write `model` as ``model.tflite`` with its tokenizer and labels into ``output/<next version>``;
    returns the version directory. Arguments as `ptft_keras.export.serving.export_model`, plus
    `quantization` (``none`` or ``dynamic``: int8 weights). Sequence tasks only (classification,
    multi-label, regression)."""
    if task == TOKEN_TASK:
        raise ConfigError("the TFLite export is for sequence tasks (classification, multi-label, regression); "
                          "export token classification as a SavedModel")
    text_normalization = check_mode(text_normalization)
    check_model_sequence_length(model, sequence_length, pair=pair)
    fitting = checked_fitting(truncation, sequence_length, head_tokens, window_stride, window_pooling,
                              pair=pair, task=task)
    core = core_tokenizer_for(tokenizer, sequence_length)
    feature_names = sorted(core(tf.constant(["a"]), sequence_length=sequence_length))
    base = str(output) if storage.is_remote(output) else Path(output)
    with scratch_dir(prefix="ptft-tflite-") as scratch, new_version_dir(base) as staging:
        flatbuffer, (batch, width) = convert_to_tflite(model, feature_names, sequence_length,
                                                       quantization=quantization, scratch=scratch)
        (staging.path / TFLITE_FILE).write_bytes(flatbuffer)
        tokenizer.save_pretrained(staging.path / TOKENIZER_DIR)
        if label_names:
            (staging.path / LABELS_FILE).write_text("".join(f"{name}\n" for name in label_names), encoding="utf-8")
        tflite = {"file": TFLITE_FILE, "inputs": feature_names, "batch": batch, "width": width,
                  "quantization": quantization, "bytes": len(flatbuffer)}
        write_model_card(staging.path, model_name=model_name or str(base).rstrip("/").rsplit("/", 1)[-1],
                         task=task, label_names=label_names, sequence_length=sequence_length,
                         text_normalization=text_normalization,
                         metadata={**(metadata or {}), "pair": bool(pair), "truncation": fitting, "tflite": tflite})
    return staging.final


def _interpreter(model_path: str, threads: int | None):
    try:  # LiteRT, TFLite's successor, where installed
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice points at LiteRT
        return Interpreter(model_path=model_path, num_threads=threads)


class TFLiteModel:
    """Run a `export_tflite` version directory from Python: raw strings in, the SavedModel's outputs out.

    Example:
        >>> TFLiteModel("saved_models/sst2-tflite/1").predict(["Loved it", "Dull."])["label"]  # doctest: +SKIP
        array([b'positive', b'negative'], dtype=object)
    """

    def __init__(self, version_dir, *, threads: int | None = None):
        from ptft_keras.data.tokenizer import Tokenizer

        folder = Path(version_dir)
        card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
        self.card = card
        spec = card["tflite"]
        self.batch, self.width = spec["batch"], spec["width"]
        interpreter = _interpreter(str(folder / spec["file"]), threads)
        self.outputs = int(interpreter.get_output_details()[0]["shape"][-1])
        self._run = interpreter.get_signature_runner()
        tokenizer = Tokenizer.from_pretrained(folder / TOKENIZER_DIR)
        core = core_tokenizer_for(tokenizer, card["sequence_length"])
        # ServingModule supplies the tokenization, truncation and outputs; the model it calls is the interpreter.
        self.module = ServingModule(self._logits, core, task=card["task"], sequence_length=card["sequence_length"],
                                    label_names=card["label_names"], text_normalization=card["text_normalization"],
                                    pair=card["pair"], truncation=card["truncation"],
                                    padding="dynamic" if self.width is None else "fixed")
        # Tokenizing eagerly would cost more than the model; traced once, it is one graph call per request.
        self._serve = self.module.signatures()[DEFAULT_SIGNATURE]

    def _logits(self, features, training=False):
        """The interpreter as the model of the traced serving function (a numpy_function inside it)."""
        names = sorted(features)

        def run(*arrays):
            inputs = dict(zip(names, arrays))
            if self.batch is None:
                return self._run(**inputs)["logits"]
            return np.concatenate([self._run(**{name: value[i:i + 1] for name, value in inputs.items()})["logits"]
                                   for i in range(len(arrays[0]))])

        logits = tf.numpy_function(run, [tf.cast(features[name], tf.int32) for name in names], tf.float32,
                                   stateful=False)
        logits.set_shape([None, self.outputs])
        return logits

    def predict(self, texts, text_pairs=None) -> dict:
        """Texts (and their pairs) -> ``label``, ``probabilities``, ... as numpy arrays."""
        inputs = {"text": tf.constant(list(texts))}
        if self.module.pair:
            inputs["text_pair"] = tf.constant(list(text_pairs))
        return {name: value.numpy() for name, value in self._serve(**inputs).items()}
