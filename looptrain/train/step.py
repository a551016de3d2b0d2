"""The compiled train and eval steps, and the metric objects they update.

The step is a plain `tf.function` around `tf.GradientTape`: the objective is the mean sparse softmax
cross-entropy of the batch plus `sum(model.losses)` (regularisation). It pulls its batch from the
iterator inside the graph, and the dataset's batch dimension is unknown, so one trace serves full and
partial batches for the whole run. Metrics are Keras metric objects created once here, updated in the
step, and read/reset by the loop at its own cadence.

A step whose loss or gradients are not finite changes nothing: no weight, optimizer slot or metric
is updated, only `nonfinite_steps` is incremented. The loop then stops (and never saves NaN weights)
or, with `train.on_nan = "skip"`, carries on with the next batch.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def _per_example_loss(labels, logits):
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)


class Trainer:
    """Owns the compiled `train_step` and the training metrics for one model and optimizer.

    `train_step(iterator)` also advances `step`, the checkpointed global step, whether or not the
    batch's update was applied.

    Attributes:
        metrics: `{"loss", "accuracy"}` accumulated by `train_step` until `read_metrics(reset=True)`.
        nonfinite_steps: checkpointed count of steps whose loss or gradients were not finite (and
            whose update was therefore skipped).
    """

    def __init__(self, model: keras.Model, optimizer: keras.optimizers.Optimizer,
                 step: tf.Variable):
        self.model = model
        self.optimizer = optimizer
        self.step = step
        # Slots created inside the first trace would force a second trace, and a checkpoint restore
        # needs them to exist beforehand, so build them now.
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        self.metrics = {"loss": keras.metrics.Mean(name="train_loss"),
                        "accuracy": keras.metrics.SparseCategoricalAccuracy(name="train_accuracy")}
        self.nonfinite_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="nonfinite_steps")
        self.train_step = tf.function(self._train_step)

    def _train_step(self, iterator):
        """One optimisation step on the next batch of `iterator`; returns the objective."""
        x, y = next(iterator)
        with tf.GradientTape() as tape:
            logits = self.model(x, training=True)
            loss = tf.reduce_mean(_per_example_loss(y, logits))
            if self.model.losses:
                loss += tf.add_n(self.model.losses)
        variables = self.model.trainable_variables
        gradients = tape.gradient(loss, variables)
        finite = tf.math.is_finite(loss) & tf.math.is_finite(tf.linalg.global_norm(gradients))

        def apply():
            self.optimizer.apply_gradients(zip(gradients, variables))
            self.metrics["loss"].update_state(loss)
            self.metrics["accuracy"].update_state(y, logits)
            return tf.constant(True)

        def skip():
            self.nonfinite_steps.assign_add(1)
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

    def __init__(self, model: keras.Model):
        self.model = model
        self.metrics = {"loss": keras.metrics.Mean(name="eval_loss"),
                        "accuracy": keras.metrics.SparseCategoricalAccuracy(name="eval_accuracy")}
        self.evaluate = tf.function(self._evaluate)

    def _evaluate(self, dataset):
        """Example-weighted loss and accuracy over a whole dataset, in one graph loop."""
        for metric in self.metrics.values():
            metric.reset_state()
        for x, y in dataset:
            logits = self.model(x, training=False)
            self.metrics["loss"].update_state(_per_example_loss(y, logits))
            self.metrics["accuracy"].update_state(y, logits)
        return {name: metric.result() for name, metric in self.metrics.items()}


def make_optimizer(*, learning_rate: float, clip_norm: float) -> keras.optimizers.Optimizer:
    """Adam, with Keras' own global-norm clipping when `clip_norm > 0`."""
    return keras.optimizers.Adam(learning_rate=learning_rate, global_clipnorm=clip_norm or None)
