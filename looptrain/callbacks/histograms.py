"""`Histograms`: weight and gradient histograms (and gradient norms) every N steps, in TensorBoard.

Weights are every trainable variable of the task's Keras layers. Gradients come from the task's
`objective(batch, training=False)` (when it defines one) on a fixed probe batch (the first
training batch in file order), computed in its own compiled function called only on histogram
steps inside the training call, so ordinary steps pay nothing and the step's trace is untouched.
The probe runs with dropout off: with it on, it would draw from the dropout seed generators,
and switching histograms on would change what training does.
"""

from __future__ import annotations

import math

import tensorflow as tf

from looptrain.engine.autograph import user_call
from looptrain.engine.call import InCallHook
from looptrain.engine.callback import Callback, Periodic
from looptrain.task import trainable_variables


# Tag prefixes in `logs/train`. TensorBoard groups tags by their first component and sorts the
# groups by name: the per-layer norms sit in one "norms" group, after `accuracy`, `loss`,
# `learning_rate`, out of their way.
WEIGHTS, GRADIENTS, NORMS = "weights/", "gradients/", "norms/gradient/"


def histogram_cadence(every: int, slices: int, total: int | None) -> int:
    """Steps between histograms: `every`, or for a run of `total` steps the smallest multiple of
    it that gives at most `slices` of them (`slices` 0 or an unknown total: `every`)."""
    if not every or not slices or not total:
        return every
    return every * max(1, math.ceil(total / (slices * every)))


class Histograms(Callback, InCallHook):
    """Writes the histograms `weights/<path>` and `gradients/<path>` and the scalars
    `norms/gradient/<path>` (and `norms/gradient/global`) into `logs/train` every `every` steps.

    Args:
        task: the built task (its `objective`, if any, gives the gradients).
        writer: the run's summary writer.
        every: steps between histograms (0: never).
        probe_batch: the fixed batch the gradients are taken on.
    """

    def __init__(self, task, writer, every: int, probe_batch=None):
        # Its cadence ends a call where it is due: otherwise histograms fell only where a call
        # happened to end (every 500 steps for every = 250 with log_every = 100).
        self.writer, self.periodic = writer, Periodic(every)
        self.cadence = self.periodic
        self.variables = trainable_variables(task)
        self.objective = getattr(task, "objective", None)
        self.probe_batch = probe_batch
        self.gradients = tf.function(self._gradients, autograph=False)

    def due(self, step: int, total: int) -> bool:
        return self.periodic.due(step)

    def _gradients(self, batch):
        with tf.GradientTape() as tape:
            loss = user_call(self.objective, batch, training=False)
            loss = loss[0] if isinstance(loss, tuple) else loss
        gradients = tape.gradient(loss, self.variables)
        # An embedding's gradient is sparse (IndexedSlices): densify for the histogram.
        return [tf.convert_to_tensor(g) if g is not None else tf.zeros_like(v)
                for g, v in zip(gradients, self.variables)]

    @tf.autograph.experimental.do_not_convert  # graph code as it is (engine/autograph.py)
    def in_call(self, step, logs) -> None:
        gradients = None
        if self.objective is not None and self.probe_batch is not None:
            gradients = self.gradients(self.probe_batch)
        # Tags take the enclosing name scope (a tf.cond branch's is "cond/"): start at the top.
        with self.writer.as_default("train"), tf.name_scope(""):
            for i, variable in enumerate(self.variables):
                _histogram(f"{WEIGHTS}{variable.path}", variable, step)
                if gradients is not None:
                    _histogram(f"{GRADIENTS}{variable.path}", gradients[i], step)
                    tf.summary.scalar(f"{NORMS}{variable.path}",
                                      tf.norm(gradients[i]), step=step)
            if gradients is not None:
                tf.summary.scalar(f"{NORMS}global", tf.linalg.global_norm(gradients), step=step)


def _histogram(tag: str, data, step, bucket_count: int = 30) -> None:
    """`tf.summary.histogram` without its two `tf.cond`s per histogram, whose tracing (in the
    first compiled call, inside the hook's own cond) delayed a textcnn run's first step by ~1.3 s
    for its 16 histograms: the same buckets, TensorBoard's layout (rows `[left, right, count]`;
    all of a single value in the last bucket), straight-line ops. The data is a weight or a
    gradient: never empty."""
    from tensorboard.plugins.histogram import metadata  # (TensorBoard's, imported when traced)

    tf.summary.write(tag, _buckets(data, bucket_count), step=step,
                     metadata=metadata.create_summary_metadata(None, None))


def _buckets(data, bucket_count: int) -> tf.Tensor:
    # TensorBoard's own arithmetic (its one-hot count runs on every device and deterministically),
    # with `tf.where` instead of its conds.
    data = tf.reshape(tf.cast(data, tf.float64), [-1])
    low, high = tf.reduce_min(data), tf.reduce_max(data)
    spread = high > low
    width = tf.where(spread, (high - low) / bucket_count, 1.0)
    indices = tf.minimum(tf.cast(tf.floor((data - low) / width), tf.int32), bucket_count - 1)
    indices = tf.where(spread, indices, bucket_count - 1)
    counts = tf.reduce_sum(tf.one_hot(indices, bucket_count, dtype=tf.float64), axis=0)
    # The last edge is the maximum itself, not linspace's rounding of it (as TensorBoard's).
    edges = tf.concat([tf.linspace(low, high, bucket_count + 1)[:-1], [high]], 0)
    return tf.stack([edges[:-1], edges[1:], counts], axis=1)
