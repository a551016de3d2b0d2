"""The compiled train and eval steps, and the metric objects they update.

The step is a plain `tf.function` around `tf.GradientTape`: the objective is the batch mean of the
per-example loss (`losses.make_loss_fn`: cross-entropy, optionally label-smoothed and class-weighted)
plus `sum(model.losses)` (regularisation). It pulls its batch from the iterator inside the graph, and
the dataset's batch dimension is unknown, so one trace serves full and partial batches for the whole
run. With `num_micro_batches > 1` the batch is split into that many slices inside the step and their
gradients are summed before the one optimizer update (gradient accumulation: the update of the whole
batch, with the activation memory of one slice). Metrics are Keras metric objects created once
here, updated in the step, and read/reset by the loop at its own cadence.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from looptrain.train.losses import LossFn, cross_entropy

_per_example_loss = cross_entropy  # the evaluation loss: plain cross-entropy


class Trainer:
    """Owns the compiled `train_step` and the training metrics for one model and optimizer.

    `train_step(iterator)` also advances `step`, the checkpointed global step.

    Args:
        model, optimizer, step: what the step trains, updates with, and counts in.
        loss_fn: per-example training loss (`losses.make_loss_fn`); plain cross-entropy by default.
        num_micro_batches: gradient accumulation; each batch is split into this many slices.

    Attributes:
        metrics: `{"loss", "accuracy", "grad_norm"}` (the global gradient norm before any
            clipping) accumulated by `train_step` until `read_metrics(reset=True)`.
    """

    def __init__(self, model: keras.Model, optimizer: keras.optimizers.Optimizer,
                 step: tf.Variable, *, loss_fn: LossFn = cross_entropy, num_micro_batches: int = 1):
        self.model = model
        self.optimizer = optimizer
        self.step = step
        self.loss_fn, self.num_micro_batches = loss_fn, num_micro_batches
        # Slots created inside the first trace would force a second trace, and a checkpoint restore
        # needs them to exist beforehand, so build them now.
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        self.metrics = {"loss": keras.metrics.Mean(name="train_loss"),
                        "accuracy": keras.metrics.SparseCategoricalAccuracy(name="train_accuracy"),
                        "grad_norm": keras.metrics.Mean(name="train_grad_norm")}
        self.train_step = tf.function(self._train_step)

    def _train_step(self, iterator):
        """One optimisation step on the next batch of `iterator`; returns the objective."""
        x, y = next(iterator)
        variables = self.model.trainable_variables
        if self.num_micro_batches > 1:
            loss, gradients = self._accumulated_gradients(x, y)
        else:
            with tf.GradientTape() as tape:
                logits = self.model(x, training=True)
                loss = tf.reduce_mean(self.loss_fn(y, logits))
                if self.model.losses:
                    loss += tf.add_n(self.model.losses)
            gradients = _dense(tape.gradient(loss, variables))
            self.metrics["accuracy"].update_state(y, logits)
        self.metrics["grad_norm"].update_state(tf.linalg.global_norm(gradients))
        self.optimizer.apply_gradients(zip(gradients, variables))
        self.metrics["loss"].update_state(loss)
        self.step.assign_add(1)
        return loss

    def _accumulated_gradients(self, x, y):
        """The batch's objective and gradients, computed one slice of the batch at a time.

        Each slice contributes its summed example losses divided by the whole batch size, plus
        its share of the regularisation, so the slices add up to the batch's own objective and
        gradients. Slices are `ceil(batch / num_micro_batches)` examples, and a small last batch
        gets fewer slices rather than empty ones (an empty batch would give batch norm NaNs).
        """
        variables = self.model.trainable_variables
        batch = tf.shape(y)[0]
        size = (batch + self.num_micro_batches - 1) // self.num_micro_batches
        num_slices = (batch + size - 1) // size
        loss = tf.constant(0.0)
        gradients = [tf.zeros_like(v) for v in variables]
        for i in tf.range(num_slices):
            xs, ys = x[i * size:(i + 1) * size], y[i * size:(i + 1) * size]
            with tf.GradientTape() as tape:
                logits = self.model(xs, training=True)
                part = tf.reduce_sum(self.loss_fn(ys, logits)) / tf.cast(batch, tf.float32)
                if self.model.losses:
                    part += tf.add_n(self.model.losses) / tf.cast(num_slices, tf.float32)
            grads = tape.gradient(part, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            gradients = [total + g for total, g in zip(gradients, _dense(grads))]
            loss += part
            self.metrics["accuracy"].update_state(ys, logits)
        return loss, gradients

    def read_metrics(self, *, reset: bool) -> dict[str, float]:
        """The training metrics since the last reset, as Python floats."""
        values = {name: float(m.result()) for name, m in self.metrics.items()}
        if reset:
            for metric in self.metrics.values():
                metric.reset_state()
        return values


def _dense(gradients):
    """Gradients with every `IndexedSlices` (an embedding's) summed into a dense tensor.

    An embedding's gradient holds one row per occurrence of a token in the batch. Keras 3's Adam
    (its second moment) and its global-norm clipping square those rows before repeated ones are
    added up, so a token seen twice got too large an update and the clipping norm came out too
    small; summing the rows first gives the gradient's true value.
    """
    return [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in gradients]


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


def make_optimizer(*, learning_rate, clip_norm: float) -> keras.optimizers.Optimizer:
    """Adam, with Keras' own global-norm clipping when `clip_norm > 0`.

    `learning_rate` is a float or a Keras schedule (`schedules.make_learning_rate`).
    """
    return keras.optimizers.Adam(learning_rate=learning_rate, global_clipnorm=clip_norm or None)
