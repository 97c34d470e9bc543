"""Token classification end to end: `ptft finetune --task token-classification` -> `ptft evaluate` -> `ptft predict`
on CoNLL files, with a tiny random BERT and a toy NER task it learns in a few dozen steps; plus the entity report."""
import json
import random
from types import SimpleNamespace

import keras
import numpy as np
import pytest
from test_finetune import cli

from ptft_keras.data.conll import read_conll
from ptft_keras.jobs.finetune import FinetuneConfig
from ptft_keras.training.metrics import entity_f1
from ptft_keras.jobs.model_dir import load_model_dir
from ptft_keras.jobs.token_kind import (
    TOKEN_CLASSIFICATION_DEFAULTS,
    entity_report,
    predict_tags,
    tags_from_logits,
    TokenKind,
    word_loss,
)

FILLER = ["the", "in", "met", "visited", "said", "and", "today", "from", "at", "."]
FIRST_NAMES, SURNAMES = ["john", "mary", "anna", "johnson"], ["smith", "jones", "smiths"]
PLACES, COMPANIES, SUFFIXES = ["paris", "berlin", "rome", "romania"], ["acme", "globex"], ["bank", "corp"]
VOCABULARY = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + FILLER + ["john", "mary", "anna", "smith", "jones"]
              + ["paris", "berlin", "rome", "acme", "globex", "bank", "corp", "##s", "##son", "##ania"])


def entity(rng):
    """Words and type of a random entity; "Johnson", "Smiths" and "Romania" are two word pieces."""
    kind = rng.choice(["PER", "LOC", "ORG"])
    if kind == "PER":
        words = [rng.choice(FIRST_NAMES).title()] + ([rng.choice(SURNAMES).title()] if rng.random() < 0.5 else [])
    elif kind == "LOC":
        words = [rng.choice(PLACES).title()]
    else:
        words = [rng.choice(COMPANIES).upper()] + ([rng.choice(SUFFIXES)] if rng.random() < 0.5 else [])
    return words, kind


def sentence(rng, entities):
    """Filler words around `entities` entities, with IOB2 tags."""
    words, tags = [], []
    for _ in range(entities):
        filler = rng.sample(FILLER[:-1], rng.randint(0, 3))
        named, kind = entity(rng)
        words += filler + named
        tags += ["O"] * len(filler) + [("B-" if i == 0 else "I-") + kind for i in range(len(named))]
    return words + ["."], tags + ["O"]


def bioes(tags):
    """IOB2 -> BIOES (to write the training file in another scheme than the validation file)."""
    out = []
    for i, tag in enumerate(tags):
        last = i + 1 == len(tags) or not tags[i + 1].startswith("I-")
        if tag.startswith("B-"):
            out.append(("S-" if last else "B-") + tag[2:])
        elif tag.startswith("I-"):
            out.append(("E-" if last else "I-") + tag[2:])
        else:
            out.append(tag)
    return out


def write_conll(path, sentences, scheme=lambda tags: tags):
    lines = ["-DOCSTART- -X- -X- O", ""]
    for words, tags in sentences:
        lines += [f"{w} NNP B-NP {t}" for w, t in zip(words, scheme(tags))] + [""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_tiny_checkpoint(directory):
    from ptft_keras.data.tokenizer import Tokenizer
    from ptft_keras.models.backbone import Backbone

    keras.utils.set_random_seed(0)
    backbone = Backbone.from_size(None, model_type="bert", vocabulary_size=len(VOCABULARY), num_layers=2,
                                  hidden_dim=32, num_heads=2, intermediate_dim=64, max_sequence_length=64)
    return backbone.save_pretrained(directory, tokenizer=Tokenizer.from_vocabulary(VOCABULARY, model_max_length=64))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One fine-tuning run through the CLI (BIOES training file, IOB2 validation file with one sentence longer
    than the sequence length), evaluated and predicted through the CLI."""
    root = tmp_path_factory.mktemp("ner")
    rng = random.Random(0)
    train = [sentence(rng, rng.randint(1, 3)) for _ in range(160)]
    dev = [sentence(rng, rng.randint(1, 3)) for _ in range(30)] + [sentence(rng, 25)]
    write_conll(root / "train.txt", train, scheme=bioes)
    write_conll(root / "dev.txt", dev)
    checkpoint = write_tiny_checkpoint(root / "ckpt")
    code, out, err = cli(
        "finetune", "--task", "token-classification", "--model", checkpoint, "--train", root / "train.txt",
        "--validation", root / "dev.txt", "--output", root / "run", "--epochs", 3, "--seed", 0,
        "--batch-size", 16, "--learning-rate", 1e-2, "--sequence-length", 24, "--verbose", 2,
    )
    assert code == 0, err
    evaluation = cli("evaluate", "--model", root / "run", "--data", root / "dev.txt")
    prediction = cli("predict", "--model", root / "run", "--data", root / "dev.txt", "--output", root / "dev.pred.txt")
    return SimpleNamespace(root=root, dir=root / "run", out=out, dev=dev, evaluation=evaluation, prediction=prediction)


def test_finetune_writes_a_model_directory_with_an_entity_report(run):
    assert "tags read as BIOES, converted to IOB2" in run.out
    assert json.loads((run.dir / "labels.json").read_text()) == {
        "task": "token-classification", "labels": ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]}
    config = json.loads((run.dir / "training_config.json").read_text())
    assert (config["sequence_length"], config["token_column"], config["tag_column"]) == (24, 0, -1)
    report = json.loads((run.dir / "metrics.json").read_text())
    assert set(report["per_class"]) == {"LOC", "ORG", "PER"}
    assert report["count"] == sum(t.startswith("B-") for _, tags in run.dev for t in tags)
    assert 1 <= len(report["history"]["val_f1"]) <= 3 and "val_loss" in report["history"]
    assert report["metrics"]["f1"] >= 0.9, report["metrics"]  # the alignment is right, or the toy task is not learnt


def test_evaluate_prints_the_per_type_table_and_json_last(run):
    code, out, err = run.evaluation
    assert code == 0, err
    lines = out.strip().splitlines()
    metrics = json.loads(lines[-1])
    assert {"f1", "precision", "recall"} <= set(metrics)
    assert any(line.split()[:1] == ["PER"] for line in lines[:-1]) and "precision" in out
    saved = json.loads((run.dir / "metrics.json").read_text())["metrics"]
    assert metrics["f1"] == pytest.approx(saved["f1"])  # the same model, data and windows as in training


def test_predict_appends_a_tag_column_that_scores_like_evaluate(run):
    code, out, err = run.prediction
    assert code == 0, err
    lines = (run.root / "dev.pred.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len((run.root / "dev.txt").read_text(encoding="utf-8").splitlines())
    assert lines[0] == "-DOCSTART- -X- -X- O O"
    gold, predicted = [[]], [[]]
    for line in lines[2:]:
        if not line:
            gold.append([]), predicted.append([])
            continue
        fields = line.split()
        assert len(fields) == 5
        gold[-1].append(fields[3]), predicted[-1].append(fields[4])
    gold, predicted = [g for g in gold if g], [p for p in predicted if p]
    assert len(gold) == len(run.dev) and len(predicted[-1]) == len(run.dev[-1][0]) > 24  # windows merged back
    assert entity_f1(gold, predicted)["f1"] == pytest.approx(json.loads(run.evaluation[1].splitlines()[-1])["f1"])


def test_predict_tags_of_python_sentences(run):
    loaded = load_model_dir(run.dir)
    words, _ = run.dev[0]
    alone, (together, paris) = predict_tags(loaded, [words]), predict_tags(loaded, [words, ["Paris"]])
    assert alone[0] == together and len(together) == len(words) and paris == ["B-LOC"]


def test_evaluate_names_the_line_of_an_unknown_tag(run, tmp_path):
    path = tmp_path / "odd.txt"
    path.write_text("John NNP B-NP B-PER\n\nEU NNP B-NP B-MISC\n", encoding="utf-8")
    code, _, err = cli("evaluate", "--model", run.dir, "--data", path)
    assert code == 2 and f"{path}, line 3" in err and "'B-MISC'" in err


def test_token_classification_defaults_apply_only_to_untouched_options():
    config = TokenKind().with_defaults(FinetuneConfig(task="token-classification"))
    assert {name: getattr(config, name) for name in TOKEN_CLASSIFICATION_DEFAULTS} == TOKEN_CLASSIFICATION_DEFAULTS
    mine = TokenKind().with_defaults(FinetuneConfig(task="token-classification", learning_rate=3e-5, freeze_epochs=2,
                                             layer_lr_decay=0.8))
    assert (mine.learning_rate, mine.freeze_epochs, mine.layer_lr_decay) == (3e-5, 2, 0.8)


# --- the entity report ---------------------------------------------------------------------------
def test_entity_report_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "I-ORG", "O"], ["B-LOC"]]
    predicted = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "I-ORG", "O", "O"], ["B-LOC"]]
    # gold: PER(0-1) LOC(3) | ORG(0-2) | LOC(0); predicted: PER(0-1) ORG(3) | ORG(0-1) | LOC(0)
    # correct: PER, LOC in sentence 3 -> 2 of 4 predicted, 2 of 4 gold
    report = entity_report(gold, predicted, data="hand")
    assert report["metrics"] == {"f1": 0.5, "precision": 0.5, "recall": 0.5, "accuracy": 0.777778}
    assert report["per_class"]["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert report["per_class"]["LOC"] == {"precision": 1.0, "recall": 0.5, "f1": 0.666667, "support": 2}
    assert report["per_class"]["ORG"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert (report["task"], report["data"], report["count"]) == ("token-classification", "hand", 4)


def test_entity_scores_match_seqeval():
    seqeval = pytest.importorskip("seqeval.metrics")
    rng = random.Random(1)
    tags = ["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
    gold = [[rng.choice(tags) for _ in range(rng.randint(1, 15))] for _ in range(300)]
    predicted = [[t if rng.random() < 0.8 else rng.choice(tags) for t in sentence] for sentence in gold]
    ours = entity_report(gold, predicted)
    assert ours["metrics"]["f1"] == pytest.approx(seqeval.f1_score(gold, predicted), abs=1e-6)
    assert ours["metrics"]["precision"] == pytest.approx(seqeval.precision_score(gold, predicted), abs=1e-6)
    assert ours["metrics"]["recall"] == pytest.approx(seqeval.recall_score(gold, predicted), abs=1e-6)
    per_type = seqeval.classification_report(gold, predicted, output_dict=True)
    for kind, values in ours["per_class"].items():
        assert values["f1"] == pytest.approx(per_type[kind]["f1-score"], abs=1e-6)
        assert values["support"] == per_type[kind]["support"]


def test_word_loss_is_keras_cross_entropy_and_tags_come_per_sentence():
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(7, 4)).astype(np.float32), rng.integers(0, 4, 7)
    expected = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    assert word_loss(logits, labels) == pytest.approx(float(expected), rel=1e-5)
    aligned = SimpleNamespace(per_sentence=lambda v: np.split(v, [3]))
    assert tags_from_logits(np.eye(2)[[0, 1, 1, 0]], aligned, ["O", "B-X"]) == [["O", "B-X", "B-X"], ["O"]]


def test_conll_reader_sees_what_the_job_writes(run):
    data = read_conll(run.root / "train.txt")
    assert data.scheme == "BIOES" and len(data) == 160


def test_padding_and_truncation_are_decided_once_for_ner(run):
    """--padding auto groups windows by length (padded to the longest, not to bucket boundaries), and
    --truncation auto is recorded as the windows training used, so the export does not warn."""
    config = json.loads((run.dir / "training_config.json").read_text())
    assert (config["padding"], config["truncation"]) == ("grouped", "windows")
    assert "truncation: windows" in run.out


def test_ner_refuses_a_truncation_that_would_drop_labels(tmp_path):
    from ptft_keras.errors import ConfigError
    from ptft_keras.jobs.task_kind import Splits

    config = FinetuneConfig(task="token-classification", truncation="head")
    with pytest.raises(ConfigError, match="--truncation head is not available"):
        TokenKind().resolve_fit(config, 24, Splits(None, None, None))


def test_ner_export_gives_no_warning(run, tmp_path):
    import warnings

    from ptft_keras.jobs.export import export_finetuned_dir

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        version = export_finetuned_dir(run.dir, tmp_path / "served")
    assert (version / "saved_model.pb").is_file()


@pytest.mark.parametrize("name, body, kind", [
    ("a.txt", "EU B-ORG\nrejects O\n\nPeter B-PER\n", "conll"),
    ("b.txt", "EU\nrejects\n\nPeter\n", "conll"),
    ("c.txt", "EU rejects German call .\nPeter Blackburn visited Paris\n", "text"),
    ("d.iob", "EU rejects German call\n", "conll"),
    ("e.tsv", "text\nEU rejects\n", "columns"),
    ("f.jsonl", '{"text": "EU rejects"}\n', "columns"),
])
def test_predict_input_kind_follows_the_file(tmp_path, name, body, kind):
    from ptft_keras.jobs.token_kind import input_kind

    (tmp_path / name).write_text(body, encoding="utf-8")
    assert input_kind(tmp_path / name) == kind


def test_predict_reads_plain_text_and_columns_by_what_the_file_is(run, tmp_path):
    words = run.dev[0][0]
    (tmp_path / "plain.txt").write_text(" ".join(words) + "\n\nParis\n", encoding="utf-8")
    code, out, err = cli("predict", "--model", run.dir, "--data", tmp_path / "plain.txt", "--output",
                         tmp_path / "plain.jsonl")
    assert code == 0, err
    assert "as plain text (one sentence a line" in out
    rows = [json.loads(line) for line in (tmp_path / "plain.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rows] == [1, 3] and rows[0]["words"] == words and len(rows[0]["tags"]) == len(words)
    assert rows[0]["tags"] == predict_tags(load_model_dir(run.dir), [words])[0] and rows[1]["tags"] == ["B-LOC"]

    (tmp_path / "rows.tsv").write_text("id\ttext\n7\t" + " ".join(words) + "\n", encoding="utf-8")
    code, out, err = cli("predict", "--model", run.dir, "--data", tmp_path / "rows.tsv", "--output",
                         tmp_path / "rows.pred.tsv")
    assert code == 0, err
    assert "rows with a text column 'text'" in out
    header, row = (tmp_path / "rows.pred.tsv").read_text().splitlines()
    assert header == "id\ttext\tprediction" and row.split("\t")[2] == " ".join(rows[0]["tags"])


def test_predict_refuses_an_output_extension_that_is_not_the_format_written(run, tmp_path):
    (tmp_path / "plain.txt").write_text("Paris\n", encoding="utf-8")
    code, _, err = cli("predict", "--model", run.dir, "--data", tmp_path / "plain.txt", "--output",
                       tmp_path / "plain.tsv")
    assert code == 2 and "written as jsonl" in err and not (tmp_path / "plain.tsv").exists()


def test_static_shape_validation_scores_give_the_dynamic_word_logits(tmp_path):
    """On TPU the windows are scored in [batch, sequence_length] batches, the last one filled with empty windows:
    every word gets the logits it gets from batches padded to their longest."""
    from ptft_keras.data.tokenizer import Tokenizer
    from ptft_keras.jobs.token_kind import prepare, word_logits
    from ptft_keras.models.backbone import Backbone
    from ptft_keras.tasks.token_classifier import TokenClassifier

    rng = random.Random(3)
    sentences = read_conll(write_conll(tmp_path / "dev.txt", [sentence(rng, rng.randint(1, 3)) for _ in range(10)]
                                       + [sentence(rng, 6)]))
    names = sentences.label_names()
    tokenizer = Tokenizer.from_vocabulary(VOCABULARY, model_max_length=64)
    keras.utils.set_random_seed(0)
    backbone = Backbone.from_size(None, model_type="bert", vocabulary_size=len(VOCABULARY), num_layers=2,
                                  hidden_dim=32, num_heads=2, intermediate_dim=64, max_sequence_length=64)
    model = TokenClassifier(backbone, label_names=names)
    aligned = prepare(tokenizer, sentences, names, sequence_length=10)
    assert len(aligned) > len(sentences)  # the long sentence is split into windows
    dynamic = word_logits(model, tokenizer, aligned, batch_size=4, static_shapes=False)
    static = word_logits(model, tokenizer, aligned, batch_size=4, static_shapes=True)
    assert static.shape == dynamic.shape == (aligned.num_words, len(names))
    np.testing.assert_allclose(static, dynamic, atol=1e-5, rtol=0)
