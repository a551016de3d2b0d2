"""`Checkpointing`: the training checkpoint every `every` steps, at the end, and before a stop."""

from __future__ import annotations

import tensorflow as tf

from looptrain.engine.callback import Callback, Periodic
from looptrain.errors import TrainingDiverged


class Checkpointing(Callback):
    """Saves `checkpoints` (an `engine.checkpoint.Checkpoints`) when due, when the run ends and
    when it is stopped early; never a state with non-finite weights.

    Args:
        checkpoints: the run's checkpoints.
        every: steps between checkpoints.
        variables: the weights checked for finiteness before each save (a plain step's infinite
            gradient can leave non-finite weights behind a finite loss).
    """

    def __init__(self, checkpoints, every: int, variables=()):
        self.checkpoints, self.cadence = checkpoints, Periodic(every)
        self._variables = list(variables)
        self._finite = tf.function(lambda: tf.reduce_all(
            [tf.reduce_all(tf.math.is_finite(v)) for v in self._variables]),
            autograph=False) if self._variables else None

    def on_fit_begin(self, loop) -> None:
        loop.last_checkpoint, loop.saved_step = self.checkpoints.latest, loop.step

    def save(self, loop) -> None:
        """Writes a checkpoint at `loop.step` unless one is there already."""
        if loop.saved_step == loop.step and loop.last_checkpoint is not None:
            return
        if self._finite is not None and not bool(self._finite()):
            raise TrainingDiverged(
                f"step {loop.step}: the weights are not finite (a non-finite gradient behind a "
                f"finite loss?); nothing was saved after step {loop.saved_step}; the last good "
                f"checkpoint is {loop.last_checkpoint}. Start a new run with a lower learning rate "
                f"or gradient clipping")
        loop.last_checkpoint = self.checkpoints.save(loop.step)
        loop.saved_step = loop.step
        loop.callbacks.dispatch("on_checkpoint", loop, loop.last_checkpoint)

    def on_call_end(self, loop, result) -> None:
        if self.cadence.due(loop.step) or loop.stopping:
            self.save(loop)

    def on_stop(self, loop, reason: str) -> None:
        self.save(loop)
