"""`Evaluation`: the task's metrics on the validation data every `every` steps and at the end."""

from __future__ import annotations

from looptrain.engine.callback import Callback, Periodic
from looptrain.engine.evaluation import scalars


class Evaluation(Callback):
    """Runs `evaluator` on `dataset` when due and when the run ends, then tells every callback
    (`on_eval_end`) the `val/<name>` values.

    Args:
        evaluator: an `engine.evaluation.Evaluator` of the task.
        dataset: the validation dataset (cached after its first pass).
        every: steps between evaluations.
        agreement: `distribute.Agreement`: values averaged over workers, so that every worker
            takes the same decisions (early stopping) from them.
        split: the key prefix.
    """

    def __init__(self, evaluator, dataset, every: int, agreement, *, split: str = "val"):
        self.evaluator, self.dataset, self.cadence = evaluator, dataset, Periodic(every)
        self.agreement, self.split = agreement, split
        self._done_at: int | None = None

    def on_call_end(self, loop, result) -> None:
        if (self.cadence.due(loop.step) or loop.stopping) and self._done_at != loop.step:
            self._done_at = loop.step
            # The weights callbacks choose for evaluation (EMA's averages), also while the others
            # act on its values (the best copy saves them).
            with loop.callbacks.evaluation_weights():
                logs = self.agreement.mean(scalars(self.evaluator(self.dataset), self.split))
                loop.callbacks.dispatch("on_eval_end", loop, logs)
