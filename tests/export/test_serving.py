"""Export for TF Serving, checked from the outside: a fresh TensorFlow-only process, saved_model_cli,
TF Serving's REST body mapping, edge inputs, versions, and failures that leave nothing behind."""
import doctest
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from ptft_keras.errors import CheckpointError, ConfigError
from ptft_keras.export import serving
from ptft_keras.export.serving import export_model
from ptft_keras.data.text_rewrites import normalize_text

from .helpers import LABELS, SEQUENCE_LENGTH, fitted_reference_logits, outputs_to_rest, reference_outputs, rest_to_kwargs, tiny_classifier

HERE = Path(__file__).parent
REPO = HERE.parent.parent
TEXTS = ["a wonderful film", "awful, boring plot", "Ünïcödé ça marche 🙂 日本語", "", "GREAT acting!!!"]
TOL = 1e-5


@pytest.fixture(scope="module")
def exported(finetuned, tokenizer, tmp_path_factory):
    base = tmp_path_factory.mktemp("saved_models") / "sentiment"
    version_dir = export_model(finetuned, tokenizer, base, sequence_length=SEQUENCE_LENGTH,
                               metadata={"metrics": {"accuracy": 1.0}})
    return version_dir


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(str(exported))


def _subprocess_env():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def test_layout_assets_warmup_and_card(exported, tokenizer):
    assert exported.name == "1" and exported.parent.name == "sentiment"
    assert (exported / "saved_model.pb").is_file() and (exported / "variables").is_dir()
    vocab = (exported / "assets" / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert vocab == tokenizer.vocabulary
    assert (exported / "assets" / "labels.txt").read_text(encoding="utf-8").splitlines() == LABELS
    assert (exported / "assets.extra" / "tf_serving_warmup_requests").is_file()
    card = json.loads((exported / "model_card.json").read_text(encoding="utf-8"))
    assert card["task"] == "classification" and card["label_names"] == LABELS
    assert card["metrics"] == {"accuracy": 1.0} and card["sequence_length"] == SEQUENCE_LENGTH
    assert card["padding"] == {"padding": "dynamic", "pad_to_multiple_of": 8}
    assert set(card["signatures"]) == {"serving_default", "serving_ids"}
    assert "# sentiment" in (exported / "README.md").read_text(encoding="utf-8")
    assert not [p for p in exported.parent.iterdir() if p.name != "1"]  # no staging dir left


def test_fresh_tensorflow_only_process_gives_the_in_memory_predictions(exported, finetuned, tokenizer, tmp_path):
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"text": TEXTS}), encoding="utf-8")
    run = subprocess.run([sys.executable, str(HERE / "serve_in_fresh_process.py"), str(exported), str(request)],
                         capture_output=True, text=True, cwd=tmp_path, env=_subprocess_env(), timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["forbidden_modules"] == []
    assert result["unregistered_ops"] == []
    logits, probabilities = reference_outputs(finetuned, tokenizer, TEXTS)
    out = result["outputs"]
    np.testing.assert_allclose(out["logits"], logits, atol=TOL, rtol=0)
    np.testing.assert_allclose(out["probabilities"], probabilities, atol=TOL, rtol=0)
    assert out["label_id"] == probabilities.argmax(-1).tolist()
    assert out["label"] == [LABELS[i] for i in probabilities.argmax(-1)]


def test_no_tensorflow_text_ops_in_the_graph(exported):
    from ptft_keras.export.portability import custom_op_types, saved_model_op_types

    ops = saved_model_op_types(exported)
    assert custom_op_types(exported) == set()
    assert not {op for op in ops if "Wordpiece" in op or "SentencePiece" in op or op.startswith("Normalize")}


def test_the_training_tokenizer_ops_would_be_caught(finetuned, tokenizer, tmp_path, monkeypatch):
    """Injected failure: a string signature built on tf-text's WordPiece must not be published."""

    class TfTextTokenizer(tf.Module):
        def __call__(self, texts, pairs=None, *, sequence_length):
            return tokenizer(texts, pairs, sequence_length=sequence_length)

    monkeypatch.setattr(serving, "core_tokenizer_for", lambda tok, sequence_length: TfTextTokenizer())
    base = tmp_path / "m"
    with pytest.raises(CheckpointError, match="FastWordpiece"):
        export_model(finetuned, tokenizer, base, sequence_length=SEQUENCE_LENGTH)
    assert list(base.iterdir()) == []


def test_saved_model_cli_show_and_run(exported, finetuned, tokenizer):
    cli = str(Path(sys.executable).with_name("saved_model_cli"))
    show = subprocess.run([cli, "show", "--dir", str(exported), "--all"], capture_output=True, text=True,
                          env=_subprocess_env(), timeout=300)
    assert show.returncode == 0, show.stderr[-3000:]
    default = show.stdout[show.stdout.index("signature_def['serving_default']"):]
    assert re.search(r"inputs\['text'\] tensor_info:\s+dtype: DT_STRING\s+shape: \(-1\)", default)
    for name in ("label", "label_id", "probabilities", "logits"):
        assert f"outputs['{name}']" in default
    assert "signature_def['serving_ids']" in show.stdout and "inputs['token_ids']" in show.stdout

    texts = ["a wonderful film", "awful, boring plot"]
    run = subprocess.run(
        [cli, "run", "--dir", str(exported), "--tag_set", "serve", "--signature_def", "serving_default",
         "--input_exprs", f"text={json.dumps(texts)}"],
        capture_output=True, text=True, env=_subprocess_env(), timeout=300)
    # saved_model_cli run loads through the TF1 session path, like TF Serving's C++ loader: this also
    # proves that variables and the vocabulary table are restored there.
    assert run.returncode == 0, run.stderr[-3000:]
    expected = [LABELS[i] for i in reference_outputs(finetuned, tokenizer, texts)[1].argmax(-1)]
    label_block = run.stdout[run.stdout.index("Result for output key label:"):].splitlines()[1]
    assert re.findall(r"b'([^']*)'", label_block) == expected
    assert "Result for output key probabilities:" in run.stdout


def _documented_json_blocks():
    text = (REPO / "docs" / "serving.md").read_text(encoding="utf-8")
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, flags=re.S)]


def test_rest_bodies_documented_in_docs_serving_md(loaded):
    """Every request body in docs/serving.md maps onto the signature like TF Serving maps it, and the
    response has the documented structure."""
    blocks = _documented_json_blocks()
    requests = [b for b in blocks if "instances" in b or "inputs" in b]
    responses = [b for b in blocks if "predictions" in b or "outputs" in b]
    assert len(requests) >= 2 and len(requests) == len(responses)
    signature = loaded.signatures["serving_default"]
    input_names = list(signature.structured_input_signature[1])
    for body, documented in zip(requests, responses):
        response = outputs_to_rest(signature(**rest_to_kwargs(body, input_names)), row_format="instances" in body)
        json.dumps(response)  # serialisable as TF Serving would send it
        if "predictions" in documented:
            assert len(response["predictions"]) == len(body["instances"])
            for row, doc_row in zip(response["predictions"], documented["predictions"]):
                assert sorted(row) == sorted(doc_row)
                assert row["label"] in LABELS and len(row["probabilities"]) == len(doc_row["probabilities"])
        else:
            assert sorted(response["outputs"]) == sorted(documented["outputs"])
            assert [len(v) for v in response["outputs"].values()] == [len(v) for v in documented["outputs"].values()]


def test_rest_row_and_columnar_formats_agree(loaded):
    signature = loaded.signatures["serving_default"]
    rows = outputs_to_rest(signature(**rest_to_kwargs({"instances": TEXTS[:3]}, ["text"])), row_format=True)
    cols = outputs_to_rest(signature(**rest_to_kwargs({"inputs": {"text": TEXTS[:3]}}, ["text"])), row_format=False)
    assert [r["label"] for r in rows["predictions"]] == cols["outputs"]["label"]
    assert [r["probabilities"] for r in rows["predictions"]] == cols["outputs"]["probabilities"]


def test_edge_inputs(loaded, finetuned, tokenizer):
    serve = loaded.signatures["serving_default"]
    megabyte = ("naïve café review " * 60_000)[:1_000_000]
    edge = ["", megabyte, "Ünïcödé ça marche 🙂 日本語 \u200b\x00 \ufffd", "x"]
    out = serve(text=tf.constant(edge))
    logits, _ = reference_outputs(finetuned, tokenizer, edge)
    np.testing.assert_allclose(out["logits"].numpy(), logits, atol=TOL, rtol=0)

    one = serve(text=tf.constant(["only one"]))
    assert one["label"].shape == (1,) and one["probabilities"].shape == (1, 2)

    many = [f"review number {i}: {'great' if i % 2 else 'awful'} film" for i in range(1000)]
    out = serve(text=tf.constant(many))
    assert out["label"].shape == (1000,) and out["probabilities"].shape == (1000, 2)
    logits, _ = reference_outputs(finetuned, tokenizer, many)
    np.testing.assert_allclose(out["logits"].numpy(), logits, atol=TOL, rtol=0)


LONG_REVIEWS = [
    "a wonderful film " * 12 + "but in the end awful, boring, terrible",
    "awful plot " * 20 + "yet i loved every minute, brilliant",
    "great acting",
    "",
]


@pytest.mark.parametrize("options", [
    {"truncation": "tail"},
    {"truncation": "head_tail", "head_tokens": 4},
    {"truncation": "windows", "window_pooling": "mean"},
    {"truncation": "windows", "window_stride": 5, "window_pooling": "max"},
], ids=lambda o: "-".join(str(v) for v in o.values()))
def test_long_texts_are_fitted_in_the_graph_as_in_training(finetuned, tokenizer, tmp_path, options):
    version = export_model(finetuned, tokenizer, tmp_path / "long", sequence_length=16, **options)
    card = json.loads((version / "model_card.json").read_text(encoding="utf-8"))
    assert card["truncation"]["truncation"] == options["truncation"]
    assert f"`{options['truncation']}`" in (version / "README.md").read_text(encoding="utf-8")
    out = tf.saved_model.load(str(version)).signatures["serving_default"](text=tf.constant(LONG_REVIEWS))
    expected = fitted_reference_logits(finetuned, tokenizer, LONG_REVIEWS, sequence_length=16, **options)
    np.testing.assert_allclose(out["logits"].numpy(), expected, atol=TOL, rtol=0)
    for review, row in zip(LONG_REVIEWS, expected):  # alone, a short review is padded to 8 columns, not 16
        alone = tf.saved_model.load(str(version)).signatures["serving_default"](text=tf.constant([review]))
        np.testing.assert_allclose(alone["logits"].numpy()[0], row, atol=TOL, rtol=0)
    from ptft_keras.data.truncation import encode_texts

    fitted = {k: v for k, v in options.items() if k in ("truncation", "head_tokens", "window_stride")}
    head = encode_texts(tokenizer, LONG_REVIEWS[:2], sequence_length=16, truncation="head").first.to_list()
    assert encode_texts(tokenizer, LONG_REVIEWS[:2], sequence_length=16, **fitted).first.to_list() != head
    assert out["label"].shape == (len(LONG_REVIEWS),)


def test_a_short_request_gives_the_logits_of_full_length_padding(exported, loaded, finetuned, tokenizer, tmp_path):
    """The served model reads 8 columns for a short request; its logits are those of the in-memory
    model on the 32 columns of fixed padding, and those of a padding="fixed" export."""
    short = ["a wonderful film", "awful"]
    full_width = tokenizer(short, sequence_length=SEQUENCE_LENGTH)
    assert full_width["token_ids"].shape == (2, SEQUENCE_LENGTH)
    expected = np.asarray(finetuned(full_width, training=False))
    by_text = loaded.signatures["serving_default"](text=tf.constant(short))["logits"].numpy()
    by_ids = loaded.signatures["serving_ids"](**{k: tf.cast(v, tf.int32) for k, v in full_width.items()})["logits"]
    np.testing.assert_allclose(by_text, expected, atol=TOL, rtol=0)
    np.testing.assert_allclose(by_ids.numpy(), expected, atol=TOL, rtol=0)
    fixed = export_model(finetuned, tokenizer, tmp_path / "fixed", sequence_length=SEQUENCE_LENGTH, padding="fixed")
    by_fixed = tf.saved_model.load(str(fixed)).signatures["serving_default"](text=tf.constant(TEXTS))["logits"]
    by_dynamic = loaded.signatures["serving_default"](text=tf.constant(TEXTS))["logits"]
    np.testing.assert_allclose(by_dynamic.numpy(), by_fixed.numpy(), atol=TOL, rtol=0)


def _width_probe(features, training=False):
    """A stand-in model whose one output (a regression score) is how many columns of features it read."""
    token_ids = features["token_ids"]
    width = tf.cast(tf.shape(token_ids)[1], tf.float32)
    return tf.reshape(tf.zeros_like(tf.cast(token_ids[:, 0], tf.float32)) + width, [-1, 1])


def _expected_width(tokenizer, texts, round_to):
    """The longest of `texts` in tokens (at most SEQUENCE_LENGTH), rounded up to `round_to` (None: fixed)."""
    if round_to is None:
        return SEQUENCE_LENGTH
    longest = int(tokenizer(texts, sequence_length=SEQUENCE_LENGTH)["padding_mask"].numpy().sum(axis=1).max()) if texts else 1
    return min(SEQUENCE_LENGTH, -(-longest // round_to) * round_to)


@pytest.mark.parametrize("options, round_to", [
    ({}, 8),
    ({"pad_to_multiple_of": 1}, 1),
    ({"pad_to_multiple_of": 16}, 16),
    ({"padding": "fixed"}, None),
], ids=["dynamic-8", "dynamic-exact", "dynamic-16", "fixed"])
def test_the_model_reads_as_many_columns_as_the_request_needs(tokenizer, tmp_path, options, round_to):
    version = export_model(_width_probe, tokenizer, tmp_path / "probe", task="regression",
                           sequence_length=SEQUENCE_LENGTH, **options)
    loaded = tf.saved_model.load(str(version))
    requests = [["a wonderful film"], ["awful"], TEXTS, [""], ["word " * 100, "x"], []]
    for texts in requests:
        width = loaded.signatures["serving_default"](text=tf.constant(texts, tf.string))["score"].numpy()
        assert width.tolist() == [float(_expected_width(tokenizer, texts, round_to))] * len(texts), texts
    full_width = tokenizer(["a wonderful film"], sequence_length=SEQUENCE_LENGTH)  # 5 real columns of 32
    by_ids = loaded.signatures["serving_ids"](**{k: tf.cast(v, tf.int32) for k, v in full_width.items()})["score"]
    assert by_ids.numpy().tolist() == [float(_expected_width(tokenizer, ["a wonderful film"], round_to))]


@pytest.mark.parametrize("options", [
    {"pair": True},
    {"truncation": "windows", "window_stride": 5},
    {"truncation": "head_tail", "head_tokens": 4},
], ids=lambda o: "-".join(str(v) for v in o.values()))
def test_pairs_and_fitted_texts_are_padded_to_the_request(tokenizer, tmp_path, options):
    version = export_model(_width_probe, tokenizer, tmp_path / "probe", task="regression", sequence_length=16,
                           **options)
    serve = tf.saved_model.load(str(version)).signatures["serving_default"]
    inputs = {"text": tf.constant(["great acting"])}
    if options.get("pair"):
        inputs["text_pair"] = tf.constant(["a fine film"])
    assert serve(**inputs)["score"].numpy().tolist() == [8.0]
    inputs = {name: tf.constant(["a wonderful film " * 12]) for name in inputs}
    assert serve(**inputs)["score"].numpy().tolist() == [16.0]


def test_docstring_examples_run():
    result = doctest.testmod(serving, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted >= 2


def test_padded_width_edges():
    assert int(serving.padded_width(tf.zeros([0, 32], tf.int32))) == 8  # an empty batch
    assert int(serving.padded_width(tf.zeros([3, 4], tf.int32))) == 4  # never wider than the input
    assert int(serving.padded_width(tf.constant([[1, 0, 1, 0, 0]]), 1)) == 3  # the last real column counts
    features = {"token_ids": tf.constant([[101, 5, 102, 0], [101, 102, 0, 0]]),
                "padding_mask": tf.constant([[1, 1, 1, 0], [1, 1, 0, 0]])}
    assert serving.trim_padding(features, 1)["token_ids"].numpy().tolist() == [[101, 5, 102], [101, 102, 0]]


def test_serving_ids_matches_serving_default(loaded, tokenizer):
    features = tokenizer(TEXTS, sequence_length=SEQUENCE_LENGTH)
    by_ids = loaded.signatures["serving_ids"](**{k: tf.cast(v, tf.int32) for k, v in features.items()})
    by_text = loaded.signatures["serving_default"](text=tf.constant(TEXTS))
    np.testing.assert_allclose(by_ids["logits"].numpy(), by_text["logits"].numpy(), atol=TOL, rtol=0)
    assert by_ids["label"].numpy().tolist() == by_text["label"].numpy().tolist()


def test_warmup_requests_replay_on_the_signatures(exported, loaded, prediction_log_class):
    records = list(tf.data.TFRecordDataset(str(exported / "assets.extra" / "tf_serving_warmup_requests")))
    assert len(records) == 2
    for record in records:
        request = prediction_log_class.FromString(record.numpy()).predict_log.request
        assert request.model_spec.name == "sentiment"
        inputs = {name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()}
        outputs = loaded.signatures[request.model_spec.signature_name](**inputs)
        assert outputs["label"].shape[0] == len(next(iter(inputs.values())))


def test_versions_and_a_failed_export_leaves_no_version(finetuned, tokenizer, tmp_path, monkeypatch):
    base = tmp_path / "sentiment"
    assert export_model(finetuned, tokenizer, base, sequence_length=8).name == "1"
    assert export_model(finetuned, tokenizer, base, sequence_length=8).name == "2"

    def broken_card(*args, **kwargs):
        raise OSError("disk full while writing the model card")

    monkeypatch.setattr(serving, "write_model_card", broken_card)
    with pytest.raises(OSError, match="disk full"):
        export_model(finetuned, tokenizer, base, sequence_length=8)
    assert sorted(p.name for p in base.iterdir()) == ["1", "2"]


def test_pair_task_with_text_normalization(tokenizer, tmp_path):
    model = tiny_classifier(tokenizer, label_names=["contradiction", "neutral", "entailment"], seed=1)
    version = export_model(model, tokenizer, tmp_path / "nli", sequence_length=SEQUENCE_LENGTH, pair=True,
                           text_normalization="html_breaks")
    serve = tf.saved_model.load(str(version)).signatures["serving_default"]
    assert sorted(serve.structured_input_signature[1]) == ["text", "text_pair"]
    premises = ["A man plays.<br /><br />Loudly.", "Two dogs run", ""]
    hypotheses = ["Someone<br>plays", "Animals are asleep", "empty premise"]
    out = serve(text=tf.constant(premises), text_pair=tf.constant(hypotheses))
    logits, _ = reference_outputs(model, tokenizer, normalize_text(premises, "html_breaks"),
                                  normalize_text(hypotheses, "html_breaks"))
    np.testing.assert_allclose(out["logits"].numpy(), logits, atol=TOL, rtol=0)
    raw_logits, _ = reference_outputs(model, tokenizer, premises, hypotheses)
    assert not np.allclose(raw_logits, logits, atol=TOL)  # normalisation really changed the input


@pytest.mark.parametrize("problem_type, outputs", [
    ("multi_label_classification", {"labels": ("int32", 3), "probabilities": ("float32", 3)}),
    ("regression", {"score": ("float32", None)}),
])
def test_multilabel_and_regression_outputs(tokenizer, tmp_path, problem_type, outputs):
    names = ["action", "comedy", "drama"] if problem_type.startswith("multi") else None
    model = tiny_classifier(tokenizer, label_names=names, num_labels=None if names else 1, problem_type=problem_type)
    version = export_model(model, tokenizer, tmp_path / "m", sequence_length=16)
    out = tf.saved_model.load(str(version)).signatures["serving_default"](text=tf.constant(TEXTS))
    logits, _ = reference_outputs(model, tokenizer, TEXTS, sequence_length=16)
    for name, (dtype, width) in outputs.items():
        assert out[name].dtype.name == dtype
        assert out[name].shape == ((len(TEXTS), width) if width else (len(TEXTS),))
    if names:
        assert (version / "assets" / "labels.txt").read_text().splitlines() == names
        np.testing.assert_allclose(out["probabilities"].numpy(), tf.sigmoid(logits).numpy(), atol=TOL, rtol=0)
        assert out["labels"].numpy().tolist() == (tf.sigmoid(logits).numpy() >= 0.5).astype(int).tolist()
    else:
        assert not (version / "assets" / "labels.txt").exists()
        np.testing.assert_allclose(out["score"].numpy(), logits[:, 0], atol=TOL, rtol=0)


def test_bad_arguments_fail_before_writing(finetuned, tokenizer, tmp_path):
    base = tmp_path / "m"
    with pytest.raises(ConfigError, match="longer than the model's 64 positions"):
        export_model(finetuned, tokenizer, base, sequence_length=65)
    with pytest.raises(ConfigError, match="2 outputs but 3 label names"):
        export_model(finetuned, tokenizer, base, sequence_length=8, label_names=["a", "b", "c"])
    with pytest.raises(ConfigError, match="html_breaks"):
        export_model(finetuned, tokenizer, base, sequence_length=8, text_normalization="markdown")
    with pytest.raises(ConfigError, match="head_tokens: 128 must be between 1 and 5"):
        export_model(finetuned, tokenizer, base, sequence_length=8, truncation="head_tail")
    with pytest.raises(ConfigError, match="sentence pairs and token classification exports keep the head"):
        export_model(finetuned, tokenizer, base, sequence_length=8, truncation="tail", pair=True)
    with pytest.raises(ConfigError, match="padding='bucket' is not one of dynamic, fixed"):
        export_model(finetuned, tokenizer, base, sequence_length=8, padding="bucket")
    with pytest.raises(ConfigError, match="pad_to_multiple_of=0 must be a positive integer"):
        export_model(finetuned, tokenizer, base, sequence_length=8, pad_to_multiple_of=0)
    assert not base.exists() or list(base.iterdir()) == []
