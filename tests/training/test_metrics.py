"""Metrics against hand-computed cases (and scikit-learn / scipy where installed)."""
import numpy as np
import pytest

from ptft_keras.errors import DataError
from ptft_keras.training import metrics as M

GOLD = [0, 0, 1, 1, 2, 2, 2, 0]
PRED = [0, 1, 1, 1, 2, 0, 2, 0]


def test_confusion_matrix_and_report_by_hand():
    report = M.classification_report(GOLD, PRED, ["a", "b", "c"])
    assert report["confusion_matrix"] == {"labels": ["a", "b", "c"], "matrix": [[2, 1, 0], [0, 2, 0], [1, 0, 2]]}
    # a: tp 2, predicted 3, gold 3; b: tp 2, predicted 3, gold 2; c: tp 2, predicted 2, gold 3
    assert report["per_class"]["a"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3})
    assert report["per_class"]["b"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert report["per_class"]["c"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert report["accuracy"] == 0.75 and report["micro_f1"] == 0.75
    assert report["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 0.8) / 3)
    assert report["count"] == 8


def test_mcc_by_hand_and_degenerate():
    # binary: tp=1, tn=2, fp=0, fn=1 -> (1*2 - 0*1) / sqrt(1 * 2 * 3 * 2)
    assert M.matthews_corrcoef([1, 1, 0, 0], [1, 0, 0, 0]) == pytest.approx(2 / np.sqrt(12))
    assert M.matthews_corrcoef([1, 1, 0, 0], [1, 1, 1, 1]) == 0.0  # constant prediction: undefined -> 0
    assert M.matthews_corrcoef([0, 1, 2], [0, 1, 2]) == pytest.approx(1.0)


def test_macro_f1_ignores_classes_absent_from_gold_and_predictions():
    # class 2 of 3 never occurs: averaging over seen classes only, like scikit-learn's default
    assert M.f1([0, 1], [0, 1], "macro", num_classes=3) == 1.0


def test_against_scikit_learn():
    sklearn = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    gold, pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    assert M.f1(gold, pred, "macro") == pytest.approx(sklearn.f1_score(gold, pred, average="macro"))
    assert M.f1(gold, pred, "micro") == pytest.approx(sklearn.f1_score(gold, pred, average="micro"))
    assert M.matthews_corrcoef(gold, pred) == pytest.approx(sklearn.matthews_corrcoef(gold, pred))
    assert M.confusion_matrix(gold, pred).tolist() == sklearn.confusion_matrix(gold, pred).tolist()
    multi_gold, logits = rng.integers(0, 2, (50, 3)), rng.normal(size=(50, 3))
    for average in ("micro", "macro"):
        expected = sklearn.f1_score(multi_gold, logits > 0, average=average)
        assert M.multilabel_f1(multi_gold, logits, average) == pytest.approx(expected, abs=1e-5)


def test_correlations_by_hand():
    # Spearman with ties: ranks of [1, 2, 2, 3] are [1, 2.5, 2.5, 4]
    x, y = [1.0, 2.0, 2.0, 3.0], [10.0, 20.0, 30.0, 40.0]
    ranks_x, ranks_y = np.array([1, 2.5, 2.5, 4]), np.array([1, 2, 3, 4])
    assert M.spearman(x, y) == pytest.approx(np.corrcoef(ranks_x, ranks_y)[0, 1])
    assert M.pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(np.corrcoef([1, 2, 3], [2, 4, 7])[0, 1])
    assert M.pearson([1, 2, 3], [-1, -2, -3]) == pytest.approx(-1.0)
    assert np.isnan(M.pearson([1, 1, 1], [1, 2, 3]))  # constant predictions: undefined
    report = M.regression_report([1.0, 2.0, 3.0], [[1.5], [2.0], [2.5]])
    assert report["mse"] == pytest.approx(1 / 6) and report["pearson"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "tags, spans",
    [
        (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 1), ("LOC", 3, 3)]),
        (["B-PER", "B-PER", "I-PER"], [("PER", 0, 0), ("PER", 1, 2)]),  # B always starts
        (["O", "I-PER", "I-PER", "O"], [("PER", 1, 2)]),  # IOB1 / lenient: I after O starts
        (["I-PER", "I-PER", "B-PER", "I-LOC"], [("PER", 0, 1), ("PER", 2, 2), ("LOC", 3, 3)]),  # IOB1
        (["B-PER", "I-LOC"], [("PER", 0, 0), ("LOC", 1, 1)]),  # a type change ends and starts
        (["S-PER", "B-LOC", "E-LOC", "I-LOC"], [("PER", 0, 0), ("LOC", 1, 2), ("LOC", 3, 3)]),  # IOBES
        (["B-MISC", "I-MISC"], [("MISC", 0, 1)]),  # an entity running to the sentence end
    ],
)
def test_entity_spans_follow_conlleval(tags, spans):
    assert M.entity_spans(tags) == spans


def test_entity_f1_by_hand_with_per_type():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-PER"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O", "B-PER"]]
    # gold entities: PER x2, LOC, ORG; predicted: PER x2 (both right), ORG x2 (one right)
    result = M.entity_f1(gold, pred)
    assert result["precision"] == pytest.approx(3 / 4) and result["recall"] == pytest.approx(3 / 4)
    assert result["f1"] == pytest.approx(3 / 4)
    assert result["accuracy"] == pytest.approx(6 / 7)
    assert result["per_type"]["PER"] == pytest.approx({"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2})
    assert result["per_type"]["LOC"] == pytest.approx({"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1})
    assert result["per_type"]["ORG"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})


def test_entity_f1_needs_both_boundaries():
    result = M.entity_f1([["B-PER", "I-PER", "I-PER"]], [["B-PER", "I-PER", "O"]])
    assert result["f1"] == 0.0 and result["accuracy"] == pytest.approx(2 / 3)


def test_squad_normalisation_and_scores_by_hand():
    assert M.normalize_answer("The  Eiffel-Tower, in PARIS!") == "eiffeltower in paris"
    assert M.normalize_answer("an apple a day") == "apple day"
    scores = M.squad_scores(
        ["Denver Broncos", "in the city of Paris", "nothing"],
        [["Denver Broncos", "Broncos"], ["Paris"], ["something else"]],
    )
    # example 2: tokens [in, city, of, paris] vs [paris]: precision 1/4, recall 1 -> F1 0.4
    assert scores["exact_match"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx((1.0 + 0.4 + 0.0) / 3)
    assert M.squad_scores([""], [[""]])["f1"] == 1.0  # SQuAD 2.0 no-answer agreement


def test_masked_accuracy_skips_ignore_index():
    metric = M.MaskedAccuracy()
    logits = np.eye(3)[[[0, 1, 2, 2], [1, 1, 0, 0]]]
    metric.update_state(np.array([[0, -100, 1, 2], [1, -100, -100, 2]]), logits)
    assert float(metric.result()) == pytest.approx(3 / 5)
    assert M.MaskedAccuracy.from_config(metric.get_config()).ignore_index == -100


@pytest.mark.parametrize(
    "call",
    [
        lambda: M.classification_report([], [], ["a"]),
        lambda: M.accuracy([], []),
        lambda: M.regression_report([], []),
        lambda: M.entity_f1([], []),
        lambda: M.squad_scores([], []),
    ],
)
def test_empty_eval_set_is_an_error(call):
    with pytest.raises(DataError, match="empty evaluation set"):
        call()


def test_bad_inputs_are_named():
    with pytest.raises(DataError, match="gold label id 3 is outside the 2 known classes"):
        M.classification_report([0, 3], [0, 1], ["neg", "pos"])
    with pytest.raises(DataError, match="tag 'PER' is not"):
        M.entity_spans(["PER"])
    with pytest.raises(DataError, match="sentence 1: 2 gold tags but 1 predicted"):
        M.entity_f1([["O", "O"]], [["O"]])
    with pytest.raises(DataError, match="2 predictions for 1 examples"):
        M.squad_scores(["a", "b"], [["a"]])
