"""The compiled train and eval steps, and the metric objects they update.

The step is a `tf.function` around `tf.GradientTape`: the objective is the batch mean of the
per-example loss (`losses.make_loss_fn`: cross-entropy, optionally label-smoothed and class-weighted)
plus `sum(model.losses)` (regularisation). With `num_micro_batches > 1` the batch is split into that
many slices inside the step and their gradients are summed before the one optimizer update (gradient
accumulation: the update of the whole batch, with the activation memory of one slice). Metrics are
Keras metric objects created once here, updated in the step, and read/reset by the loop at its own
cadence.

Speed comes from three choices, all measured by `make bench`:
- `train_loop(iterator, num_steps)` runs up to `num_steps` steps in ONE call (a `tf.while_loop` that
  pulls each batch from the iterator inside the graph), so Python runs once per call, not per step.
  `num_steps` is a tensor and the batch dimension is unknown, so one trace serves every call.
- The update itself (forward, backward, optimizer) can be compiled with XLA (`jit_compile`); the
  iterator stays outside it, as XLA cannot compile iterator ops.
- Logits and loss are computed in float32 even when the layers compute in float16/bfloat16 (mixed
  precision); float16 also gets dynamic loss scaling from `make_optimizer`.

A step whose loss or gradients are not finite is counted in `nonfinite_steps` (its step and loss
recorded) and kept out of the metrics. By default (`stop_on_nonfinite`) `train_loop` ends right
after it: its update has been applied, as holding it back costs a tiny model a fifth of its speed,
and the loop outside stops the run without saving anything after it (no NaN weights reach a
checkpoint). With `train.on_nan = "skip"` it changes nothing (no weight or optimizer slot) and the
loop carries on.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from looptrain.errors import ConfigError
from looptrain.train.losses import LossFn, cross_entropy

_per_example_loss = cross_entropy  # the evaluation loss: plain cross-entropy


class Trainer:
    """Owns the compiled training steps and the training metrics for one model and optimizer.

    Every step advances `step`, the checkpointed global step, whether or not the batch's update was
    applied.

    Args:
        model, optimizer, step: what the step trains, updates with, and counts in.
        loss_fn: per-example training loss (`losses.make_loss_fn`); plain cross-entropy by default.
        num_micro_batches: gradient accumulation; each batch is split into this many slices.
        jit_compile: compile the update with XLA.
        stop_on_nonfinite: `train_loop` ends right after a non-finite step, whose update is then
            not held back (see the module docstring); else such steps are skipped and it goes on.
        strategy: a `tf.distribute` strategy whose replicas share each step, or None.

    Attributes:
        metrics: `{"loss", "accuracy", "grad_norm"}` (the global gradient norm before any
            clipping) accumulated by the steps until `read_metrics(reset=True)`, non-finite
            steps left out.
        nonfinite_steps: checkpointed count of steps whose loss or gradients were not finite;
            `last_nonfinite` holds the step and loss of the latest one.
    """

    def __init__(self, model: keras.Model, optimizer: keras.optimizers.Optimizer,
                 step: tf.Variable, *, loss_fn: LossFn = cross_entropy, num_micro_batches: int = 1,
                 jit_compile: bool = False, stop_on_nonfinite: bool = True,
                 strategy: tf.distribute.Strategy | None = None):
        self.model = model
        self.optimizer = optimizer
        self.step = step
        self.strategy = strategy
        self.loss_fn, self.num_micro_batches = loss_fn, num_micro_batches
        self.stop_on_nonfinite = stop_on_nonfinite
        # Slots created inside the first trace would force a second trace, and a checkpoint restore
        # needs them to exist beforehand, so build them now.
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        # Keras metric objects, updated once per compiled call from sums the steps carry through the
        # loop: six metric-variable updates per step cost a tiny model ~12% of its speed.
        self.metrics = {"loss": keras.metrics.Mean(name="train_loss"),
                        "accuracy": keras.metrics.Mean(name="train_accuracy"),
                        "grad_norm": keras.metrics.Mean(name="train_grad_norm")}
        self.nonfinite_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="nonfinite_steps")
        self.last_nonfinite = {"step": tf.Variable(0, dtype=tf.int64, trainable=False),
                               "loss": tf.Variable(0.0, dtype=tf.float32, trainable=False)}
        # Stopping at a non-finite step (the default) lets the loop apply every update unguarded
        # (see `_loop_to_first_nonfinite`), except under loss scaling, whose optimizer expects
        # overflowing gradients now and then, and distributed (`_replica_update` guards).
        self._unguarded = (stop_on_nonfinite and strategy is None
                           and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer))
        if strategy is None:
            self._update = tf.function(self._update_fn, jit_compile=jit_compile)
            self._apply = tf.function(self._apply_fn, jit_compile=jit_compile)
        else:
            if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
                raise ConfigError("train.precision = mixed_float16 (loss scaling) is not supported "
                                  "with a distribution strategy; use mixed_bfloat16 or float32")
            # The replicas' gradients are summed once, by `_replica_update`, before the
            # non-finite check and the norm; the optimizer must not sum them again.
            optimizer._all_reduce_sum_gradients = list
            self._update = self._distributed_update
        self.train_step = tf.function(self._train_step)
        self.train_loop = tf.function(self._train_loop)

    def _train_step(self, iterator):
        """One optimisation step on the next batch of `iterator`; returns the objective."""
        sums = self._update(*next(iterator))
        self._record(sums)
        return sums[0]

    def _train_loop(self, iterator, num_steps):
        """Up to `num_steps` steps in one call; returns how many ran.

        Fewer run only when a step is not finite and `stop_on_nonfinite` is set: the loop ends right
        after that step, so the loop outside sees the step it happened at.
        """
        if self._unguarded:
            return self._loop_to_first_nonfinite(iterator, num_steps)
        start = self.nonfinite_steps.read_value()

        def more(i, sums):
            going = i < num_steps
            if self.stop_on_nonfinite:
                going = going & tf.equal(self.nonfinite_steps, start)
            return going

        def body(i, sums):
            return i + 1, sums + self._update(*next(iterator))  # (x, y) or, distributed, (x, y, n)

        count, sums = tf.while_loop(more, body, (tf.constant(0, num_steps.dtype), tf.zeros([5])))
        self._record(sums)
        return count

    def _loop_to_first_nonfinite(self, iterator, num_steps):
        """`_train_loop` when it stops at a non-finite step: updates applied unguarded.

        Nothing after a non-finite step is ever saved (the loop outside stops the run and points
        at the last checkpoint), so that step's update need not be held back. The guarded update
        (a tf.cond around the optimizer, whose branch takes every weight and slot through a
        switch) and per-step counter updates cost the tiny MLP of `make bench` a fifth of its
        speed; here a step adds only its values to the sums, and the check is one `is_finite`.
        Each iteration adds the previous step's values, so a non-finite step's never enter the
        metrics.
        """
        def more(i, sums, last):
            return (i < num_steps) & tf.math.is_finite(tf.reduce_sum(last))

        def body(i, sums, last):
            return i + 1, sums + last, self._apply(*next(iterator))

        zeros = tf.zeros([5])
        count, sums, last = tf.while_loop(more, body, (tf.constant(0, num_steps.dtype), zeros, zeros))
        finite = tf.math.is_finite(tf.reduce_sum(last))
        self._count_skipped(last[0], tf.logical_not(finite),
                            self.step + tf.cast(count, tf.int64))
        self.step.assign_add(tf.cast(count, tf.int64))
        self._record(tf.where(finite, sums + last, sums))
        return count

    def _apply_fn(self, x, y):
        """One update, applied whatever its values; returns `[loss, correct, examples, grad_norm,
        1]` (a non-finite loss or gradient makes the sum of these non-finite)."""
        loss, correct, gradients = self._gradients(x, y)
        self.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables))
        return _step_sums(loss, correct, tf.size(y), tf.linalg.global_norm(gradients))

    def _record(self, sums):
        """Adds steps' sums `[loss, correct, examples, grad_norm, updates]` to the metrics."""
        loss, correct, examples, norm, updates = tf.unstack(sums)
        self.metrics["loss"].update_state(tf.math.divide_no_nan(loss, updates), updates)
        self.metrics["accuracy"].update_state(tf.math.divide_no_nan(correct, examples), examples)
        self.metrics["grad_norm"].update_state(tf.math.divide_no_nan(norm, updates), updates)

    def _update_fn(self, x, y):
        """One update; returns `[loss, correct, examples, grad_norm, 1]`, all zeros if skipped."""
        loss, correct, gradients = self._gradients(x, y)
        norm, finite = self._norm_and_finite(loss, gradients)

        def apply():
            self.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables))
            return _step_sums(loss, correct, tf.size(y), norm)

        def skip():
            self._count_skipped(loss, tf.constant(True), tf.cast(self.step, tf.int64) + 1)
            return tf.zeros([5])

        sums = tf.cond(finite, apply, skip)
        self.step.assign_add(1)
        return sums

    def _gradients(self, x, y, batch_size=None, replicas: int = 1):
        """The objective (float32), correct predictions and dense gradients of one batch.

        Distributed, `x, y` are one replica's slice of a global batch of `batch_size` examples:
        the slice's losses are divided by `batch_size` and it gets `1 / replicas` of the
        regularisation, so the replicas' values add up to the global batch's.
        """
        variables = self.model.trainable_variables
        if self.num_micro_batches > 1:
            return self._accumulated_gradients(x, y, batch_size, replicas)
        with tf.GradientTape() as tape:
            logits = tf.cast(self.model(x, training=True), tf.float32)
            if batch_size is None:
                loss = tf.reduce_mean(self.loss_fn(y, logits))
            else:
                loss = tf.reduce_sum(self.loss_fn(y, logits)) / tf.cast(batch_size, tf.float32)
            if self.model.losses:
                loss += tf.cast(tf.add_n(self.model.losses), tf.float32) / replicas
            scaled = self.optimizer.scale_loss(loss)  # loss scaling under mixed_float16
        return loss, _correct(y, logits), _dense(tape.gradient(scaled, variables))

    def _norm_and_finite(self, loss, gradients):
        """The global gradient norm (unscaled) and whether loss and gradients are finite."""
        norm = tf.linalg.global_norm(gradients)
        finite = tf.math.is_finite(loss)
        if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
            # It expects overflowing gradients now and then: it skips those updates itself and
            # lowers the scale, so only a non-finite loss counts here.
            norm /= tf.cast(self.optimizer.dynamic_scale, norm.dtype)
        else:
            finite &= tf.math.is_finite(norm)
        return norm, finite

    def _count_skipped(self, loss, skipped, step):
        """Counts `step` as non-finite, with its loss, if `skipped` (without a cond)."""
        self.nonfinite_steps.assign_add(tf.cast(skipped, tf.int64))
        last = self.last_nonfinite
        last["step"].assign(tf.where(skipped, step, last["step"]))
        last["loss"].assign(tf.where(skipped, loss, last["loss"]))

    def _distributed_update(self, x, y, batch_size):
        """`_update_fn` under the strategy: per-replica slices in, the same sums out."""
        results = self.strategy.run(self._replica_update, args=(x, y, batch_size))
        # Every replica returns the same all-reduced values: take the first replica's.
        sums, loss = (self.strategy.experimental_local_results(r)[0] for r in results)
        self._count_skipped(loss, tf.equal(sums[4], 0.0), tf.cast(self.step, tf.int64) + 1)
        self.step.assign_add(1)
        return sums

    def _replica_update(self, x, y, batch_size):
        """One replica's part of a step: its gradients, summed over all replicas, then applied."""
        context = tf.distribute.get_replica_context()
        loss, correct, gradients = self._gradients(x, y, batch_size, context.num_replicas_in_sync)
        present = [i for i, g in enumerate(gradients) if g is not None]  # None: unconnected
        loss, correct, *summed = context.all_reduce(
            tf.distribute.ReduceOp.SUM, [loss, correct, *(gradients[i] for i in present)])
        for i, g in zip(present, summed):
            gradients[i] = g
        norm, finite = self._norm_and_finite(loss, gradients)
        variables = self.model.trainable_variables

        def apply_in_cross_replica_context(strategy, finite, gradients):
            # The optimizer's update uses merge_call, which a cond in replica context cannot hold:
            # the cond runs here, on the (identical) decision of the first replica.
            def apply():
                strategy.extended.call_for_each_replica(
                    lambda g: self.optimizer.apply_gradients(zip(g, variables)), args=(gradients,))
                return tf.constant(True)

            tf.cond(strategy.experimental_local_results(finite)[0], apply, lambda: tf.constant(False))

        context.merge_call(apply_in_cross_replica_context, args=(finite, gradients))
        sums = tf.where(finite, _step_sums(loss, correct, batch_size, norm), tf.zeros([5]))
        return sums, loss

    def _accumulated_gradients(self, x, y, batch_size=None, replicas: int = 1):
        """The batch's objective, gradients and correct predictions, one slice at a time.

        Each slice contributes its summed example losses divided by the whole batch size, plus
        its share of the regularisation, so the slices add up to the batch's own objective and
        gradients. Slices are `ceil(batch / num_micro_batches)` examples, and a small last batch
        gets fewer slices rather than empty ones (an empty batch would give batch norm NaNs).
        """
        variables = self.model.trainable_variables
        batch = tf.shape(y)[0]
        total = tf.cast(batch if batch_size is None else batch_size, tf.float32)
        # At least 1: a replica's slice of a small last batch can be empty.
        size = tf.maximum((batch + self.num_micro_batches - 1) // self.num_micro_batches, 1)
        num_slices = (batch + size - 1) // size
        loss, correct = tf.constant(0.0), tf.constant(0.0)
        gradients = [tf.zeros_like(v) for v in variables]
        for i in tf.range(num_slices):
            xs, ys = x[i * size:(i + 1) * size], y[i * size:(i + 1) * size]
            with tf.GradientTape() as tape:
                logits = tf.cast(self.model(xs, training=True), tf.float32)
                part = tf.reduce_sum(self.loss_fn(ys, logits)) / total
                if self.model.losses:
                    part += tf.cast(tf.add_n(self.model.losses), tf.float32) / tf.cast(
                        num_slices * replicas, tf.float32)
                scaled = self.optimizer.scale_loss(part)
            grads = tape.gradient(scaled, variables,
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
            gradients = [summed + g for summed, g in zip(gradients, _dense(grads))]
            loss += part
            correct += _correct(ys, logits)
        return loss, correct, gradients

    def read_metrics(self, *, reset: bool) -> dict[str, float]:
        """The training metrics since the last reset, as Python floats."""
        values = {name: float(value) for name, value in self._results().items()}
        if reset:
            self._reset()
        return values

    def metric_results(self) -> dict[str, tf.Tensor]:
        """The training metrics since the last reset, as tensors (callable inside a tf.function)."""
        return {name: metric.result() for name, metric in self.metrics.items()}

    def reset_metrics(self) -> None:
        """Starts a new metrics interval (callable inside a tf.function)."""
        for metric in self.metrics.values():
            metric.reset_state()

    @tf.function
    def _results(self):  # compiled: one call instead of an eager op per metric
        return self.metric_results()

    @tf.function
    def _reset(self):
        self.reset_metrics()


def _step_sums(loss, correct, examples, norm):
    """One applied step's entry in the sums the loop carries (see `_record`):
    `[loss, correct, examples, grad_norm, 1]`, float32."""
    return tf.stack([loss, correct, tf.cast(examples, tf.float32), norm, 1.0])


def _correct(labels, logits):
    """How many of the batch's predictions (arg-max) equal the labels, as a float32 count."""
    hits = tf.equal(tf.argmax(logits, axis=-1, output_type=labels.dtype), labels)
    return tf.reduce_sum(tf.cast(hits, tf.float32))


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


def make_optimizer(*, learning_rate, clip_norm: float,
                   precision: str = "float32") -> keras.optimizers.Optimizer:
    """Adam, with Keras' own global-norm clipping when `clip_norm > 0`.

    `learning_rate` is a float or a Keras schedule (`schedules.make_learning_rate`). Under
    `mixed_float16` the optimizer is wrapped in a `LossScaleOptimizer` (dynamic loss scaling), as
    float16 gradients would otherwise underflow; bfloat16 has float32's range and needs none.
    """
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate, global_clipnorm=clip_norm or None)
    if precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
