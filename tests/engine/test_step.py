"""The built-in classifier's step through the engine's compiled call: training, tracing, the
objective, evaluation, the non-finite policy, XLA and mixed precision."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import looptrain as lt
from conftest import given_task, make_call, step_losses
from looptrain.app.experiment import make_classifier
from looptrain.data.corpus import load_corpus
from looptrain.data.pipeline import make_eval_dataset, make_train_dataset
from looptrain.engine.evaluation import Evaluator
from looptrain.models import build_model
from looptrain.models.text_cnn import TextCNN
from looptrain.tasks.classification import make_optimizer


def _setup(config, num_epochs=4, **call_options):
    corpus = load_corpus(config.data.data_dir, seq_length=config.data.seq_length,
                         vocab_size=config.data.vocab_size, splits=("train", "val"))
    keras.utils.set_random_seed(config.train.seed)
    task = make_classifier(config.replace({"train.clip_norm": 5.0}), corpus)
    dataset = make_train_dataset(corpus.splits["train"], batch_size=config.train.batch_size, seed=1,
                                 num_epochs=num_epochs)
    call, iterator = make_call(task, dataset, **call_options)
    return corpus, task, call, iterator


def test_loss_falls_and_step_is_traced_once(tiny_config):
    corpus, task, call, iterator = _setup(tiny_config)
    per_epoch = -(-len(corpus.splits["train"][1]) // tiny_config.train.batch_size)
    num_steps = 4 * per_epoch  # every epoch ends with a partial batch (250 = 15 * 16 + 10)
    losses = step_losses(call, iterator, num_steps)
    assert np.mean(losses[-8:]) < 0.8 * np.mean(losses[:8])
    assert call.function.experimental_get_tracing_count() == 1
    assert int(call.step.numpy()) == num_steps
    assert int(task.optimizer.iterations.numpy()) == num_steps


def test_values_are_averaged_over_the_steps_between_log_steps(tiny_config):
    _, _, call, iterator = _setup(tiny_config)
    single = [call(iterator, 1, log=True).logs for _ in range(3)]
    _, _, looped, iterator = _setup(tiny_config)
    assert looped(iterator, 2, log=False).logs is None  # not a log step: nothing read
    logs = looped(iterator, 1, log=True).logs  # the mean of all three steps since the last log
    for key in ("train/loss", "train/accuracy", "train/grad_norm"):
        assert logs[key] == pytest.approx(np.mean([s[key] for s in single]), rel=1e-5), key
    assert looped(iterator, 1, log=True).logs["train/loss"] != logs["train/loss"]  # reset


class Penalised(TextCNN):
    """TextCNN with an L2 penalty on the output kernel added through `add_loss`."""

    def call(self, token_ids, training=False):
        logits = super().call(token_ids, training=training)
        self.add_loss(0.5 * tf.reduce_sum(tf.square(self.classifier.kernel)))
        return logits


def test_model_losses_enter_the_objective(tiny_config):
    cfg = tiny_config.replace({"model.dropout": 0.0})
    corpus = load_corpus(cfg.data.data_dir, seq_length=cfg.data.seq_length,
                         vocab_size=cfg.data.vocab_size, splits=("train",))
    x, y = (a[:16] for a in corpus.splits["train"])
    model = build_model(Penalised(vocab_size=len(corpus.vocab), num_classes=len(corpus.labels),
                                   embedding_dim=8, num_filters=16, kernel_size=3, hidden_dim=16,
                                   dropout=0.0), cfg.data.seq_length)
    penalty = 0.5 * float(tf.reduce_sum(tf.square(model.classifier.kernel)))
    ce = float(tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=y, logits=model(x, training=False))))
    task = given_task(model, make_optimizer(learning_rate=1e-3, clip_norm=0.0))
    call, iterator = make_call(task, tf.data.Dataset.from_tensors((x, y)))
    (loss,) = step_losses(call, iterator, 1)
    assert penalty > 0.01
    np.testing.assert_allclose(loss, ce + penalty, rtol=1e-5)


def test_evaluate_is_example_weighted_and_traced_once(tiny_config):
    corpus, task, _, _ = _setup(tiny_config)
    x, y = corpus.splits["val"]
    dataset = make_eval_dataset((x, y), batch_size=7)  # 60 = 8*7 + 4: a partial batch
    evaluator = Evaluator(task, dataset.element_spec)
    got = evaluator(dataset)
    logits = task.model(x, training=False)
    expected_loss = tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
    expected_acc = np.mean(np.argmax(logits.numpy(), 1) == y)
    np.testing.assert_allclose(got["loss"], float(expected_loss), rtol=1e-5)
    np.testing.assert_allclose(got["accuracy"], expected_acc, rtol=1e-6)
    evaluator(dataset)
    assert evaluator.run.experimental_get_tracing_count() == 1


def _weights(model):
    return [v.numpy() for v in model.variables]


def test_one_call_of_many_steps_traced_once_equals_single_steps(tiny_config):
    _, looped, call, iterator = _setup(tiny_config)
    for num_steps in (3, 1, 5, 7):  # any count, one trace: the count is a tensor
        assert call(iterator, num_steps, log=False).steps == num_steps
    assert call.function.experimental_get_tracing_count() == 1
    assert int(call.step.numpy()) == 16 and int(looped.optimizer.iterations.numpy()) == 16
    looped_logs = call(iterator, 0, log=True).logs  # summed per call instead of per step

    _, stepped, single, iterator = _setup(tiny_config)
    for _ in range(16):
        single(iterator, 1, log=False)
    for a, b in zip(_weights(looped.model), _weights(stepped.model)):
        np.testing.assert_array_equal(a, b)
    for key, value in single(iterator, 0, log=True).logs.items():
        assert value == pytest.approx(looped_logs[key], rel=1e-6), key


def test_calls_read_the_iterator_they_are_given_through_one_trace(tiny_config):
    corpus = load_corpus(tiny_config.data.data_dir, seq_length=tiny_config.data.seq_length,
                         vocab_size=tiny_config.data.vocab_size, splits=("train",))
    task = make_classifier(tiny_config, corpus)
    dataset = make_train_dataset(corpus.splits["train"], batch_size=8, seed=1, num_epochs=1)
    batches = [y.numpy() for _, y in dataset.take(6)]
    call, first = make_call(task, dataset)
    assert call(first, 2, log=False).steps == 2
    second = iter(dataset)  # e.g. the data restarted: the compiled call is looked up again
    assert call(second, 3, log=False).steps == 3
    assert call(first, 1, log=False).steps == 1
    np.testing.assert_array_equal(next(first)[1].numpy(), batches[3])
    np.testing.assert_array_equal(next(second)[1].numpy(), batches[3])
    assert call.function.experimental_get_tracing_count() == 1


def _failing_loss(at_call: int, where: str):
    """Cross-entropy whose `at_call`-th call has a NaN loss ("loss") or a finite loss with infinite
    gradients ("gradient"); it counts its calls in a variable, so it works inside the loop."""
    calls = tf.Variable(0, dtype=tf.int64)

    def loss(labels, logits):
        calls.assign_add(1)
        bad = tf.equal(calls, at_call)
        values = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        if where == "loss":
            return values * tf.where(bad, float("nan"), 1.0)
        factor = tf.where(bad, float("inf"), 1.0)

        @tf.custom_gradient
        def scaled(x):
            return x, lambda dy: dy * factor
        return scaled(values)
    return loss


def _poisoned(config, where, **call_options):
    corpus = load_corpus(config.data.data_dir, seq_length=config.data.seq_length,
                         vocab_size=config.data.vocab_size, splits=("train",))
    task = make_classifier(config, corpus)
    task.build()
    task.build = lambda: None  # keep the poisoned loss below
    task.loss_fn = _failing_loss(4, where)
    dataset = make_train_dataset(corpus.splits["train"], batch_size=16, seed=1, num_epochs=2)
    call, iterator = make_call(task, dataset, **call_options)
    return task, call, iterator


@pytest.mark.parametrize("where", ["loss", "gradient"])
@pytest.mark.parametrize("asked", [7, 4])  # the non-finite step (4) inside the call, or its last
def test_the_call_stops_right_after_a_nonfinite_step_which_stays_out_of_the_means(tiny_config,
                                                                                  where, asked):
    _, call, iterator = _poisoned(tiny_config, where)
    call(iterator, 1, log=False)  # a finite step before the call that is cut short
    result = call(iterator, asked - 1, log=True)
    assert result.steps == 3 and result.logs is None  # cut short, or not whole: no log
    assert int(call.step.numpy()) == 4 and int(call.nonfinite_steps.numpy()) == 1
    assert int(call.last_nonfinite["step"].numpy()) == 4
    recorded = call.last_nonfinite_values()  # its non-finite values: a finite loss is not one
    assert np.isnan(recorded["loss"]) if where == "loss" else "loss" not in recorded
    assert not np.isfinite(recorded["grad_norm"])
    # The run stops there: the cut-short call adds nothing to the means, the call before it does.
    assert float(call._count.numpy()) == 1
    logs = call(iterator, 0, log=True).logs
    assert all(np.isfinite(v) for v in logs.values())


@pytest.mark.parametrize("where", ["loss", "gradient"])
def test_on_nan_skip_leaves_out_the_nonfinite_update_and_goes_on(tiny_config, where):
    task, call, iterator = _poisoned(tiny_config, where, skip_nonfinite=True)
    assert call(iterator, 7, log=False).steps == 7
    assert int(call.nonfinite_steps.numpy()) == 1 and int(call.step.numpy()) == 7
    assert int(task.optimizer.iterations.numpy()) == 6  # no update at step 4
    assert all(np.isfinite(v.numpy()).all() for v in task.model.variables)
    assert float(call._count.numpy()) == 6


def test_an_interval_whose_every_step_was_skipped_logs_no_mean(tiny_config):
    # A mean of nothing is not 0 (a perfect loss in the display and TensorBoard): NaN, which the
    # metrics file writes as null.
    _, call, iterator = _poisoned(tiny_config, "loss", skip_nonfinite=True)
    logs = call(iterator, 3, log=True).logs
    assert all(np.isfinite(v) for v in logs.values())
    logs = call(iterator, 1, log=True).logs  # step 4, skipped, alone in its interval
    assert logs["train/nonfinite_steps"] == 1
    assert all(np.isnan(logs[f"train/{name}"]) for name in ("loss", "accuracy", "grad_norm"))
    assert all(np.isfinite(v) for v in call(iterator, 2, log=True).logs.values())


def test_xla_update_trains_like_the_plain_one(tiny_config):
    config = tiny_config.replace({"model.dropout": 0.0})
    _, plain, call, iterator = _setup(config)
    _, compiled, jit_call, jit_iterator = _setup(config, jit_compile=True)
    assert jit_call._update._jit_compile and not hasattr(call._update, "_jit_compile")
    plain_losses = step_losses(call, iterator, 5)
    jit_losses = step_losses(jit_call, jit_iterator, 5)
    # XLA fuses differently, so not bit-identical; the same training within float tolerance.
    np.testing.assert_allclose(jit_losses, plain_losses, rtol=1e-4)
    for a, b in zip(_weights(compiled.model), _weights(plain.model)):
        np.testing.assert_allclose(a, b, atol=1e-4)
    dataset = make_eval_dataset(_setup(config)[0].splits["val"], batch_size=16)
    values = Evaluator(compiled, dataset.element_spec, jit_compile=True)(dataset)
    assert np.isfinite(values["loss"])


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_computes_in_half_and_keeps_float32_variables(tiny_config, precision,
                                                                     tmp_path, quiet_display):
    from looptrain.app.experiment import train_and_evaluate

    config = tiny_config.replace({"train.precision": precision, "train.max_steps": 40,
                                  "train.eval_every": 40})
    result = train_and_evaluate(config, tmp_path / "run", display=quiet_display)
    # It learns (chance is 0.1), though float16's loss scaling first skips a few overflowing steps.
    assert result.step == 40 and result.best_value > 0.15
    ckpt = tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints"))
    weights = {n: tf.train.load_variable(ckpt, n) for n, _ in tf.train.list_variables(ckpt)
               if n.startswith("task/model/") and n.endswith("VARIABLE_VALUE")}
    assert weights and all(w.dtype == np.float32 and np.isfinite(w).all() for w in weights.values())
    if precision == "mixed_float16":  # the loss-scale optimizer's state is checkpointed
        assert any("dynamic_scale" in n for n, _ in tf.train.list_variables(ckpt))
    assert keras.config.dtype_policy().name == "float32"  # the global policy is left as it was
    if precision == "mixed_float16":
        resumed = train_and_evaluate(config.replace({"train.max_steps": 45}), tmp_path / "run",
                                     resume=True, display=quiet_display)
        assert resumed.steps_run == 5


def test_auto_xla_is_on_where_it_compiles_and_helps():
    from looptrain.config import Config
    from looptrain.data.corpus import Corpus
    from looptrain.task import use_jit

    def resolved(overrides, kind="text", accelerator=True):
        config = Config().replace(overrides)
        corpus = Corpus(vocab=None if kind == "arrays" else ["<PAD>", "a", "b"], labels=["x", "y"],
                        splits={}, shape=(8, 8, 1) if kind == "arrays" else (20,))
        task = make_classifier(config, corpus)
        task.model = task.create_model()
        return use_jit(config.train.jit_compile, task, accelerator=accelerator)

    assert resolved({}) is True  # the reference TextCNN on a GPU
    assert resolved({}, accelerator=False) is False  # XLA is slower on CPU (make bench)
    assert resolved({"train.jit_compile": "on"}, accelerator=False) is True
    assert resolved({"train.jit_compile": "off"}) is False
    assert resolved({"model.name": "textrnn"}) is False  # masked recurrences
    assert resolved({"model.name": "textrnn", "train.jit_compile": "on"}) is True
    assert resolved({"data.bucket_window": 8}) is False  # a shape per length
    assert resolved({"train.num_micro_batches": 2}) is False  # slices of data-dependent size
    assert resolved({"model.name": "convnet"}, kind="arrays") is False  # MaxPool gradient


def test_the_histogram_probe_takes_the_gradients_of_the_training_objective(tiny_config):
    """Label smoothing, class weights and the model's losses included: the probe's gradients are
    those of the objective the step trains on (with dropout off), computed here independently."""
    from looptrain.callbacks.histograms import Histograms
    from looptrain.task import trainable_variables

    cfg = tiny_config.replace({"model.dropout": 0.0, "model.l2": 1e-3, "train.label_smoothing": 0.2,
                               "train.class_weights": "balanced"})
    corpus = load_corpus(cfg.data.data_dir, seq_length=cfg.data.seq_length,
                         vocab_size=cfg.data.vocab_size, splits=("train",))
    task = make_classifier(cfg, corpus)
    task.build()
    x, y = (tf.constant(a[:16]) for a in corpus.splits["train"])
    counts = np.bincount(corpus.splits["train"][1], minlength=len(corpus.labels))
    weights = tf.constant(counts.sum() / (len(counts) * counts), tf.float32)
    variables = trainable_variables(task)
    with tf.GradientTape() as tape:
        logits = task.model(x, training=False)
        targets = tf.one_hot(y, len(corpus.labels)) * 0.8 + 0.2 / len(corpus.labels)
        per_example = -tf.reduce_sum(targets * tf.nn.log_softmax(logits), axis=-1)
        loss = tf.reduce_mean(per_example * tf.gather(weights, y)) + tf.add_n(task.model.losses)
    expected = [tf.convert_to_tensor(g) for g in tape.gradient(loss, variables)]
    probe = Histograms(task, writer=None, every=1, probe_batch=(x, y))
    for got, want in zip(probe.gradients((x, y)), expected):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-7)


def test_the_calls_count_the_examples_of_partial_batches_exactly(tmp_path):
    from user_tasks import quiet, regression_class

    class Examples(lt.Callback):
        def __init__(self):
            self.count = 0

        def on_call_end(self, loop, result):
            self.count += result.examples

    task = regression_class(tmp_path / "mine")(width=8)
    x, y = task.train_data()
    counter = Examples()
    batch_size = 48 if len(y) % 48 else 47  # a partial last batch in every epoch
    assert len(y) % batch_size
    lt.fit(task, train=(x, y), val=task.val_data(), run_dir=tmp_path / "run", num_epochs=3,
           batch_size=batch_size, log_every=5, display=quiet(), callbacks=[counter])
    assert counter.count == 3 * len(y)


class _NormlessTask(lt.Task):
    """A user's step through `lt.apply_gradients` that returns its loss only (not the norm): its
    4th step has a finite loss and infinite gradients, which only the reported norm shows."""

    def __init__(self):
        super().__init__()
        self.lt, self.calls = lt, tf.Variable(0, dtype=tf.int64)

    def build(self):
        self.model = keras.Sequential([keras.layers.Dense(3)])
        self.model(tf.zeros([1, 4]))
        self.optimizer = keras.optimizers.SGD(0.1)
        self.optimizer.build(self.model.trainable_variables)

    def train_step(self, batch):
        x, y = batch
        self.calls.assign_add(1)
        factor = tf.where(tf.equal(self.calls, 4), float("inf"), 1.0)

        @tf.custom_gradient
        def poisoned(t):
            return t, lambda dy: dy * factor

        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            logits = poisoned(self.model(x))
            loss = self.lt.batch_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        self.lt.apply_gradients(self.optimizer, tape.gradient(loss, variables), variables)
        return {"loss": loss}


@pytest.mark.parametrize("skip", [False, True])
def test_a_nonfinite_gradient_norm_counts_although_the_step_returns_only_finite_values(skip):
    rng = np.random.default_rng(0)
    data = (rng.normal(size=(64, 4)).astype(np.float32), rng.integers(0, 3, 64).astype(np.int32))
    task = _NormlessTask()
    call, iterator = make_call(task, make_train_dataset(data, batch_size=8, seed=0, num_epochs=2),
                               skip_nonfinite=skip)
    result = call(iterator, 6, log=False)
    assert result.nonfinite_steps == 1 and int(call.last_nonfinite["step"].numpy()) == 4
    assert call.last_nonfinite_values() == {}  # only its gradient was non-finite
    # "stop" ends the call right after the step; "skip" holds its update back and goes on.
    assert result.steps == (6 if skip else 4)
    weights_finite = all(np.isfinite(v.numpy()).all() for v in task.model.variables)
    assert weights_finite == skip


def test_a_stopped_user_run_names_the_lt_fit_call_that_skips_and_that_call_goes_on(tmp_path):
    from looptrain.errors import TrainingDiverged
    from user_tasks import quiet

    rng = np.random.default_rng(0)
    data = (rng.normal(size=(64, 4)).astype(np.float32), rng.integers(0, 3, 64).astype(np.int32))
    run, options = tmp_path / "run", dict(batch_size=8, max_steps=6, log_every=1, display=quiet())
    with pytest.raises(TrainingDiverged) as stopped:
        lt.fit(_NormlessTask(), train=data, run_dir=run, **options)
    hint = f"lt.fit(..., run_dir={str(run)!r}, resume=True, on_nan=\"skip\")"
    assert str(stopped.value).endswith(f"or continue this one with {hint}")
    # The hint, as written, continues the run past the step that stopped it.
    result = lt.fit(_NormlessTask(), train=data, run_dir=run, resume=True, on_nan="skip", **options)
    assert result.step == 6
