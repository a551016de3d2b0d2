"""`Scalars`: the `train/...` means at every log step (written inside the compiled call) and the
`val/...` values of every evaluation, into TensorBoard."""

from __future__ import annotations

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

    def in_call(self, step, logs) -> None:
        self.writer.record("scalar", step, logs)

    def on_eval_end(self, loop, logs) -> None:
        values = dict(logs)
        if self.best is not None and self.best.consider(loop.step, logs) is not None:
            split, _, name = self.best.monitor.partition("/")
            values[f"{split}/best_{name}"] = self.best.best_value
        self.writer.scalars(loop.step, values)
        self.writer.flush()
