"""`EarlyStopping`: stop once the monitored metric has not improved for `patience` steps."""

from __future__ import annotations

from looptrain.callbacks.best import Best
from looptrain.engine.callback import Callback


class EarlyStopping(Callback):
    """Requests the stop `patience` steps after the last improvement of `best` (from step 0 on:
    a run that never improves stops after `patience` steps too). Its state is `best`'s, which
    the checkpoint holds, so a resumed run keeps counting from the same best step."""

    def __init__(self, best: Best, patience: int):
        self.best, self.patience = best, patience

    def _check(self, loop, logs) -> None:
        if self.best.consider(loop.step, logs) is not None and self.should_stop(loop.step):
            loop.request_stop("early_stopping")

    def should_stop(self, step: int) -> bool:
        return step - self.best.best_step >= self.patience

    def on_fit_begin(self, loop) -> None:
        if self.should_stop(loop.step):
            loop.request_stop("early_stopping")

    def on_eval_end(self, loop, logs) -> None:
        self._check(loop, logs)

    def on_call_end(self, loop, result) -> None:
        if not loop.stopping:
            self._check(loop, result.logs)
