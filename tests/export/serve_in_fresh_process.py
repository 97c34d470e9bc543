"""Serve an exported SavedModel with nothing but TensorFlow: no ptft_keras, keras-hub or tf-text.

(`import tensorflow` itself imports keras, so keras is not on the forbidden list.)

Run by tests/export/test_serving.py in a fresh interpreter:

    python serve_in_fresh_process.py SAVED_MODEL_DIR REQUEST_JSON

REQUEST_JSON holds the `serving_default` inputs as columns ({"text": [...], "text_pair": [...]}).
Prints one JSON object: the outputs, op types that plain TensorFlow does not register, and which
of the forbidden modules got imported. Deliberately independent of the library's own op check.
"""
import json
import sys

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry


def unregistered_ops(path: str) -> list[str]:
    with open(f"{path}/saved_model.pb", "rb") as f:
        proto = saved_model_pb2.SavedModel.FromString(f.read())
    ops, functions = set(), set()
    for meta_graph in proto.meta_graphs:
        ops.update(node.op for node in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            functions.add(function.signature.name)
            ops.update(node.op for node in function.node_def)
    return sorted(op for op in ops - functions if op_def_registry.get(op) is None)


def main(path: str, request_path: str) -> None:
    with open(request_path, encoding="utf-8") as f:
        request = json.load(f)
    serve = tf.saved_model.load(path).signatures["serving_default"]
    outputs = serve(**{name: tf.constant(values, tf.string) for name, values in request.items()})
    result = {
        "outputs": {
            name: [v.decode("utf-8") for v in t.numpy().tolist()] if t.dtype == tf.string else t.numpy().tolist()
            for name, t in outputs.items()
        },
        "unregistered_ops": unregistered_ops(path),
        "forbidden_modules": sorted(
            m for m in ("ptft_keras", "keras_hub", "tensorflow_text") if m in sys.modules
        ),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:])
