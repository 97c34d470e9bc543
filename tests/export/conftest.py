"""Fixtures of the export tests: the real tokenizer, a briefly fine-tuned tiny classifier, a PredictionLog decoder."""
import keras
import numpy as np
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from tensorflow.core.framework import tensor_pb2  # noqa: F401 - registers tensorflow.TensorProto

from .helpers import SEQUENCE_LENGTH, TRAIN_LABELS, TRAIN_TEXTS, tiny_classifier


@pytest.fixture(scope="session")
def tokenizer(minilm_path):
    from ptft_keras.data.tokenizer import Tokenizer

    return Tokenizer.from_pretrained(minilm_path)


@pytest.fixture(scope="session")
def finetuned(tokenizer):
    """A tiny sentiment classifier after a few steps of fine-tuning (so its weights are not the init)."""
    model = tiny_classifier(tokenizer)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    features = tokenizer(TRAIN_TEXTS, sequence_length=SEQUENCE_LENGTH)
    history = model.fit(features, np.array(TRAIN_LABELS), epochs=4, batch_size=4, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    return model


_T = descriptor_pb2.FieldDescriptorProto


@pytest.fixture(scope="session")
def prediction_log_class():
    """protobuf's own decoder for PredictionLog, from a descriptor with the field numbers of
    tensorflow_serving/apis/{prediction_log,predict,model}.proto (test-only package name), so warmup
    records are checked independently of their hand-written encoder."""
    f = descriptor_pb2.FileDescriptorProto(name="ptft_test_serving.proto", package="ptft_test.serving",
                                           dependency=["tensorflow/core/framework/tensor.proto"], syntax="proto3")

    def message(name, *fields, nested=()):
        m = f.message_type.add(name=name) if not nested else nested[0].nested_type.add(name=name)
        for field_name, number, kind, type_name, label in fields:
            m.field.add(name=field_name, number=number, type=kind, type_name=type_name, label=label)
        return m

    opt, rep = _T.LABEL_OPTIONAL, _T.LABEL_REPEATED
    message("ModelSpec", ("name", 1, _T.TYPE_STRING, None, opt), ("signature_name", 3, _T.TYPE_STRING, None, opt))
    request = message("PredictRequest", ("model_spec", 1, _T.TYPE_MESSAGE, ".ptft_test.serving.ModelSpec", opt),
                      ("inputs", 2, _T.TYPE_MESSAGE, ".ptft_test.serving.PredictRequest.InputsEntry", rep))
    entry = message("InputsEntry", ("key", 1, _T.TYPE_STRING, None, opt),
                    ("value", 2, _T.TYPE_MESSAGE, ".tensorflow.TensorProto", opt), nested=(request,))
    entry.options.map_entry = True
    message("PredictLog", ("request", 1, _T.TYPE_MESSAGE, ".ptft_test.serving.PredictRequest", opt))
    message("PredictionLog", ("predict_log", 6, _T.TYPE_MESSAGE, ".ptft_test.serving.PredictLog", opt))
    pool = descriptor_pool.Default()  # already holds tensorflow.TensorProto (tensor_pb2 is imported)
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("ptft_test.serving.PredictionLog"))
