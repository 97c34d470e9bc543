"""Helpers of the export tests: tiny task models, the in-memory reference, TF Serving's REST mapping."""
import base64

import keras
import numpy as np
import tensorflow as tf

SEQUENCE_LENGTH = 32
LABELS = ["negative", "positive"]
TRAIN_TEXTS = [
    "a wonderful, moving film", "great acting and a great story", "i loved every minute", "brilliant and funny",
    "a dull, boring mess", "terrible acting, awful plot", "i hated every minute", "tedious and far too long",
]
TRAIN_LABELS = [1, 1, 1, 1, 0, 0, 0, 0]



def tiny_classifier(tokenizer, *, label_names=LABELS, problem_type="single_label_classification", num_labels=None,
                    seed=0):
    """A 2-layer, 32-wide BERT classifier over the real vocabulary (random weights)."""
    import keras_hub

    from ptft_keras.tasks.sequence_classifier import SequenceClassifier

    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=tokenizer.vocab_size, num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64,
        max_sequence_length=64,
    )
    return SequenceClassifier(backbone, num_labels=num_labels, label_names=label_names, problem_type=problem_type)


def reference_outputs(model, tokenizer, texts, pairs=None, *, sequence_length=SEQUENCE_LENGTH):
    """What the in-memory model (fed by the training tokenizer) predicts: logits and softmax."""
    logits = model(tokenizer(texts, pairs, sequence_length=sequence_length), training=False)
    logits = np.asarray(keras.ops.convert_to_numpy(logits), np.float32)
    return logits, tf.nn.softmax(logits).numpy()


def fitted_reference_logits(model, tokenizer, texts, *, sequence_length, truncation, head_tokens=128,
                            window_stride=None, window_pooling="mean"):
    """What the in-memory model predicts for texts prepared as fine-tuning prepares them (`encode_texts`)."""
    from ptft_keras.data.truncation import encode_texts, pool_window_logits

    fitted = encode_texts(tokenizer, texts, sequence_length=sequence_length, truncation=truncation,
                          head_tokens=head_tokens, window_stride=window_stride)
    logits = model(tokenizer.pack(fitted.first, sequence_length=sequence_length), training=False)
    if truncation == "windows":
        logits = pool_window_logits(logits, fitted.document_ids, fitted.num_documents, window_pooling)
    return np.asarray(keras.ops.convert_to_numpy(logits), np.float32)


# ------------------------------------------------------------------ TF Serving REST API emulation
def rest_to_kwargs(body: dict, input_names: list[str]) -> dict:
    """Map a REST `:predict` body to signature kwargs as TF Serving does.

    Row format ``{"instances": [...]}``: with one input, each instance is its value (or a one-key
    object); with several, each instance is an object holding every input. Columnar format
    ``{"inputs": ...}``: a value for a single input, or an object of input name -> list.
    """
    assert ("instances" in body) != ("inputs" in body), "exactly one of instances / inputs"
    if "instances" in body:
        rows = body["instances"]
        if len(input_names) == 1 and not all(isinstance(r, dict) for r in rows):
            return {input_names[0]: tf.constant(rows)}
        assert all(isinstance(r, dict) and sorted(r) == sorted(input_names) for r in rows), rows
        return {name: tf.constant([r[name] for r in rows]) for name in input_names}
    columns = body["inputs"]
    if not isinstance(columns, dict):
        assert len(input_names) == 1
        columns = {input_names[0]: columns}
    assert sorted(columns) == sorted(input_names), columns
    return {name: tf.constant(columns[name]) for name in input_names}


def _json_value(value):
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode()}
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


def outputs_to_rest(outputs: dict, *, row_format: bool) -> dict:
    """Signature outputs -> the REST response body (`predictions` rows or `outputs` columns)."""
    columns = {name: _json_value(t.numpy().tolist()) for name, t in outputs.items()}
    if not row_format:
        return {"outputs": columns if len(columns) > 1 else next(iter(columns.values()))}
    names = list(columns)
    rows = [dict(zip(names, values)) for values in zip(*columns.values())]
    return {"predictions": rows if len(names) > 1 else [r[names[0]] for r in rows]}
