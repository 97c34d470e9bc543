"""Check that a SavedModel runs anywhere TensorFlow runs: no custom ops (tensorflow_text, ...) in its graph.

Every op type in the graph and in its function library must be a core TensorFlow op, i.e. one listed in
`tf.raw_ops`. Ops that libraries register at import time with `tf.load_op_library` (tf-text's
WordPiece, SentencePiece, ...) are not in `tf.raw_ops`, even in a process that imported them, so the
check is the same whatever else the exporting process has loaded.

Example:
    >>> import tempfile, tensorflow as tf
    >>> from ptft_keras.export.portability import custom_op_types
    >>> module = tf.Module()
    >>> module.f = tf.function(lambda x: tf.strings.lower(x), input_signature=[tf.TensorSpec([None], tf.string)])
    >>> path = tempfile.mkdtemp()
    >>> tf.saved_model.save(module, path)
    >>> custom_op_types(path)
    set()
"""
from __future__ import annotations

from pathlib import Path

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from ptft_keras.errors import CheckpointError


def _read(path) -> saved_model_pb2.SavedModel:
    pb = Path(path) / "saved_model.pb"
    try:
        return saved_model_pb2.SavedModel.FromString(pb.read_bytes())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read the SavedModel: {exc}", path=pb) from None


def saved_model_op_types(path) -> set[str]:
    """All op types used by the SavedModel at `path`: graph nodes plus the nodes of every library function.

    Calls of library functions by name (a node whose op is a function of the library) are left out.
    """
    ops, functions = set(), set()
    for meta_graph in _read(path).meta_graphs:
        ops.update(node.op for node in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            functions.add(function.signature.name)
            ops.update(node.op for node in function.node_def)
    return ops - functions


def custom_op_types(path) -> set[str]:
    """The op types of the SavedModel at `path` that core TensorFlow does not provide (empty = portable)."""
    return {op for op in saved_model_op_types(path) if not hasattr(tf.raw_ops, op)}
