"""`ptft finetune --model bilstm` (fresh, with word vectors) and `--model DIR` (a saved BiLSTM), then `ptft
evaluate`, `ptft predict` and `ptft export` on the model directory, unchanged; the exported SavedModel takes raw
strings with core TF ops only."""
import csv
import doctest
import json
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf
from test_finetune import cli, sentiment_rows, write_tsv
from test_model_dir import FILLER, NEGATIVE, POSITIVE, write_tiny_checkpoint

import ptft_keras.jobs.encoder_loading
from ptft_keras.data.tokenizer import Tokenizer
from ptft_keras.errors import ConfigError
from ptft_keras.export.portability import custom_op_types
from ptft_keras.jobs.encoder_loading import (
    CLASSIC_DEFAULTS,
    GENERIC_LEARNING_RATE,
    check_classic_options,
    training_texts,
    with_classic_defaults,
)
from ptft_keras.jobs.finetune import FinetuneConfig
from ptft_keras.models.bilstm import BiLSTMEncoder

SIZES = "embedding_dim=16,lstm_units=16,num_layers=1,dropout=0.0,pooling=max"


def test_docstring_examples():
    result = doctest.testmod(ptft_keras.jobs.encoder_loading, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_classic_defaults_replace_only_the_generic_learning_rate():
    assert GENERIC_LEARNING_RATE == FinetuneConfig().learning_rate
    assert with_classic_defaults(FinetuneConfig()).learning_rate == CLASSIC_DEFAULTS["learning_rate"]
    assert with_classic_defaults(FinetuneConfig(learning_rate=3e-4)).learning_rate == 3e-4


def test_training_texts_of_pairs_and_conll_sentences():
    pairs = SimpleNamespace(train=SimpleNamespace(texts=["a", "b"], pairs=["c", "d"]))
    assert training_texts(pairs) == ["a", "b", "c", "d"]
    conll = SimpleNamespace(train=SimpleNamespace(words=[["EU", "rejects"], ["Peter"]]))
    assert training_texts(conll) == ["EU rejects", "Peter"]


def test_bilstm_options_are_refused_where_they_cannot_apply():
    with pytest.raises(ConfigError, match="--encoder-options, --word-vectors apply to BiLSTM encoders"):
        check_classic_options(FinetuneConfig(encoder_options="lstm_units=8", word_vectors="v.txt"), "ckpt",
                              fresh=False, saved=False)
    with pytest.raises(ConfigError, match="--vocab-size apply to a fresh encoder"):
        check_classic_options(FinetuneConfig(vocab_size=100), "runs/x/backbone", fresh=False, saved=True)
    check_classic_options(FinetuneConfig(word_vectors="v.txt"), "runs/x/backbone", fresh=False, saved=True)
    check_classic_options(FinetuneConfig(), "ckpt", fresh=False, saved=False)


def test_encoder_options_with_a_transformer_checkpoint_is_a_cli_error(tmp_path):
    checkpoint = write_tiny_checkpoint(tmp_path / "ckpt")
    write_tsv(tmp_path / "train.tsv", sentiment_rows(20, seed=0))
    code, _, err = cli("finetune", "--model", checkpoint, "--train", tmp_path / "train.tsv", "--text-column",
                       "sentence", "--output", tmp_path / "run", "--encoder-options", "lstm_units=8")
    assert code != 0 and "--encoder-options apply to BiLSTM encoders" in err


def write_glove(path, dim=16, seed=0):
    """GloVe text vectors for the toy task's words: sentiment words on two opposite directions."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=dim)
    lines = []
    for words, sign in ((POSITIVE, 1.0), (NEGATIVE, -1.0), (FILLER + ["unrelated"], 0.0)):
        for word in words:
            vector = sign * direction + 0.1 * rng.normal(size=dim)
            lines.append(word + " " + " ".join(f"{v:.5f}" for v in vector))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def bilstm_run(tmp_path_factory):
    """`ptft finetune --model bilstm` with a fresh vocabulary, sizes from --encoder-options and GloVe vectors."""
    root = tmp_path_factory.mktemp("bilstm")
    train, dev = sentiment_rows(160, seed=0), sentiment_rows(40, seed=1)
    write_tsv(root / "train.tsv", train)
    write_tsv(root / "dev.tsv", dev)
    vectors = write_glove(root / "glove.txt")
    code, out, err = cli(
        "finetune", "--model", "bilstm", "--train", root / "train.tsv", "--validation", root / "dev.tsv",
        "--text-column", "sentence", "--output", root / "run", "--epochs", 4, "--batch-size", 16, "--seed", 0,
        "--verbose", 0, "--encoder-options", "lstm_units=16,dropout=0.0", "--vocab-size", 100,
        "--word-vectors", vectors,
    )
    assert code == 0, err
    return SimpleNamespace(root=root, dir=root / "run", out=out, dev=dev)


def test_fresh_bilstm_learns_with_a_new_vocabulary_and_word_vectors(bilstm_run):
    out = bilstm_run.out
    assert "new WordPiece vocabulary:" in out and "trained on 160 training texts" in out
    vocabulary = Tokenizer.from_pretrained(bilstm_run.dir / "tokenizer").vocabulary
    found = sum(word in vocabulary for word in POSITIVE + NEGATIVE + FILLER)
    assert f"word vectors: {found} of {len(vocabulary)} vocabulary entries" in out
    assert "fine-tuning bilstm (BiLSTMEncoder, 1 layers, hidden 32)" in out
    config = json.loads((bilstm_run.dir / "training_config.json").read_text())
    assert config["learning_rate"] == CLASSIC_DEFAULTS["learning_rate"]  # the BiLSTM default, not BERT's
    assert config["encoder_options"] == "lstm_units=16,dropout=0.0" and config["model"] == "bilstm"
    metrics = json.loads((bilstm_run.dir / "metrics.json").read_text())["metrics"]
    assert metrics["accuracy"] >= 0.9, metrics


def test_evaluate_and_predict_read_the_bilstm_model_directory(bilstm_run):
    code, out, err = cli("evaluate", "--model", bilstm_run.dir, "--data", bilstm_run.root / "dev.tsv")
    assert code == 0, err
    saved = json.loads((bilstm_run.dir / "metrics.json").read_text())["metrics"]
    assert json.loads(out.strip().splitlines()[-1]) == pytest.approx(saved, abs=1e-5)
    output = bilstm_run.root / "predictions.tsv"
    code, _, err = cli("predict", "--model", bilstm_run.dir, "--data", bilstm_run.root / "dev.tsv", "--output", output)
    assert code == 0, err
    rows = list(csv.DictReader(output.open(), delimiter="\t", quoting=csv.QUOTE_NONE))
    assert [(r["sentence"], r["label"]) for r in rows] == bilstm_run.dev


def test_exported_bilstm_serves_raw_strings_with_core_ops_only(bilstm_run, tmp_path):
    code, out, err = cli("export", "--model", bilstm_run.dir, "--output", tmp_path / "sentiment")
    assert code == 0, err
    version_dir = out.strip().splitlines()[-1]
    assert custom_op_types(version_dir) == set()
    texts = [sentence for sentence, _ in bilstm_run.dev]
    served = tf.saved_model.load(version_dir).signatures["serving_default"](text=tf.constant(texts))
    from ptft_keras.jobs.model_dir import load_model_dir
    from ptft_keras.jobs.sequence_kind import predict_logits

    model, tokenizer, info = load_model_dir(bilstm_run.dir)
    np.testing.assert_allclose(served["logits"].numpy(), predict_logits(model, tokenizer, info, texts),
                               atol=1e-4, rtol=0)
    accuracy = np.mean([int(i) == ["neg", "pos"].index(label)
                        for i, (_, label) in zip(served["label_id"].numpy(), bilstm_run.dev)])
    assert accuracy >= 0.9


def test_finetune_a_saved_bilstm_directory(tmp_path):
    write_tsv(tmp_path / "train.tsv", sentiment_rows(160, seed=0))
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *POSITIVE, *NEGATIVE, *FILLER]
    tokenizer = Tokenizer.from_vocabulary(vocabulary)
    encoder = BiLSTMEncoder(vocabulary_size=tokenizer.vocab_size, embedding_dim=8, lstm_units=8, pooling="mean")
    backbone = encoder.save_pretrained(tmp_path / "pretrained" / "backbone", tokenizer=tokenizer)
    common = ("finetune", "--model", backbone, "--train", tmp_path / "train.tsv", "--text-column", "sentence",
              "--epochs", 4, "--batch-size", 16, "--verbose", 0)
    code, _, err = cli(*common, "--output", tmp_path / "bad", "--vocab-size", 50)
    assert code != 0 and "--vocab-size apply to a fresh encoder" in err
    code, out, err = cli(*common, "--output", tmp_path / "run")
    assert code == 0, err
    assert f"fine-tuning {backbone} (BiLSTMEncoder, 1 layers, hidden 16)" in out
    assert "new WordPiece vocabulary" not in out
    assert Tokenizer.from_pretrained(tmp_path / "run" / "tokenizer").vocabulary == vocabulary
    assert "accuracy" in json.loads((tmp_path / "run" / "metrics.json").read_text())["metrics"]
