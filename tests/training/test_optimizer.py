"""AdamW against PyTorch's, per-variable LR multipliers, growing builds, schedules, distribution."""
import math

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from ptft_keras.errors import ConfigError
from ptft_keras.training.optimizer import AdamW, WarmupDecay, make_optimizer

torch = pytest.importorskip("torch")


def _grads(seed, shapes):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=s).astype("float32") for s in shapes]


def test_matches_torch_adamw_with_param_groups_and_no_decay():
    """Three steps of torch.optim.AdamW with two param groups (lr and lr * 0.5) and a bias without
    weight decay: our AdamW with lr_multipliers and the default no-decay patterns gives the same weights."""
    init = _grads(0, [(3, 2), (2,), (4,)])
    kernel, bias, other = (keras.Variable(v, name=n) for v, n in zip(init, ["kernel", "bias", "embeddings"]))
    ours = AdamW(1e-2, weight_decay=0.1, lr_multipliers={other.path: 0.5})
    t_kernel, t_bias, t_other = (torch.nn.Parameter(torch.tensor(v)) for v in init)
    theirs = torch.optim.AdamW(
        [
            {"params": [t_kernel], "weight_decay": 0.1},
            {"params": [t_bias], "weight_decay": 0.0},
            {"params": [t_other], "weight_decay": 0.1, "lr": 5e-3},
        ],
        lr=1e-2, betas=(0.9, 0.999), eps=1e-8,
    )
    for step in range(3):
        grads = _grads(step + 1, [(3, 2), (2,), (4,)])
        ours.apply([tf.constant(g) for g in grads], [kernel, bias, other])
        for p, g in zip((t_kernel, t_bias, t_other), grads):
            p.grad = torch.tensor(g)
        theirs.step()
    for mine, reference in zip((kernel, bias, other), (t_kernel, t_bias, t_other)):
        np.testing.assert_allclose(mine.numpy(), reference.detach().numpy(), rtol=1e-5, atol=1e-7)


def test_weight_decay_skips_bias_and_layer_norm_of_a_real_backbone():
    backbone = keras_hub.models.BertBackbone(vocabulary_size=30, num_layers=1, num_heads=2, hidden_dim=8,
                                             intermediate_dim=16, max_sequence_length=8)
    optimizer = make_optimizer()
    decayed = {v.path for v in backbone.weights if optimizer.decays_weight(v)}
    assert "token_embedding/embeddings" in decayed
    assert "transformer_layer_0/self_attention_layer/query/kernel" in decayed
    assert not any(p.endswith(("bias", "gamma", "beta")) for p in decayed)
    assert "transformer_layer_0/self_attention_layer/query/bias" not in decayed  # a 2-D bias


def test_growing_build_keeps_old_slots_and_gives_newcomers_zero_slots():
    a, b = keras.Variable(np.ones(3, "float32"), name="a"), keras.Variable(np.ones(2, "float32"), name="b")
    optimizer = AdamW(1e-2)
    optimizer.apply([tf.ones(3)], [a])
    momentum_a = optimizer._momentums[0].numpy().copy()
    optimizer.build([a, b])  # b joins late, e.g. unfrozen
    index = {v.path: i for i, v in enumerate(optimizer._trainable_variables)}
    np.testing.assert_array_equal(optimizer._momentums[index[a.path]].numpy(), momentum_a)
    assert not np.any(optimizer._momentums[index[b.path]].numpy())
    assert not np.any(optimizer._velocities[index[b.path]].numpy())
    assert float(optimizer._steps[index[b.path]].numpy()) == 0.0
    optimizer.apply([tf.ones(3), tf.ones(2)], [a, b])
    steps = {p: float(optimizer._steps[i].numpy()) for p, i in index.items()}
    assert steps == {a.path: 2.0, b.path: 1.0}  # bias correction starts over for b
    # b's first step is a full Adam first step (lr * sign(g)), as in PyTorch, not a damped one
    np.testing.assert_allclose(b.numpy(), 1.0 - 1e-2 * 0.01 - 1e-2, rtol=1e-6)  # decay, then lr * 1


def test_saved_state_layout_after_growth_equals_a_fresh_build():
    a, b = keras.Variable(np.ones(3, "float32"), name="a"), keras.Variable(np.ones((2, 2), "float32"), name="b")
    grown = AdamW(1e-2)
    grown.build([b])
    grown.build([a, b])  # model order: a first
    fresh = AdamW(1e-2)
    fresh.build([a, b])
    assert [v.shape for v in grown.variables] == [v.shape for v in fresh.variables]
    assert len(grown.variables) == len(grown._variables)  # nothing lost or duplicated


def test_gradient_accumulation_updates_every_second_step_with_the_mean_gradient():
    a, b = keras.Variable(np.zeros(2, "float32"), name="a"), keras.Variable(np.zeros(2, "float32"), name="b")
    accumulating = AdamW(0.1, weight_decay=0.0, gradient_accumulation_steps=2)
    plain = AdamW(0.1, weight_decay=0.0)
    accumulating.apply([tf.constant([1.0, -3.0])], [a])
    assert not a.numpy().any()
    accumulating.apply([tf.constant([3.0, -1.0])], [a])
    plain.apply([tf.constant([2.0, -2.0])], [b])  # the mean of the two
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)
    assert float(accumulating._steps[0].numpy()) == 1.0


def test_unknown_variable_error_says_what_to_do():
    a, b = keras.Variable(np.ones(2, "float32"), name="a"), keras.Variable(np.ones(2, "float32"), name="b")
    optimizer = AdamW(1e-2)
    optimizer.build([a])
    with pytest.raises(ConfigError, match="refresh_trainable"):
        optimizer.apply([tf.ones(2)], [b])


def test_schedule_values_by_hand():
    linear = WarmupDecay(2.0, warmup_steps=10, total_steps=110)
    assert [float(linear(t)) for t in (0, 5, 10, 60, 110, 200)] == pytest.approx([0.0, 1.0, 2.0, 1.0, 0.0, 0.0])
    cosine = WarmupDecay(2.0, warmup_steps=0, total_steps=100, decay="cosine", end_learning_rate=0.5)
    assert float(cosine(50)) == pytest.approx(0.5 + 1.5 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert float(cosine(100)) == pytest.approx(0.5)
    constant = WarmupDecay(1.0, warmup_steps=4)
    assert float(constant(2)) == 0.5 and float(constant(1000)) == 1.0
    # restarted ramp at step 60, 10 steps: 3/10 of the decayed rate at step 63
    assert float(linear.at(63, warmup_origin=60)) == pytest.approx(0.3 * 2.0 * (110 - 63) / 100)


def test_restart_warmup_moves_the_ramp_without_retracing():
    optimizer = make_optimizer(1.0, warmup_steps=4, total_steps=104)
    optimizer.iterations.assign(50)
    assert float(optimizer.learning_rate) == pytest.approx((104 - 50) / 100)
    optimizer.restart_warmup()
    assert float(optimizer.learning_rate) == 0.0
    optimizer.iterations.assign(51)
    assert float(optimizer.learning_rate) == pytest.approx(0.25 * (104 - 51) / 100)
    optimizer.restart_warmup(warmup_steps=10)  # a different ramp length from now on
    optimizer.iterations.assign(53)
    assert float(optimizer.learning_rate) == pytest.approx(0.2 * (104 - 53) / 100)


def test_config_round_trip():
    optimizer = make_optimizer(3e-5, warmup_ratio=0.1, total_steps=500, decay="cosine",
                               lr_multipliers={"x/kernel": 0.5}, gradient_accumulation_steps=2)
    clone = AdamW.from_config(optimizer.get_config())
    assert clone.get_config() == optimizer.get_config()
    assert clone._learning_rate.get_config() == {"peak": 3e-5, "warmup_steps": 50, "total_steps": 500,
                                                 "decay": "cosine", "end_learning_rate": 0.0}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(warmup_ratio=0.1), "needs total_steps"),
        (dict(warmup_steps=20, total_steps=10), "warmup_steps=20"),
        (dict(decay="step"), "unknown learning-rate decay"),
        (dict(learning_rate=0.0), "learning_rate must be > 0"),
        (dict(use_ema=True), "use_ema"),
    ],
)
def test_bad_settings(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        make_optimizer(**kwargs)


def test_multipliers_and_growth_under_mirrored_strategy(two_cpus):
    """Under MirroredStrategy a grown build and the per-variable LR give the one-device result."""

    def run(strategy):
        with strategy.scope():
            a = keras.Variable(np.ones(3, "float32"), name="a")
            b = keras.Variable(np.ones(2, "float32"), name="b")
            optimizer = AdamW(0.1, weight_decay=0.01, lr_multipliers={b.path: 0.25})
            optimizer.build([a])
            optimizer.build([a, b])

        @tf.function(jit_compile=False)
        def step():
            def replica_step():
                optimizer.apply([tf.fill([3], 2.0), tf.fill([2], -1.0)], [a, b])
            strategy.run(replica_step)

        for _ in range(2):
            step()
        return a.numpy(), b.numpy()

    one_device = run(tf.distribute.get_strategy())
    # ReductionToOneDevice: two MirroredStrategy objects in one process collide on collective-op keys.
    mirrored = run(tf.distribute.MirroredStrategy(two_cpus, cross_device_ops=tf.distribute.ReductionToOneDevice()))
    for x, y in zip(one_device, mirrored):
        np.testing.assert_allclose(x, y, rtol=1e-6)
    assert one_device[1][0] > 1.0 and one_device[1][0] - 1.0 < (1.0 - one_device[0][0])  # b moves less
