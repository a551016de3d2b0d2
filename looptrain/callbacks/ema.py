"""`EMA`: an exponential moving average of the weights, used for evaluation and the best copy.

After every training step (inside the compiled call, so it costs no Python) each trainable
variable's shadow moves toward it:

    decay_t = min(decay, (1 + t) / (10 + t))          t: the global step just reached
    shadow -= (1 - decay_t) * (shadow - variable)

the warm-up of `tf.train.ExponentialMovingAverage(num_updates=t)`, so early evaluations are not
dominated by the initial weights; the shadows start as the initial weights. A step whose update was
held back (`on_nan = "skip"`) leaves them unchanged.

The shadows are checkpointed (`state()`, key `engine.averages.AVERAGED`), so a resumed run
continues the same average bit for bit. Evaluation, early stopping on `val/...`, and the best copy
see the averaged weights: `evaluation_weights()` swaps them into the model (Keras'
`SwapEMAWeights`) and back, exactly, so training continues on the raw weights. The best copy
therefore holds averaged weights, and `lt.evaluate`, `evaluate.py`, `predict.py` and `export.py`
use them; evaluating a training checkpoint (`--checkpoint latest`) uses the averages it holds.
Only trainable variables are averaged (as Keras does): batch-norm statistics are averages already.
"""

from __future__ import annotations

import contextlib

import tensorflow as tf

from looptrain.engine.call import InCallHook
from looptrain.engine.callback import Callback
from looptrain.engine.averages import AVERAGED, Averages
from looptrain.task import trainable_variables


class EMA(Callback, InCallHook):
    """Keeps the exponential moving average of the task's trainable weights.

    Args:
        decay: the average's decay per step, in (0, 1) (e.g. 0.999: about the last 1000 steps).
    """

    state_key = AVERAGED

    def __init__(self, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay!r}")
        self.decay = decay
        self.variables: list | None = None
        self.averages: Averages | None = None
        self._depth = 0  # `evaluation_weights` nesting: swap at the outermost level only

    def setup(self, task) -> None:
        self.variables = trainable_variables(task)
        self.averages = Averages(self.variables)  # starts as the initial weights
        self._swap = tf.function(self._swap_fn, autograph=False)

    def state(self):
        return self.averages

    @tf.autograph.experimental.do_not_convert  # graph code as it is (engine/autograph.py)
    def after_step(self, step, sound) -> None:
        t = tf.cast(step, tf.float32)
        decay = tf.minimum(tf.constant(self.decay, tf.float32), (1.0 + t) / (10.0 + t))
        rate = tf.where(sound, 1.0 - decay, 0.0)
        for variable, average in zip(self.variables, self.averages.values):
            average.assign_sub(tf.cast(rate, average.dtype) * (average - variable))

    def _swap_fn(self):
        for variable, average in zip(self.variables, self.averages.values):
            raw = tf.identity(variable)
            variable.assign(average)
            average.assign(raw)

    @contextlib.contextmanager
    def evaluation_weights(self):
        """The averaged weights in the model inside, the raw ones (bit for bit) after."""
        if self.averages is None or self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._swap()
        self._depth = 1
        try:
            yield
        finally:
            self._depth = 0
            self._swap()
