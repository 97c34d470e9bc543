"""QA features on the real MiniLM tokenizer: transformers' windows and ids, labels, offsets into the original text."""
import doctest
from pathlib import Path

import numpy as np
import pytest

from ptft_keras.data.tokenizer import Tokenizer
from ptft_keras.errors import CheckpointError, ConfigError, DataError
from ptft_keras.data import qa_features
from ptft_keras.data.qa_features import QAFeaturizer, best_answers

FILLER = "The lake is calm in winter and busy in summer when tourists arrive by train. "
CONTEXT = (
    "Zürich is the largest city in Switzerland. " + FILLER * 3
    + "The café on Bahnhofstraße opened in 1879 and serves naïve crème brûlée to its guests. " + FILLER * 2
)
ANSWER = "crème brûlée"
QUESTION = "What does the café serve?"


# Text the old tf-text featurizer tokenized differently from transformers (NFKD "ﬁ", "½", "™"), and
# characters whose normalization changes their length (Hangul, decomposed accents, "İ").
ODD_CONTEXT = "Ærøskøbing und Łódź: 北京欢迎你 — 한국어 İSTANBUL e\u0301le\u0300ve ﬁne ½ ™ 🍕 [MASK]"


@pytest.fixture(scope="module")
def tokenizer(minilm_path):
    return Tokenizer.from_pretrained(minilm_path)


@pytest.fixture(scope="module")
def featurizer(tokenizer):
    return QAFeaturizer(tokenizer, sequence_length=48, doc_stride=12, max_question_length=10)


@pytest.fixture(scope="module")
def features(featurizer):
    return featurizer([QUESTION], [CONTEXT], [{"text": ANSWER, "answer_start": CONTEXT.index(ANSWER)}])


def context_ids(features, f):
    inputs = features.inputs
    keep = (inputs["segment_ids"][f] == 1) & (features.offsets[f, :, 0] >= 0)
    return inputs["token_ids"][f][keep].tolist()


def test_windows_ids_and_offsets_equal_transformers(tokenizer, minilm_path):
    """The features of transformers' run_qa.py (only_second truncation, stride, offsets of context tokens)."""
    transformers = pytest.importorskip("transformers")
    hf = transformers.BertTokenizerFast.from_pretrained(minilm_path)
    questions = [QUESTION, "Wo liegt Ærøskøbing?", "Où?"]
    contexts = [CONTEXT, ODD_CONTEXT, "ﬁne"]
    ours = QAFeaturizer(tokenizer, sequence_length=40, doc_stride=8, max_question_length=16)(questions, contexts)
    theirs = hf(questions, contexts, truncation="only_second", max_length=40, stride=8, padding="max_length",
                return_overflowing_tokens=True, return_offsets_mapping=True)
    assert len(ours) == len(theirs["input_ids"]) > 4
    assert ours.example_index.tolist() == theirs["overflow_to_sample_mapping"]
    for ours_name, their_name in (("token_ids", "input_ids"), ("segment_ids", "token_type_ids"),
                                  ("padding_mask", "attention_mask")):
        np.testing.assert_array_equal(ours.inputs[ours_name], theirs[their_name], err_msg=ours_name)
    in_context = np.array([[s == 1 for s in theirs.sequence_ids(f)] for f in range(len(ours))])
    expected = np.where(in_context[..., None], np.array(theirs["offset_mapping"]), -1)
    np.testing.assert_array_equal(ours.offsets, expected)


def test_answers_with_accents_and_odd_characters_map_back_exactly(featurizer):
    for answer in ("Ærøskøbing", "Łódź", "한국어", "İSTANBUL", "e\u0301le\u0300ve", "ﬁne", "🍕", "[MASK]"):
        begin = ODD_CONTEXT.index(answer)
        features = featurizer(["Was?"], [ODD_CONTEXT], [{"text": answer, "answer_start": begin}])
        f = int(np.argmax(features.labels["start_positions"] > 0))
        start, end = features.labels["start_positions"][f], features.labels["end_positions"][f]
        assert start > 0, answer
        assert ODD_CONTEXT[features.offsets[f, start, 0]:features.offsets[f, end, 1]] == answer


def test_a_vocabulary_still_works_and_gives_the_same_features(tokenizer, minilm_path, features):
    from_path = QAFeaturizer(Path(minilm_path) / "vocab.txt", sequence_length=48, doc_stride=12, max_question_length=10)
    again = from_path([QUESTION], [CONTEXT], [{"text": ANSWER, "answer_start": CONTEXT.index(ANSWER)}])
    for name in features.inputs:
        np.testing.assert_array_equal(again.inputs[name], features.inputs[name])
    np.testing.assert_array_equal(again.offsets, features.offsets)
    cased = QAFeaturizer(tokenizer.vocabulary, lowercase=False, sequence_length=48, doc_stride=12,
                         max_question_length=10)
    assert not cased.tokenizer.lowercase
    assert cased.tokenizer.mask_token_id == tokenizer.mask_token_id


def test_windows_overlap_by_doc_stride_and_cover_the_context(featurizer, features):
    whole = featurizer.tokenize([CONTEXT])[0][0].tolist()
    assert len(features) > 2 and set(features.example_index.tolist()) == {0}
    windows = [context_ids(features, f) for f in range(len(features))]
    for left, right in zip(windows, windows[1:]):
        assert left[-12:] == right[:12]  # doc_stride tokens shared
    rebuilt = windows[0] + [t for w in windows[1:] for t in w[12:]]
    assert rebuilt == whole
    inputs = features.inputs
    assert inputs["token_ids"].shape == (len(features), 48)
    assert (inputs["token_ids"][:, 0] == featurizer.cls_id).all()
    assert inputs["padding_mask"].sum(axis=1).max() == 48


def test_labels_point_at_the_answer_or_at_cls(features):
    starts, ends = features.labels["start_positions"], features.labels["end_positions"]
    holding = [f for f in range(len(features)) if starts[f] > 0]
    assert holding and all(starts[f] == ends[f] == 0 for f in range(len(features)) if f not in holding)
    for f in holding:
        begin, end = features.offsets[f, starts[f], 0], features.offsets[f, ends[f], 1]
        assert CONTEXT[begin:end] == ANSWER  # accents and case of the original text


def test_offsets_index_the_original_string(features):
    spans = {CONTEXT[b:e] for b, e in features.offsets[0] if b >= 0}
    assert {"Zürich", "Switzerland", "."} <= spans  # lower-cased, accent-stripped pieces map back


def test_best_answers_searches_all_windows_within_the_limits(features):
    starts, ends = features.labels["start_positions"], features.labels["end_positions"]
    f = int(np.argmax(starts > 0))
    start_logits, end_logits = np.zeros((2, len(features), 48))
    start_logits[f, starts[f]], end_logits[f, ends[f]] = 5.0, 5.0
    other = (f + 1) % len(features)  # a weaker span in another window
    start_logits[other, 20], end_logits[other, 21] = 4.0, 4.0
    start_logits[:, 1:5] = end_logits[:, 1:5] = 100.0  # question tokens: never an answer
    assert best_answers(start_logits, end_logits, features, [CONTEXT]) == [ANSWER]
    assert best_answers(start_logits, end_logits, features, [CONTEXT], max_answer_length=1) != [ANSWER]
    with pytest.raises(DataError, match="do not match"):
        best_answers(start_logits[:, :10], end_logits, features, [CONTEXT])


def test_answers_in_squad_layout(featurizer, features):
    answers = [{"text": [ANSWER, "brûlée"], "answer_start": [CONTEXT.index(ANSWER), 0]}]
    squad = featurizer([QUESTION], [CONTEXT], answers)
    np.testing.assert_array_equal(squad.labels["start_positions"], features.labels["start_positions"])
    unlabelled = featurizer([QUESTION], [CONTEXT])
    assert unlabelled.labels is None and len(unlabelled) == len(features)


def test_bad_answers_are_data_errors(featurizer):
    with pytest.raises(DataError, match="'fondue' is not at character 3 .* does not occur in the context at all"):
        featurizer([QUESTION], [CONTEXT], [("fondue", 3)])
    with pytest.raises(DataError, match=r"example 2: .*'Zürich' is not at character 5 .*\(it occurs at character 0\)"):
        featurizer([QUESTION] * 2, [CONTEXT] * 2, [(ANSWER, CONTEXT.index(ANSWER)), ("Zürich", 5)])
    with pytest.raises(DataError, match="2 questions, 1 contexts"):
        featurizer([QUESTION] * 2, [CONTEXT])


def test_bad_settings_are_config_errors(tokenizer, minilm_path, tmp_path):
    with pytest.raises(ConfigError, match="not more than doc_stride=30"):
        QAFeaturizer(tokenizer, sequence_length=48, doc_stride=30, max_question_length=16)
    with pytest.raises(ConfigError, match="lacks the special token"):
        QAFeaturizer(["a", "b"])
    with pytest.raises(ConfigError, match="lowercase= applies to a vocabulary only"):
        QAFeaturizer(tokenizer, lowercase=False)
    with pytest.raises(CheckpointError, match="missing") as error:
        QAFeaturizer(tmp_path / "vocab.txt")
    assert error.value.path == str(tmp_path / "vocab.txt")


def test_docstring_examples():
    result = doctest.testmod(qa_features, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
