"""`TrainCall`: one compiled call of the training loop, and everything read or written at its end.

A call runs the steps up to the loop's next event (`Trainer.train_loop`). When that event is a log
step, the same call also reads the interval's metrics and the learning rate, writes them as
TensorBoard scalars, resets the metrics and, on histogram steps, writes the histogram probe's
summaries. Python then handles a few numbers per call.

Why one call: every separate `tf.function` call or `.numpy()` read costs Python a few hundred
microseconds. Reading metrics, learning rate and counters, writing scalars and histograms took
about ten of those per log step, which cost the tiny MLP benchmark (`make bench`, ~35 ms per
100-step call) 10-20 % of its speed.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from looptrain.train.inspect import HistogramProbe
from looptrain.train.step import Trainer
from looptrain.train.summaries import SummaryWriter

# The scalars written at each log step, in the order the call returns them.
TRAIN_SCALARS = ("train/loss", "train/accuracy", "train/grad_norm", "train/learning_rate",
                 "train/nonfinite_steps")


@dataclass(frozen=True)
class CallResult:
    """What one `TrainCall` did."""

    steps: int  # steps run: as asked, or fewer when a non-finite step stopped the call
    step: int  # the global step after the call
    nonfinite_steps: int  # the run's count of non-finite steps so far
    scalars: dict[str, float] | None  # `TRAIN_SCALARS` as written at a log step, else None


class TrainCall:
    """Runs `trainer`'s steps and the end-of-call logging into `writer` as one compiled call.

    Args:
        trainer: whose `train_loop`, metrics, step and counters the call uses.
        writer: where the log steps' scalars (and the histograms) go.
        probe: the histogram probe, or None when histograms are off.
    """

    def __init__(self, trainer: Trainer, writer: SummaryWriter, probe: HistogramProbe | None = None):
        self.trainer, self.writer, self.probe = trainer, writer, probe
        # Flags and counts are tensors, so one trace serves every call.
        self.function = tf.function(self._call)

    def __call__(self, iterator, num_steps: int, *, log: bool, histograms: bool = False) -> CallResult:
        """Runs `num_steps` steps; `log` and `histograms` say whether their end is a log step and
        a histogram step (ignored if a non-finite step cuts the call short)."""
        steps, step, nonfinite, values, logged = self.function(
            iterator, tf.constant(num_steps), tf.constant(log), tf.constant(histograms))
        scalars = dict(zip(TRAIN_SCALARS, values.numpy().tolist())) if logged.numpy() else None
        return CallResult(int(steps), int(step), int(nonfinite), scalars)

    def _call(self, iterator, num_steps, log, histograms):
        trainer = self.trainer
        steps = trainer.train_loop(iterator, num_steps)
        step = trainer.step.read_value()
        nonfinite = trainer.nonfinite_steps.read_value()
        # A call a non-finite step cut short did not reach its event: it logs nothing.
        complete = tf.equal(steps, num_steps)

        def read_write_reset():
            metrics = trainer.metric_results()
            values = [metrics["loss"], metrics["accuracy"], metrics["grad_norm"],
                      trainer.optimizer.learning_rate, nonfinite]
            values = tf.stack([tf.cast(v, tf.float32) for v in values])
            self.writer.record("scalar", step, dict(zip(TRAIN_SCALARS, tf.unstack(values))))
            trainer.reset_metrics()
            return values

        logged = log & complete
        values = tf.cond(logged, read_write_reset, lambda: tf.zeros([len(TRAIN_SCALARS)]))
        if self.probe is not None:
            def write_histograms():
                self.probe.record(self.writer, step)
                return tf.constant(True)

            tf.cond(histograms & complete, write_histograms, lambda: tf.constant(False))
        return steps, step, nonfinite, values, logged
