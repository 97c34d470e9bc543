"""The core-ops export tokenizer: same ids as the training tokenizer (and transformers), only core TF ops."""
from __future__ import annotations

import doctest
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from ptft_keras.data.tokenizer import Tokenizer
from ptft_keras.export import core_tokenizer
from ptft_keras.export.core_tokenizer import CoreOpsTokenizer
from ptft_keras.testing import unicode_samples
from ptft_keras.testing.unicode_samples import VARIED_PAIRS, VARIED_TEXTS

SEQUENCE_LENGTH = 32
FIRSTS, SECONDS = [p[0] for p in VARIED_PAIRS], [p[1] for p in VARIED_PAIRS]


@pytest.fixture(scope="module")
def training_tokenizer(minilm_path):
    return Tokenizer.from_pretrained(minilm_path)


@pytest.fixture(scope="module")
def core(training_tokenizer):
    return CoreOpsTokenizer.from_tokenizer(training_tokenizer, sequence_length=SEQUENCE_LENGTH)


def as_lists(features):
    return {name: np.asarray(value).tolist() for name, value in features.items()}


@pytest.mark.parametrize("sequence_length", [SEQUENCE_LENGTH, 128])
def test_same_ids_as_the_training_tokenizer_and_transformers(core, training_tokenizer, minilm_path, sequence_length):
    transformers = pytest.importorskip("transformers")
    hf = transformers.BertTokenizerFast.from_pretrained(minilm_path)
    single = core(tf.constant(VARIED_TEXTS), sequence_length=sequence_length)
    pair = core(tf.constant(FIRSTS), tf.constant(SECONDS), sequence_length=sequence_length)
    assert single["token_ids"].shape.as_list() == [len(VARIED_TEXTS), sequence_length]
    assert as_lists(single) == as_lists(training_tokenizer(VARIED_TEXTS, sequence_length=sequence_length))
    assert as_lists(pair) == as_lists(training_tokenizer(FIRSTS, SECONDS, sequence_length=sequence_length))
    reference = hf(FIRSTS, SECONDS, max_length=sequence_length, padding="max_length", truncation="longest_first")
    assert as_lists(pair)["token_ids"] == reference["input_ids"]
    assert as_lists(pair)["segment_ids"] == reference["token_type_ids"]


def test_saved_model_runs_in_a_process_with_only_tensorflow(core, training_tokenizer, tmp_path):
    def serve(texts, firsts, seconds):
        single, pair = core(texts), core(firsts, seconds)
        offsets = dict(zip(("ids", "starts", "ends"), core.tokenize_with_offsets(texts)))
        return {**{f"single_{k}": v for k, v in single.items()}, **{f"pair_{k}": v for k, v in pair.items()},
                **{f"offsets_{k}": v.to_tensor(-1) for k, v in offsets.items()}}

    module = tf.Module()
    module.tokenizer = core
    module.serve = tf.function(serve, input_signature=[tf.TensorSpec([None], tf.string)] * 3)
    tf.saved_model.save(module, str(tmp_path / "model"), signatures=module.serve.get_concrete_function())
    (tmp_path / "inputs.json").write_text(json.dumps({"texts": VARIED_TEXTS, "firsts": FIRSTS, "seconds": SECONDS}))
    script = textwrap.dedent("""
        import json, sys
        import tensorflow as tf
        from tensorflow.core.protobuf import saved_model_pb2
        from tensorflow.python.framework import op_def_registry

        directory = sys.argv[1]
        inputs = json.load(open(directory + "/inputs.json"))
        model = tf.saved_model.load(directory + "/model")
        out = model.signatures["serving_default"](**{k: tf.constant(v) for k, v in inputs.items()})
        saved = saved_model_pb2.SavedModel()
        saved.ParseFromString(open(directory + "/model/saved_model.pb", "rb").read())
        graph = saved.meta_graphs[0].graph_def
        ops = {n.op for n in graph.node} | {n.op for f in graph.library.function for n in f.node_def}
        json.dump({
            "single": {k[7:]: v.numpy().tolist() for k, v in out.items() if k.startswith("single_")},
            "pair": {k[5:]: v.numpy().tolist() for k, v in out.items() if k.startswith("pair_")},
            "offsets": {k[8:]: v.numpy().tolist() for k, v in out.items() if k.startswith("offsets_")},
            "unregistered_ops": sorted(op for op in ops if op_def_registry.get(op) is None),
            "ops": sorted(ops),
            "modules": sorted(m for m in sys.modules
                              if m.split(".")[0] in ("tensorflow_text", "keras_hub", "ptft_keras")),
        }, open(directory + "/outputs.json", "w"))
    """)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    outputs = json.loads((tmp_path / "outputs.json").read_text())
    assert outputs["modules"] == [] and outputs["unregistered_ops"] == []
    assert not any("Wordpiece" in op or "RoundRobin" in op for op in outputs["ops"])
    assert outputs["single"] == as_lists(training_tokenizer(VARIED_TEXTS, sequence_length=SEQUENCE_LENGTH))
    assert outputs["pair"] == as_lists(training_tokenizer(FIRSTS, SECONDS, sequence_length=SEQUENCE_LENGTH))
    expected = training_tokenizer.tokenize_with_offsets(VARIED_TEXTS)
    assert outputs["offsets"] == {name: value.to_tensor(-1).numpy().tolist()
                                  for name, value in zip(("ids", "starts", "ends"), expected)}


def test_tokenize_and_offsets_equal_the_training_tokenizer(core, training_tokenizer):
    """The public per-text methods (used by the token-classification export) match `Tokenizer`'s."""
    texts = tf.constant(VARIED_TEXTS)
    assert core.tokenize(texts).to_list() == training_tokenizer.tokenize(VARIED_TEXTS).to_list()
    words = core.tokenize(texts, return_words=True)
    assert words.ragged_rank == 2
    assert words.to_list() == training_tokenizer.tokenize(VARIED_TEXTS, return_words=True).to_list()
    assert core.tokenize(tf.constant("héllo there")).numpy().tolist() == [7592, 2045]
    ours = core.tokenize_with_offsets(texts, return_words=True, max_chars=20)
    theirs = training_tokenizer.tokenize_with_offsets(VARIED_TEXTS, return_words=True, max_chars=20)
    assert [t.to_list() for t in ours] == [t.to_list() for t in theirs]


def test_a_megabyte_string_and_a_thousand_texts(core, training_tokenizer):
    huge = core(tf.constant(["word " * 200_000, "x" * 1_000_000, "é" * 300_000]))
    word = training_tokenizer.token_to_id("word")
    assert huge["token_ids"].numpy().tolist() == [
        [101] + [word] * (SEQUENCE_LENGTH - 2) + [102],
        [101, 100, 102] + [0] * (SEQUENCE_LENGTH - 3),
        [101, 100, 102] + [0] * (SEQUENCE_LENGTH - 3),
    ]
    many = [VARIED_TEXTS[i % len(VARIED_TEXTS)] + f" number {i}" for i in range(1000)]
    assert as_lists(core(tf.constant(many))) == as_lists(training_tokenizer(many, sequence_length=SEQUENCE_LENGTH))


LONG_TEXTS = [
    " ".join(f"word{i} naïve café" for i in range(40)) + " and the verdict: 🙂 great",
    "short one",
    "",
    "x" * 300 + " " + "the last words here",
    "Ünïcödé " * 30 + "日本語 end",
]


@pytest.mark.parametrize("truncation, options", [
    ("head", {}), ("tail", {}), ("head_tail", {"head_tokens": 5}), ("windows", {}), ("windows", {"window_stride": 3}),
])
def test_fit_gives_the_rows_training_packs(core, training_tokenizer, truncation, options):
    """`fit` feeds the exported model exactly the rows `encode_texts` feeds it in training."""
    from ptft_keras.data.truncation import encode_texts

    length = 16
    features, documents = core.fit(tf.constant(LONG_TEXTS), sequence_length=length, truncation=truncation, **options)
    fitted = encode_texts(training_tokenizer, LONG_TEXTS, sequence_length=length, truncation=truncation,
                          head_tokens=options.get("head_tokens", 128), window_stride=options.get("window_stride"))
    assert as_lists(features) == as_lists(training_tokenizer.pack(fitted.first, sequence_length=length))
    assert documents.numpy().tolist() == fitted.document_ids.tolist()
    if truncation == "windows":
        assert len(documents) > len(LONG_TEXTS)  # the long texts really were split


def test_fit_of_a_megabyte_string_keeps_its_ends(core, training_tokenizer):
    huge = "start here " + "word " * 200_000 + "the very end"
    ids = {t: core.fit(tf.constant([huge]), sequence_length=8, truncation=t, head_tokens=2)[0]["token_ids"]
           for t in ("tail", "head_tail")}
    expected = {"tail": ["word", "word", "word", "the", "very", "end"],
                "head_tail": ["start", "here", "word", "the", "very", "end"]}
    for truncation, row in ids.items():
        tokens = [training_tokenizer.id_to_token(i) for i in row.numpy()[0]]
        assert tokens == ["[CLS]", *expected[truncation], "[SEP]"]


def test_distilbert_has_no_segment_ids(minilm_path):
    core = CoreOpsTokenizer.from_tokenizer(Tokenizer.from_pretrained(minilm_path, model_type="distilbert"),
                                           sequence_length=8)
    out = core(tf.constant(["a b"]), tf.constant(["c"]))
    assert set(out) == {"token_ids", "padding_mask"}
    assert out["token_ids"].numpy().tolist() == [[101, 1037, 1038, 102, 1039, 102, 0, 0]]


@pytest.mark.parametrize("module", [core_tokenizer, unicode_samples])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
