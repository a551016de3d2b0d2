"""Says what keeping a data iterator in the checkpoint costs."""

from __future__ import annotations

import tempfile
from pathlib import Path

import tensorflow as tf

from looptrain.engine.callback import Callback


class IteratorBytes(Callback):
    """Says once, in the log, how many bytes of the checkpoint are the dataset iterator's state
    (a shuffle buffer is kept whole): the price of exact resume for a TFRecord stream."""

    def __init__(self, iterator):
        self.iterator, self.done = iterator, False

    def on_call_end(self, loop, result) -> None:
        if self.done:
            return
        self.done = True
        with tempfile.TemporaryDirectory() as tmp:
            tf.train.Checkpoint(iterator=self.iterator).write(f"{tmp}/iterator")
            size = sum(f.stat().st_size for f in Path(tmp).iterdir())
        loop.log(f"the data iterator's state takes {size:,} bytes of each checkpoint (its buffers)")
