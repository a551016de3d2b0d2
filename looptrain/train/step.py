"""The compiled train and eval steps, and the metric objects they update.

The step is a `tf.function` around `tf.GradientTape`: the objective is the mean sparse softmax
cross-entropy of the batch plus `sum(model.losses)` (regularisation). Metrics are Keras metric objects
created once here, updated in the step, and read/reset by the loop at its own cadence.

Speed comes from three choices, all measured by `make bench`:
- `train_loop(iterator, num_steps)` runs up to `num_steps` steps in ONE call (a `tf.while_loop` that
  pulls each batch from the iterator inside the graph), so Python runs once per call, not per step.
  `num_steps` is a tensor and the batch dimension is unknown, so one trace serves every call.
- The update itself (forward, backward, optimizer) can be compiled with XLA (`jit_compile`); the
  iterator stays outside it, as XLA cannot compile iterator ops.
- Logits and loss are computed in float32 even when the layers compute in float16/bfloat16 (mixed
  precision); float16 also gets dynamic loss scaling from `make_optimizer`.

A step whose loss or gradients are not finite changes nothing: no weight, optimizer slot or metric
is updated, only `nonfinite_steps` is incremented (and the step and loss recorded). The loop then
stops (and never saves NaN weights) or, with `train.on_nan = "skip"`, carries on with the next batch.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def _per_example_loss(labels, logits):
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)


class Trainer:
    """Owns the compiled training steps and the training metrics for one model and optimizer.

    Every step advances `step`, the checkpointed global step, whether or not the batch's update was
    applied.

    Args:
        model, optimizer, step: what the step trains, updates with, and counts in.
        jit_compile: compile the update with XLA.
        stop_on_nonfinite: `train_loop` ends right after a non-finite step (else it goes on).

    Attributes:
        metrics: `{"loss", "accuracy"}` accumulated by the steps until `read_metrics(reset=True)`.
        nonfinite_steps: checkpointed count of steps whose loss or gradients were not finite (and
            whose update was therefore skipped); `last_nonfinite` holds the step and loss of the
            latest one.
    """

    def __init__(self, model: keras.Model, optimizer: keras.optimizers.Optimizer,
                 step: tf.Variable, *, jit_compile: bool = False, stop_on_nonfinite: bool = True):
        self.model = model
        self.optimizer = optimizer
        self.step = step
        self.stop_on_nonfinite = stop_on_nonfinite
        # Slots created inside the first trace would force a second trace, and a checkpoint restore
        # needs them to exist beforehand, so build them now.
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        self.metrics = {"loss": keras.metrics.Mean(name="train_loss"),
                        "accuracy": keras.metrics.SparseCategoricalAccuracy(name="train_accuracy")}
        self.nonfinite_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="nonfinite_steps")
        self.last_nonfinite = {"step": tf.Variable(0, dtype=tf.int64, trainable=False),
                               "loss": tf.Variable(0.0, dtype=tf.float32, trainable=False)}
        self._update = tf.function(self._update_fn, jit_compile=jit_compile)
        self.train_step = tf.function(self._train_step)
        self.train_loop = tf.function(self._train_loop)

    def _train_step(self, iterator):
        """One optimisation step on the next batch of `iterator`; returns the objective."""
        x, y = next(iterator)
        return self._update(x, y)

    def _train_loop(self, iterator, num_steps):
        """Up to `num_steps` steps in one call; returns how many ran.

        Fewer run only when a step is not finite and `stop_on_nonfinite` is set: the loop ends right
        after that step, so the loop outside sees the step it happened at.
        """
        start = self.nonfinite_steps.read_value()

        def more(i):
            going = i < num_steps
            if self.stop_on_nonfinite:
                going = going & tf.equal(self.nonfinite_steps, start)
            return going

        def body(i):
            self._train_step(iterator)
            return (i + 1,)

        return tf.while_loop(more, body, (tf.constant(0, num_steps.dtype),))[0]

    def _update_fn(self, x, y):
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            logits = tf.cast(self.model(x, training=True), tf.float32)
            loss = tf.reduce_mean(_per_example_loss(y, logits))
            if self.model.losses:
                loss += tf.cast(tf.add_n(self.model.losses), tf.float32)
            scaled = self.optimizer.scale_loss(loss)  # loss scaling under mixed_float16, else as is
        gradients = tape.gradient(scaled, variables)
        finite = tf.math.is_finite(loss)
        if not isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
            # (A loss-scale optimizer expects overflowing gradients now and then: it skips those
            # updates itself and lowers the scale, so only a non-finite loss counts there.)
            finite &= tf.math.is_finite(tf.linalg.global_norm(gradients))

        def apply():
            self.optimizer.apply_gradients(zip(gradients, variables))
            self.metrics["loss"].update_state(loss)
            self.metrics["accuracy"].update_state(y, logits)
            return tf.constant(True)

        def skip():
            self.nonfinite_steps.assign_add(1)
            self.last_nonfinite["step"].assign(tf.cast(self.step, tf.int64) + 1)
            self.last_nonfinite["loss"].assign(loss)
            return tf.constant(False)

        tf.cond(finite, apply, skip)
        self.step.assign_add(1)
        return loss

    def read_metrics(self, *, reset: bool) -> dict[str, float]:
        """The training metrics since the last reset, as Python floats."""
        values = {name: float(m.result()) for name, m in self.metrics.items()}
        if reset:
            for metric in self.metrics.values():
                metric.reset_state()
        return values


class Evaluator:
    """Owns the compiled `evaluate(dataset)` and its metrics for one model."""

    def __init__(self, model: keras.Model, *, jit_compile: bool = False):
        self.model = model
        self.metrics = {"loss": keras.metrics.Mean(name="eval_loss"),
                        "accuracy": keras.metrics.SparseCategoricalAccuracy(name="eval_accuracy")}
        self._batch = tf.function(self._batch_fn, jit_compile=jit_compile)
        self.evaluate = tf.function(self._evaluate)

    def _batch_fn(self, x, y):
        """Updates the metrics with one batch; returns its float32 logits (for subclasses)."""
        logits = tf.cast(self.model(x, training=False), tf.float32)
        self.metrics["loss"].update_state(_per_example_loss(y, logits))
        self.metrics["accuracy"].update_state(y, logits)
        return logits

    def _evaluate(self, dataset):
        """Example-weighted loss and accuracy over a whole dataset, in one graph loop."""
        for metric in self.metrics.values():
            metric.reset_state()
        for x, y in dataset:
            self._batch(x, y)
        return {name: metric.result() for name, metric in self.metrics.items()}


def make_optimizer(*, learning_rate: float, clip_norm: float,
                   precision: str = "float32") -> keras.optimizers.Optimizer:
    """Adam, with Keras' own global-norm clipping when `clip_norm > 0`.

    Under `mixed_float16` it is wrapped in a `LossScaleOptimizer` (dynamic loss scaling), as
    float16 gradients would otherwise underflow; bfloat16 has float32's range and needs none.
    """
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate, global_clipnorm=clip_norm or None)
    if precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
