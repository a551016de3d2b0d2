"""Averaged weights in a training checkpoint (EMA's shadow variables): the key they are saved
under and the module that holds them, one variable per trainable variable of a task in
`task.trainable_variables` order. `engine.checkpoint.restore_averages` puts them into a task for
evaluation; `callbacks.ema` keeps them up to date."""

from __future__ import annotations

import tensorflow as tf

AVERAGED = "averaged_weights"  # the checkpoint key of averaged weights (EMA)


class Averages(tf.Module):
    """One variable per trainable variable of a task (`trainable_variables` order), e.g. EMA's."""

    def __init__(self, variables):
        super().__init__(name="averages")
        self.values = [tf.Variable(v, trainable=False, name="average") for v in variables]
