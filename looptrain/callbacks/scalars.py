"""`Scalars`: the `train/...` means at every log step (written inside the compiled call) and the
`val/...` values of every evaluation, into TensorBoard."""

from __future__ import annotations

import tensorflow as tf

from looptrain.callbacks.best import Best
from looptrain.engine.call import InCallHook
from looptrain.engine.callback import Callback, Periodic


class Scalars(Callback, InCallHook):
    """Writes scalars through `writer` (`engine.summaries.SummaryWriter`, one event file per split).

    Args:
        writer: the run's summary writer.
        log_every: the log-step cadence (the call writes its means there, and at the end).
        best: when given, `<split>/best_<name>` of its monitor is written after each evaluation.
    """

    def __init__(self, writer, log_every: int, best: Best | None = None):
        self.writer, self.periodic, self.best = writer, Periodic(log_every, at_end=True), best

    def due(self, step: int, total: int) -> bool:
        return self.periodic.due(step, total)

    @tf.autograph.experimental.do_not_convert  # graph code as it is (engine/autograph.py)
    def in_call(self, step, logs) -> None:
        self.writer.record("scalar", step, logs)

    def on_eval_end(self, loop, logs) -> None:
        self.writer.scalars(loop.step, with_best(logs, self.best, loop.step))
        self.writer.flush()


def with_best(logs: dict[str, float], best: Best | None, step: int) -> dict[str, float]:
    """An evaluation's values plus `<split>/best_<name>` of `best`'s monitor when they hold it."""
    values = dict(logs)
    if best is not None and best.consider(step, logs) is not None:
        split, _, name = best.monitor.partition("/")
        values[f"{split}/best_{name}"] = best.best_value
    return values
