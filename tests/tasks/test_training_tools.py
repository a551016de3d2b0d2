"""Training tools: learning-rate schedules, gradient clipping, gradient accumulation, L1/L2 penalties,
label smoothing and class weights — each checked by value, and logged through the loop."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import looptrain as lt
from looptrain import config as config_lib
from looptrain.config import ModelConfig, TrainConfig
from looptrain.errors import ConfigError
from looptrain.models import build_model, create_model
from looptrain.tasks.losses import class_weights, cross_entropy, make_loss_fn
from looptrain.app.experiment import train_and_evaluate
from looptrain.tasks.schedules import make_learning_rate
from looptrain.tasks.classification import make_optimizer
from conftest import given_task, make_call, step_losses
from summaries import read_scalars

V, C, L = 40, 4, 10


def lr_at(schedule, step):
    return float(schedule(step)) if callable(schedule) else schedule


def test_schedules_follow_their_closed_forms():
    assert make_learning_rate(TrainConfig(learning_rate=0.1)) == 0.1
    exp = make_learning_rate(TrainConfig(learning_rate=0.1, lr_schedule="exponential",
                                         lr_decay_steps=10, lr_decay_rate=0.5))
    for step in (0, 5, 10, 30):
        assert lr_at(exp, step) == pytest.approx(0.1 * 0.5 ** (step / 10))
    cos = make_learning_rate(TrainConfig(learning_rate=0.1, lr_schedule="cosine", lr_decay_steps=20,
                                         warmup_steps=10))
    # Linear warm-up 0 -> 0.1 over 10 steps, then half a cosine down to 0 over 20 steps.
    for step, expected in ((0, 0.0), (5, 0.05), (10, 0.1), (20, 0.05), (30, 0.0), (50, 0.0)):
        assert lr_at(cos, step) == pytest.approx(expected, abs=1e-7)
    assert lr_at(cos, 15) == pytest.approx(0.1 * 0.5 * (1 + np.cos(np.pi * 5 / 20)))
    plain = make_learning_rate(TrainConfig(learning_rate=0.1, lr_schedule="cosine", lr_decay_steps=20))
    assert lr_at(plain, 0) == pytest.approx(0.1) and lr_at(plain, 10) == pytest.approx(0.05)


@pytest.mark.parametrize("fields, message", [
    ({"lr_schedule": "cosine"}, r"'train.lr_schedule' is 'cosine', which needs 'train.lr_decay_steps' > 0"),
    ({"lr_schedule": "exponential"}, r"needs 'train.lr_decay_steps' > 0 \(steps per decay"),
    ({"warmup_steps": 5}, r"'train.warmup_steps' is 5, but warm-up comes with 'train.lr_schedule' = "
                          r"'cosine'"),
])
def test_inconsistent_schedule_settings_are_config_errors(fields, message):
    with pytest.raises(ConfigError, match=message):
        make_learning_rate(TrainConfig(**fields))


@pytest.mark.parametrize("key, value, message", [
    ("train.class_weights", "1,,2", "must be '', 'balanced' or one non-negative number per class"),
    ("train.class_weights", "auto", "must be '', 'balanced'"),
    ("model.kernel_sizes", "3;4", "must be comma-separated positive integers like '3,4,5'"),
    ("model.kernel_sizes", "0,3", "must be comma-separated positive integers"),
    ("train.lr_schedule", "linear", "must be one of ['constant', 'exponential', 'cosine']"),
    ("data.embedded", "audio", "must be one of ['text', 'images']"),
])
def test_new_string_keys_are_checked(key, value, message):
    with pytest.raises(ConfigError, match=re.escape(f"'{key}' {message}")):
        config_lib.Config().replace({key: value}, source="--set")


def test_learning_rate_and_gradient_norm_are_logged_at_every_step(tiny_config, tmp_path, quiet_display):
    config = tiny_config.replace({"train.lr_schedule": "cosine", "train.warmup_steps": 10,
                                  "train.lr_decay_steps": 20, "train.max_steps": 30,
                                  "train.eval_every": 30, "train.checkpoint_every": 30})
    train_and_evaluate(config, tmp_path / "run", display=quiet_display)
    scalars = read_scalars(tmp_path / "run" / "logs")
    schedule = make_learning_rate(config.train)
    logged = scalars["train/learning_rate"]
    assert [s for s, _ in logged] == list(range(5, 31, 5))
    for step, value in logged:  # the rate the optimizer applies at that step, not the peak
        assert value == pytest.approx(lr_at(schedule, step), abs=1e-7)
    assert all(v > 0 for _, v in scalars["train/grad_norm"])


def _model(name="textcnn", **fields):
    keras.utils.set_random_seed(3)
    cfg = ModelConfig(name=name, **{"embedding_dim": 5, "num_filters": 6, "kernel_size": 3,
                                    "hidden_dim": 7, "dropout": 0.0, **fields})
    return build_model(create_model(cfg, vocab_size=V, num_classes=C), L)


def _batch(n=10, seed=0):
    rng = np.random.default_rng(seed)
    # Few distinct tokens: every batch repeats them, as real text does.
    return rng.integers(1, 8, size=(n, L)).astype(np.int32), rng.integers(0, C, size=n).astype(np.int32)


def _train(model, optimizer, batches, **task_args):
    task = given_task(model, optimizer, **task_args)
    dataset = tf.data.Dataset.from_tensor_slices(tuple(np.stack(a) for a in zip(*batches)))
    call, iterator = make_call(task, dataset)
    losses = step_losses(call, iterator, len(batches))
    return call, losses, [v.numpy() for v in model.trainable_variables]


@pytest.mark.parametrize("name, num_micro_batches", [("textcnn", 2), ("textcnn", 3), ("fasttext", 4)])
def test_gradient_accumulation_equals_the_large_batch(name, num_micro_batches):
    # Plain SGD: its update is the gradient itself, so a wrongly scaled sum would show (Adam's
    # first update would hide it). Every per-example term and the penalty are on.
    loss_fn = make_loss_fn(label_smoothing=0.1, weights=np.array([1.0, 2.0, 0.5, 1.5], np.float32))
    batches = [_batch(10, seed) for seed in range(3)]  # 10 = 4+4+2 in 3 slices, 3+3+3+1 in 4
    fields = {"l2": 1e-3, "ngram_buckets": 30}
    _, big_losses, big = _train(_model(name, **fields), keras.optimizers.SGD(0.5), batches, loss_fn=loss_fn)
    call, losses, accumulated = _train(_model(name, **fields), keras.optimizers.SGD(0.5), batches,
                                       loss_fn=loss_fn, num_micro_batches=num_micro_batches)
    np.testing.assert_allclose(losses, big_losses, rtol=1e-6)
    for a, b in zip(accumulated, big):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(big[0], _model(name, **fields).trainable_variables[0].numpy())  # it trained
    assert call.function.experimental_get_tracing_count() == 1


def test_accumulation_with_clipping_and_adam_matches_too():
    batches = [_batch(12, seed) for seed in range(3)]
    _, _, big = _train(_model(), make_optimizer(learning_rate=0.05, clip_norm=0.1), batches)
    _, _, accumulated = _train(_model(), make_optimizer(learning_rate=0.05, clip_norm=0.1), batches,
                               num_micro_batches=4)
    for a, b in zip(accumulated, big):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def _dense_gradients(model, x, y):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(cross_entropy(y, model(x, training=True)))
    return [tf.convert_to_tensor(g) for g in tape.gradient(loss, model.trainable_variables)]


def test_clipping_and_adam_see_the_true_gradient_of_repeated_tokens():
    # A token repeated in a batch gives its embedding row several gradient pieces. Keras' Adam and
    # global-norm clipping would square the pieces before adding them; the step sums them first.
    x, y = _batch(8)
    reference = _model()
    grads = _dense_gradients(reference, x, y)
    norm = float(tf.linalg.global_norm(grads))
    clipped, _ = tf.clip_by_global_norm(grads, 0.5 * norm)  # clipping is active
    adam = keras.optimizers.Adam(0.01)
    adam.apply_gradients(zip(clipped, reference.trainable_variables))
    task = given_task(_model(), make_optimizer(learning_rate=0.01, clip_norm=0.5 * norm))
    call, iterator = make_call(task, tf.data.Dataset.from_tensors((x, y)))
    logs = call(iterator, 1, log=True).logs
    for a, b in zip(task.model.trainable_variables, reference.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-7)
    assert logs["train/grad_norm"] == pytest.approx(norm, rel=1e-5)


def test_l1_l2_penalties_enter_the_objective_by_value():
    l1, l2 = 1e-3, 1e-2
    model = _model("textcnn", l1=l1, l2=l2)
    kernels = [model.conv.kernel, model.hidden.kernel, model.classifier.kernel]
    penalty = sum(l1 * np.abs(k.numpy()).sum() + l2 * np.square(k.numpy()).sum() for k in kernels)
    assert float(tf.add_n(model.losses)) == pytest.approx(penalty, rel=1e-5)  # kernels only
    x, y = _batch(8)
    ce = float(tf.reduce_mean(cross_entropy(y, model(x, training=False))))
    _, losses, _ = _train(model, keras.optimizers.SGD(0.0), [(x, y)])
    assert losses[0] == pytest.approx(ce + penalty, rel=1e-5) and penalty > 0.01
    rnn = _model("textrnn", hidden_dim=4, num_layers=1, l2=l2)  # recurrent kernels are penalised too
    expected = sum(l2 * np.square(k.numpy()).sum() for k in (
        rnn.rnn_0.cell.kernel, rnn.rnn_0.cell.recurrent_kernel, rnn.hidden.kernel, rnn.classifier.kernel))
    assert float(tf.add_n(rnn.losses)) == pytest.approx(expected, rel=1e-5)


def test_label_smoothing_and_class_weights_by_value():
    logits = tf.constant([[2.0, 0.5, -1.0, 0.0], [0.1, 0.2, 0.3, 3.0]])
    labels = tf.constant([0, 3])
    s = 0.2
    log_p = tf.nn.log_softmax(logits).numpy()
    targets = np.full((2, C), s / C) + (1 - s) * np.eye(C)[[0, 3]]
    np.testing.assert_allclose(make_loss_fn(label_smoothing=s)(labels, logits).numpy(),
                               -(targets * log_p).sum(1), rtol=1e-6)
    weights = np.array([2.0, 1.0, 1.0, 0.5], np.float32)
    np.testing.assert_allclose(make_loss_fn(weights=weights)(labels, logits).numpy(),
                               [-2.0 * log_p[0, 0], -0.5 * log_p[1, 3]], rtol=1e-6)


def test_class_weight_settings():
    y = np.array([0, 0, 0, 1, 2, 2])
    assert class_weights("", y, 3) is None
    # "balanced": n / (classes * count), so each class weighs in as if they were equally frequent.
    np.testing.assert_allclose(class_weights("balanced", y, 4), [6 / 12, 6 / 4, 6 / 8, 1.0])
    np.testing.assert_allclose(class_weights("1,2.5,.5", y, 3), [1.0, 2.5, 0.5])
    with pytest.raises(ConfigError, match="'train.class_weights' has 2 values but the data has 3 classes"):
        class_weights("1,2", y, 3)


@pytest.mark.parametrize("shapes", [[(3, 2)], [(3, 2), (2,), (4, 4)]])
def test_apply_gradients_returns_the_global_norm_of_the_gradients_it_applies(shapes):
    # Its own sum of halved squares (one op fewer than tf.linalg.global_norm): the same value, for
    # one gradient and for several, an unconnected (None) one left out.
    rng = np.random.default_rng(0)
    variables = [tf.Variable(rng.normal(size=s).astype("float32")) for s in shapes]
    gradients = [tf.constant(rng.normal(size=s).astype("float32") * 3) for s in shapes]
    unconnected = tf.Variable(tf.zeros([2]))
    norm = lt.apply_gradients(keras.optimizers.SGD(0.1), [*gradients, None], [*variables, unconnected])
    assert float(norm) == pytest.approx(float(tf.linalg.global_norm(gradients)), rel=1e-6)
    assert float(norm) == pytest.approx(np.sqrt(sum(np.sum(g.numpy() ** 2) for g in gradients)), rel=1e-5)
