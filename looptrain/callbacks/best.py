"""`Best`: the best value of a monitored metric so far, and `BestCopy`, which keeps its weights.

`Best` is a persisted, reusable condition (Orbit's `NewBestMetric`): its value and step are
variables in the checkpoint, so a resumed run compares against the same best, and every callback
that asks about one step (the best copy, early stopping, the display) gets the same answer.
"""

from __future__ import annotations

import math

import tensorflow as tf

from looptrain.engine.callback import Callback


def infer_mode(monitor: str) -> str:
    """"max" for accuracy-like names (Keras' rule, plus F1, AUC, precision and recall), else "min"."""
    name = monitor.rsplit("/", 1)[-1].lower()
    return "max" if any(k in name for k in ("acc", "f1", "auc", "precision", "recall")) else "min"


class Best(tf.Module):
    """Tracks the best value of `monitor` (a `split/name` key) in `mode` ("min" or "max").

    Args:
        monitor: the metric, e.g. `val/accuracy` or `train/loss`.
        mode: "min", "max", or None to infer it from the name.
        min_delta: how much better a value must be to count as an improvement.
    """

    def __init__(self, monitor: str, mode: str | None = None, *, min_delta: float = 0.0):
        super().__init__(name="best")
        self.monitor, self.mode = monitor, mode or infer_mode(monitor)
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {self.mode!r}")
        self.min_delta = min_delta
        worst = math.inf if self.mode == "min" else -math.inf
        self.value = tf.Variable(worst, dtype=tf.float64, trainable=False)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self._answers: dict[int, bool] = {}

    def consider(self, step: int, logs: dict[str, float] | None) -> bool | None:
        """Whether `logs` at `step` improve on the best (None when they do not hold `monitor`).

        The first call for a step updates the best; later calls for it give the same answer.
        """
        if not logs or self.monitor not in logs:
            return None
        if step not in self._answers:
            value, best = logs[self.monitor], float(self.value.numpy())
            better = (value < best - self.min_delta if self.mode == "min"
                      else value > best + self.min_delta)
            if better and math.isfinite(value):
                self.value.assign(value)
                self.step.assign(step)
            self._answers = {step: bool(better and math.isfinite(value))}
        return self._answers[step]

    @property
    def best_value(self) -> float:
        return float(self.value.numpy())

    @property
    def best_step(self) -> int:
        return int(self.step.numpy())


class BestCopy(Callback):
    """Writes the task's weights (without optimizers) to `RUN/best` whenever `best` improves: the
    weights evaluation uses (`Callback.evaluation_weights`, e.g. EMA's averages)."""

    def __init__(self, best: Best, checkpoints):
        self.best, self.checkpoints = best, checkpoints

    def _maybe_save(self, loop, logs) -> None:
        if self.best.consider(loop.step, logs):
            values = {key.replace("/", "_"): value for key, value in logs.items()}
            with loop.callbacks.evaluation_weights():  # e.g. EMA's averages
                self.checkpoints.save_best(loop.step, {"monitor": self.best.monitor, **values})

    def on_eval_end(self, loop, logs) -> None:
        self._maybe_save(loop, logs)

    def on_call_end(self, loop, result) -> None:
        self._maybe_save(loop, result.logs)
