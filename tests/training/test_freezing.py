"""Freeze-then-unfreeze inside `model.fit` (with XLA), layer-wise LR decay, fresh slots and warmups."""
import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from ptft_keras.errors import ConfigError
from ptft_keras.tasks import SequenceClassifier, TokenClassifier
from ptft_keras.training.freezing import (
    FreezeSchedule,
    FreezeThenUnfreeze,
    layer_groups,
    layerwise_lr_multipliers,
    refresh_trainable,
    set_trainable_groups,
)
from ptft_keras.training.optimizer import make_optimizer

STEPS_PER_EPOCH = 4


def tiny_classifier(backbone_cls=keras_hub.models.BertBackbone, task_cls=SequenceClassifier):
    keras.utils.set_random_seed(0)
    backbone = backbone_cls(vocabulary_size=64, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32,
                            max_sequence_length=16)
    return task_cls(backbone, num_labels=2)


def tiny_data():
    rng = np.random.default_rng(0)
    n = 4 * STEPS_PER_EPOCH
    x = {"token_ids": rng.integers(1, 64, (n, 8)).astype("int32"), "padding_mask": np.ones((n, 8), "int32")}
    return x, rng.integers(0, 2, n)


def snapshot(model):
    """Weights per layer group (depth -> list of arrays)."""
    return [[v.numpy().copy() for layer in group for v in layer.weights] for group in layer_groups(model)]


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


class Recorder(keras.callbacks.Callback):
    """Weights per group at each epoch end, the learning rate used by each step, optimizer slots."""

    def __init__(self):
        super().__init__()
        self.epochs, self.learning_rates, self.slots_after_epoch_0 = [], [], None

    def on_train_batch_begin(self, batch, logs=None):
        self.learning_rates.append(float(self.model.optimizer.learning_rate))

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(snapshot(self.model))
        optimizer = self.model.optimizer
        if epoch == 0 and hasattr(optimizer, "_steps"):
            self.slots_after_epoch_0 = {
                v.path: (optimizer._momentums[i].numpy(), optimizer._velocities[i].numpy(), optimizer._steps[i].numpy())
                for i, v in enumerate(optimizer._trainable_variables)
            }


def test_layer_groups_top_down():
    model = tiny_classifier()
    names = [[layer.name for layer in group] for group in layer_groups(model)]
    assert names == [
        ["classifier_head", "pooled_dense"],
        ["transformer_layer_1"],
        ["transformer_layer_0"],
        ["token_embedding", "position_embedding", "segment_embedding", "embeddings_layer_norm"],
    ]
    # A token classifier never calls BERT's pooler: it is in no group and stays frozen.
    tokens = tiny_classifier(task_cls=TokenClassifier)
    assert "pooled_dense" not in [layer.name for group in layer_groups(tokens) for layer in group]
    set_trainable_groups(tokens, 4)
    assert not tokens.backbone.pooled_dense.trainable
    distil = tiny_classifier(keras_hub.models.DistilBertBackbone)
    embeddings = [layer.name for layer in layer_groups(distil)[-1]]
    assert embeddings == ["token_and_position_embedding", "embeddings_layer_norm"]


def test_layerwise_lr_multipliers_are_decay_to_the_depth_exactly():
    model = tiny_classifier()
    multipliers = layerwise_lr_multipliers(model, 0.9)
    expected_depth = {"classifier_head": 0, "pooled_dense": 0, "transformer_layer_1": 1, "transformer_layer_0": 2}
    for variable in model.weights:
        depth = expected_depth.get(variable.path.split("/")[0], 3)  # the rest: embeddings
        assert multipliers[variable.path] == 0.9**depth, variable.path
    assert len(multipliers) == len(model.weights)
    with pytest.raises(ConfigError, match="lr_decay"):
        layerwise_lr_multipliers(model, 1.5)


def test_schedule_arithmetic_and_validation():
    steps = FreezeSchedule(head_only=2, unfreeze="gradual", every=3, unit="step")
    assert [steps.trainable_groups(t, 4) for t in (0, 1, 2, 4, 5, 8, 100)] == [1, 1, 2, 2, 3, 4, 4]
    assert FreezeSchedule(head_only=0).trainable_groups(0, 5) == 5
    top = FreezeSchedule(head_only=2, unfreeze="gradual", every=1, top_blocks=2)
    assert [top.trainable_groups(t, 5) for t in (0, 2, 3, 4, 50)] == [1, 2, 3, 3, 3]
    assert FreezeSchedule(head_only=0, top_blocks=0).trainable_groups(9, 5) == 1
    for bad in (dict(unfreeze="random"), dict(unit="hour"), dict(every=0), dict(lr_decay=0.0), dict(top_blocks=-1)):
        with pytest.raises(ConfigError):
            FreezeSchedule(**bad)


def test_only_the_top_block_ever_trains_with_top_blocks_1():
    """The seed recipe "freeze every encoder layer but the last": after a head-only epoch, the head and
    the top block train; the lower block and the embeddings stay bitwise equal through the whole fit."""
    model = tiny_classifier()
    model.compile(optimizer=make_optimizer(1e-2, warmup_ratio=0.0, total_steps=3 * STEPS_PER_EPOCH))
    x, y = tiny_data()
    before = snapshot(model)
    recorder = Recorder()
    callback = FreezeThenUnfreeze(FreezeSchedule(head_only=1, top_blocks=1))
    model.fit(x, y, batch_size=4, epochs=3, callbacks=[callback, recorder], verbose=0)
    after = recorder.epochs[-1]
    assert callback.trainable_groups == 2 and len(after) == 4  # head, block 1, block 0, embeddings
    assert not same(before[0], after[0]) and not same(before[1], after[1])
    assert same(before[1], recorder.epochs[0][1])  # the top block waited for the head-only epoch
    assert same(before[2], after[2]) and same(before[3], after[3])


def test_gradual_unfreezing_inside_fit():
    """One epoch head only, then one more group per epoch: frozen groups stay bitwise equal,
    unfrozen ones move, late joiners' optimizer slots start at zero, each unfreeze restarts the
    warmup, and the LLRD factors reach the optimizer."""
    model = tiny_classifier()
    x, y = tiny_data()
    model.compile(optimizer=make_optimizer(1e-2, warmup_steps=2, total_steps=4 * STEPS_PER_EPOCH), jit_compile=False)
    start = snapshot(model)
    freeze = FreezeThenUnfreeze(FreezeSchedule(head_only=1, unfreeze="gradual", every=1, warmup_steps=2))
    recorder = Recorder()
    model.fit(x, y, batch_size=4, epochs=4, callbacks=[freeze, recorder], verbose=0, shuffle=False)

    for epoch, groups in enumerate(recorder.epochs):
        for depth in range(4):
            if depth <= epoch:
                assert not same(groups[depth], start[depth]), f"epoch {epoch}: group {depth} did not train"
            else:
                assert same(groups[depth], start[depth]), f"epoch {epoch}: frozen group {depth} moved"
    assert freeze.unfreeze_steps == [4, 8, 12] and freeze.trainable_groups == 4

    # Encoder slots exist while frozen, all zero; afterwards each variable counted only its own steps.
    optimizer = model.optimizer
    encoder = [v.path for group in layer_groups(model)[1:] for layer in group for v in layer.weights]
    for path in encoder:
        momentum, velocity, step = recorder.slots_after_epoch_0[path]
        assert not momentum.any() and not velocity.any() and step == 0.0, path
    steps = {v.path: float(optimizer._steps[i].numpy()) for i, v in enumerate(optimizer._trainable_variables)}
    assert steps["classifier_head/logits/kernel"] == 16
    assert steps["transformer_layer_1/feedforward_output_dense/kernel"] == 12
    assert steps["token_embedding/embeddings"] == 4

    # Warmup restarts: the unfreeze step has LR 0, the step after it half of the decayed rate.
    schedule = optimizer._learning_rate
    for s in freeze.unfreeze_steps:
        assert recorder.learning_rates[s] == 0.0
        assert recorder.learning_rates[s + 1] == pytest.approx(0.5 * float(schedule.decayed(s + 1)), rel=1e-6)
    assert recorder.learning_rates[3] == pytest.approx(float(schedule.decayed(3)), rel=1e-6)  # before any restart
    assert optimizer.lr_multipliers == layerwise_lr_multipliers(model, 0.9)


def test_default_schedule_with_auto_compile_under_xla():
    """FreezeThenUnfreeze() on model.compile(jit_compile=True): one epoch head only, then all."""
    model = tiny_classifier()
    x, y = tiny_data()
    model.compile(jit_compile=True)  # optimizer "auto": make_optimizer()
    start = snapshot(model)
    recorder = Recorder()
    model.fit(x, y, batch_size=4, epochs=2, callbacks=[FreezeThenUnfreeze(), recorder], verbose=0)
    assert model.jit_compile
    after_head_epoch, after_all = recorder.epochs
    assert not same(after_head_epoch[0], start[0]) and all(same(after_head_epoch[d], start[d]) for d in (1, 2, 3))
    assert all(not same(after_all[d], start[d]) for d in range(4))
    assert model.optimizer.lr_multipliers["token_embedding/embeddings"] == 0.9**3


def test_step_unit_unfreezes_mid_epoch():
    model = tiny_classifier()
    x, y = tiny_data()
    model.compile(optimizer=make_optimizer(1e-3), jit_compile=False)
    freeze = FreezeThenUnfreeze(FreezeSchedule(head_only=3, unfreeze="all", unit="step", warmup_steps=0))
    model.fit(x, y, batch_size=4, epochs=1, callbacks=[freeze], verbose=0)
    assert freeze.unfreeze_steps == [3] and freeze.trainable_groups == 4


def test_plain_keras_optimizer_freezes_without_llrd_and_refuses_llrd():
    model = tiny_classifier()
    x, y = tiny_data()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="auto", jit_compile=False)
    with pytest.raises(ConfigError, match="need ptft_keras AdamW"):
        model.fit(x, y, batch_size=8, epochs=1, callbacks=[FreezeThenUnfreeze()], verbose=0)
    start = snapshot(model)
    recorder = Recorder()
    plain = FreezeThenUnfreeze(FreezeSchedule(lr_decay=1.0, warmup_steps=0))
    model.fit(x, y, batch_size=8, epochs=2, callbacks=[plain, recorder], verbose=0)
    assert same(recorder.epochs[0][3], start[3]) and not same(recorder.epochs[1][3], start[3])


def test_refresh_trainable_explains_a_keras_optimizer_that_cannot_grow():
    model = tiny_classifier()
    x, y = tiny_data()
    set_trainable_groups(model, 1)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # builds Adam on the head only
    set_trainable_groups(model, 4)
    with pytest.raises(ConfigError, match="cannot grow"):
        refresh_trainable(model)


def test_freeze_then_unfreeze_under_mirrored_strategy(two_cpus):
    """The optimizer grows (new slots) inside the strategy's scope; frozen weights stay put."""
    # ReductionToOneDevice: two MirroredStrategy objects in one process collide on collective-op keys.
    strategy = tf.distribute.MirroredStrategy(two_cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())
    with strategy.scope():
        model = tiny_classifier()
        set_trainable_groups(model, 1)
        model.compile(optimizer=make_optimizer(1e-2, warmup_steps=1), jit_compile=False)
        model.optimizer.build(model.trainable_variables)  # built on the head only
    x, y = tiny_data()
    start = snapshot(model)
    recorder = Recorder()
    model.fit(x, y, batch_size=8, epochs=2, callbacks=[FreezeThenUnfreeze(), recorder], verbose=0)
    assert same(recorder.epochs[0][3], start[3]) and not same(recorder.epochs[1][3], start[3])
    assert len(model.optimizer._trainable_variables) == len(model.trainable_variables)
