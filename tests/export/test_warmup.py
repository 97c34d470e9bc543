"""The hand-encoded warmup records decode as tensorflow.serving.PredictionLog protos (decoded by
protobuf itself: see the `prediction_log_class` fixture)."""
import numpy as np
import tensorflow as tf

from ptft_keras.export.warmup import predict_log, write_warmup_requests


def test_records_decode_as_prediction_logs(tmp_path, prediction_log_class):
    path = tmp_path / "assets.extra" / "tf_serving_warmup_requests"
    requests = [
        ("serving_default", {"text": ["a review", "Ünïcödé 🙂", ""], "text_pair": ["x", "y", "z"]}),
        ("serving_ids", {"token_ids": [[101, 7, 102]], "padding_mask": [[1, 1, 1]]}),
    ]
    assert write_warmup_requests(path, requests, model_name="reviews") == 2
    PredictionLog = prediction_log_class
    logs = [PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]
    assert len(logs) == 2
    first, second = (log.predict_log.request for log in logs)
    assert (first.model_spec.name, first.model_spec.signature_name) == ("reviews", "serving_default")
    assert second.model_spec.signature_name == "serving_ids"
    text = tf.make_ndarray(first.inputs["text"])
    assert [t.decode() for t in text] == ["a review", "Ünïcödé 🙂", ""]
    assert sorted(first.inputs) == ["text", "text_pair"]
    ids = tf.make_ndarray(second.inputs["token_ids"])
    assert ids.dtype == np.int32 and ids.tolist() == [[101, 7, 102]]


def test_a_record_is_deterministic_and_names_the_signature():
    record = predict_log({"text": ["hi"]}, model_name="m", signature_name="serving_default")
    assert record == predict_log({"text": ["hi"]}, model_name="m", signature_name="serving_default")
    assert b"serving_default" in record and b"hi" in record
