"""TF Serving warmup requests: `assets.extra/tf_serving_warmup_requests`, a TFRecord of `PredictionLog` protos.

TF Serving replays these requests when it loads a version, so the first real request does not pay for
graph initialisation. The `tensorflow_serving` protos are not a dependency: the few messages needed are
encoded here by hand (protobuf wire format; field numbers from `tensorflow_serving/apis/*.proto`), the
tensors with TensorFlow's own `TensorProto`.

Example:
    >>> import tempfile, os
    >>> from ptft_keras.export.warmup import write_warmup_requests
    >>> path = os.path.join(tempfile.mkdtemp(), "tf_serving_warmup_requests")
    >>> requests = [("serving_default", {"text": ["a first review", "another one"]})]
    >>> write_warmup_requests(path, requests, model_name="reviews")
    1
"""
from __future__ import annotations

import os

import tensorflow as tf

# Field numbers (tensorflow_serving/apis/prediction_log.proto, predict.proto, model.proto).
_PREDICTION_LOG_PREDICT_LOG = 6
_PREDICT_LOG_REQUEST = 1
_PREDICT_REQUEST_MODEL_SPEC = 1
_PREDICT_REQUEST_INPUTS = 2  # map<string, TensorProto>: repeated entries {key = 1, value = 2}
_MODEL_SPEC_NAME = 1
_MODEL_SPEC_SIGNATURE_NAME = 3
_LENGTH_DELIMITED = 2


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited field (a string, bytes or an embedded message)."""
    return _varint(number << 3 | _LENGTH_DELIMITED) + _varint(len(payload)) + payload


def predict_log(inputs: dict, *, model_name: str, signature_name: str = "serving_default") -> bytes:
    """A serialized `PredictionLog{predict_log{request{model_spec, inputs}}}` for one request.

    `inputs` maps each signature input name to a value (a list of strings, a nested list of ints, ...).
    """
    model_spec = _field(_MODEL_SPEC_NAME, model_name.encode()) + _field(
        _MODEL_SPEC_SIGNATURE_NAME, signature_name.encode()
    )
    request = _field(_PREDICT_REQUEST_MODEL_SPEC, model_spec)
    for name in sorted(inputs):
        entry = _field(1, name.encode()) + _field(2, tf.make_tensor_proto(inputs[name]).SerializeToString())
        request += _field(_PREDICT_REQUEST_INPUTS, entry)
    return _field(_PREDICTION_LOG_PREDICT_LOG, _field(_PREDICT_LOG_REQUEST, request))


def write_warmup_requests(path, requests, *, model_name: str) -> int:
    """Write `requests`, pairs ``(signature_name, inputs)``, as a warmup TFRecord at `path`; returns how many."""
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    with tf.io.TFRecordWriter(os.fspath(path)) as writer:
        for signature_name, inputs in requests:
            writer.write(predict_log(inputs, model_name=model_name, signature_name=signature_name))
    return len(requests)
