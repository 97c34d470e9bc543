"""Soft-target losses, packed targets and the distillation student (`ptft_keras.tasks.distiller`)."""
import doctest
import math

import keras
import numpy as np
import pytest

import ptft_keras.tasks.distiller as distiller
from ptft_keras.errors import ConfigError
from ptft_keras.models.backbone import Backbone
from ptft_keras.tasks.distiller import (
    DistillationLoss,
    DistillationStudent,
    HardLabelAccuracy,
    pack_targets,
    soft_target_loss,
    unpack_targets,
)
from ptft_keras.tasks.sequence_classifier import SequenceClassifier


def softmax(values):
    exps = [math.exp(v) for v in values]
    return [e / sum(exps) for e in exps]


def hand_kl(teacher, student, temperature):
    """T^2 * sum_c p_c log(p_c / q_c), p and q the softened teacher and student probabilities, written out."""
    p = softmax([t / temperature for t in teacher])
    q = softmax([s / temperature for s in student])
    return temperature ** 2 * sum(pc * math.log(pc / qc) for pc, qc in zip(p, q))


def test_docstring_examples_run():
    result = doctest.testmod(distiller, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_kl_soft_target_loss_against_a_hand_computed_value():
    # teacher logits (1, 0, -1), student (0, 0.5, 0), T = 2:
    # p = softmax(0.5, 0, -0.5) = (0.5065, 0.3072, 0.1863), q = softmax(0, 0.25, 0) = (0.3045, 0.3910, 0.3045)
    # KL = 0.5065 ln(0.5065/0.3045) + 0.3072 ln(0.3072/0.3910) + 0.1863 ln(0.1863/0.3045) = 0.0921; x T^2 = 0.3683
    teacher, student = [1.0, 0.0, -1.0], [0.0, 0.5, 0.0]
    expected = hand_kl(teacher, student, 2.0)
    assert expected == pytest.approx(0.3683, abs=1e-4)  # the written-out number above, x 4
    got = soft_target_loss(np.array([teacher]), np.array([student]), temperature=2.0)
    assert float(got[0]) == pytest.approx(expected, rel=1e-5)
    # identical logits: no loss; T = 1 is the plain KL
    same = soft_target_loss(np.array([teacher]), np.array([teacher]), temperature=3.0)
    assert float(same[0]) == pytest.approx(0, abs=1e-6)
    plain = soft_target_loss(np.array([teacher]), np.array([student]))
    assert float(plain[0]) == pytest.approx(hand_kl(teacher, student, 1.0), rel=1e-5)


def test_mse_soft_target_loss_is_the_mean_squared_logit_difference():
    got = soft_target_loss(np.array([[1.0, -2.0]]), np.array([[0.0, 2.0]]), temperature=5.0, soft_loss="mse")
    assert float(got[0]) == pytest.approx((1 + 16) / 2)


def test_distillation_loss_mixes_hard_and_soft_where_a_label_exists():
    teacher = np.array([[2.0, -1.0], [0.5, 0.5], [-1.0, 1.0]], np.float32)
    student = np.array([[0.3, 0.1], [1.0, -1.0], [0.0, 0.0]], np.float32)
    labels = [0, -1, 1]
    loss = DistillationLoss(temperature=3.0, alpha=0.25)
    per_example = loss.call(keras.ops.convert_to_tensor(pack_targets(labels, teacher)),
                            keras.ops.convert_to_tensor(student))

    def ce(label, logits):
        return -math.log(softmax(logits)[label])

    expected = [0.25 * ce(0, student[0]) + 0.75 * hand_kl(teacher[0], student[0], 3.0),
                hand_kl(teacher[1], student[1], 3.0),  # unlabelled: the soft targets alone
                0.25 * ce(1, student[2]) + 0.75 * hand_kl(teacher[2], student[2], 3.0)]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(per_example), expected, rtol=1e-5)
    assert float(loss(pack_targets(labels, teacher), student)) == pytest.approx(np.mean(expected), rel=1e-5)


def test_plain_labels_give_the_cross_entropy():
    student = np.array([[0.3, 0.1], [1.0, -1.0]], np.float32)
    expected = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(np.array([1, 0]), student)
    for labels in (np.array([1, 0]), np.array([[1], [0]])):
        assert float(DistillationLoss()(labels, student)) == pytest.approx(float(expected), rel=1e-6)


def test_pack_and_unpack_targets():
    packed = pack_targets([2, -1], [[0.1, 0.2, 0.3], [1.0, 2.0, 3.0]])
    labels, logits = unpack_targets(keras.ops.convert_to_tensor(packed), 3)
    assert keras.ops.convert_to_numpy(labels).tolist() == [2, -1]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(logits), [[0.1, 0.2, 0.3], [1.0, 2.0, 3.0]], rtol=1e-6)
    with pytest.raises(ConfigError, match="one label per row"):
        pack_targets([1, 0, 1], np.zeros((2, 2)))


def test_hard_label_accuracy_ignores_unlabelled_rows():
    metric = HardLabelAccuracy()
    metric.update_state(pack_targets([1, -1, -1, 0], np.zeros((4, 2))),
                        np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]))
    assert float(metric.result()) == 1.0
    metric.update_state(np.array([0, 0]), np.array([[0.0, 1.0], [1.0, 0.0]]))  # plain labels (validation)
    assert float(metric.result()) == pytest.approx(3 / 4)


@pytest.mark.parametrize("settings, match", [
    ({"temperature": 0.0}, "temperature"), ({"alpha": 1.5}, "alpha"), ({"soft_loss": "ce"}, "soft_loss")])
def test_bad_settings_are_config_errors(settings, match):
    with pytest.raises(ConfigError, match=match):
        DistillationLoss(**settings)


def test_student_learns_from_soft_targets_alone_and_saves_as_a_sequence_classifier(tmp_path):
    """No labels at all (alpha irrelevant: every row unlabelled): the student comes to agree with the teacher."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    token_ids = rng.integers(5, 40, (256, 8))
    features = {"token_ids": token_ids, "segment_ids": np.zeros_like(token_ids), "padding_mask": np.ones_like(token_ids)}
    teacher_logits = np.stack([np.where(token_ids[:, 0] < 20, 3.0, -3.0), np.zeros(256)], axis=1).astype(np.float32)
    student = DistillationStudent(Backbone.from_size("tiny", vocabulary_size=50), label_names=["a", "b"],
                                  temperature=1.0, alpha=0.5)
    student.compile(optimizer=keras.optimizers.Adam(1e-3))
    student.fit(features, pack_targets(np.full(256, -1), teacher_logits), batch_size=32, epochs=6, verbose=0)
    agree = np.mean(np.argmax(student.predict(features, verbose=0), -1) == np.argmax(teacher_logits, -1))
    assert agree > 0.9

    path = tmp_path / "student.keras"
    student.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, SequenceClassifier) and loaded.label_names == ["a", "b"]
    assert (loaded.temperature, loaded.alpha, loaded.soft_loss) == (1.0, 0.5, "kl")
    np.testing.assert_allclose(loaded.predict(features, verbose=0), student.predict(features, verbose=0), atol=1e-5)
