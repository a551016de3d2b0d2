"""`MetricsFile`: every scalar the loop reports, also through a `MetricWriter` other tools read.

By default `RUN/metrics.jsonl` (`engine.writers.JsonlWriter`); the loop's own instance writes to
MLflow as well when `train.mlflow` is on. It writes what TensorBoard gets from the loop: the
`train/...` means (and learning rates, `train/nonfinite_steps`) at every log step, one record per
step, and each evaluation's `val/...` values with `val/best_<name>` of the monitor. On resume it
first removes the records of steps after the restored checkpoint, as the TensorBoard events are
(`engine.summaries.drop_events_after`). The gradient norms written with histograms
(`train.histogram_every`) stay in TensorBoard only.
"""

from __future__ import annotations

from looptrain.callbacks.best import Best
from looptrain.callbacks.scalars import with_best
from looptrain.engine.callback import Callback
from looptrain.engine.writers import METRICS_FILE, JsonlWriter, MetricWriter


class MetricsFile(Callback):
    """Writes the loop's scalars to `writer`.

    Args:
        writer: any `MetricWriter` (default: `RUN/metrics.jsonl`); closed at the end of `fit`.
        best: the run's `Best` tracker, for `<split>/best_<name>` after evaluations.
    """

    def __init__(self, writer: MetricWriter | None = None, *, best: Best | None = None):
        self.writer, self.best = writer, best

    def on_fit_begin(self, loop) -> None:
        if self.writer is None:
            self.writer = JsonlWriter(loop.run_path / METRICS_FILE)
        dropped = self.writer.rewind(loop.step)
        if dropped:
            loop.log(f"removed {dropped} metric records of steps after {loop.step} (they are being "
                     f"run again)")

    def on_call_end(self, loop, result) -> None:
        if result.logs is not None:
            self.writer.write_scalars(loop.step, result.logs)

    def on_eval_end(self, loop, logs) -> None:
        self.writer.write_scalars(loop.step, with_best(logs, self.best, loop.step))

    def on_fit_end(self, loop, result) -> None:
        if self.writer is not None:  # None when set-up failed before `on_fit_begin`
            self.writer.close()
