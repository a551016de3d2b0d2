"""`Evaluator`: a task's `eval_step` over a whole split in one compiled graph loop.

Each value the step returns is summed over the examples of the split (a per-example value
`[batch, ...]` over its first axis; a scalar counts as the value of every example of its batch)
and divided by the number of examples at the end, so partial batches weigh exactly their examples
and nothing is held per example. The task's `eval_end` then derives its final metrics.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from looptrain.engine.autograph import user_call
from looptrain.errors import TaskError


class Evaluator:
    """The compiled evaluation of one task on datasets of one element structure.

    Args:
        task: its `eval_step(batch)` returns named per-example values or batch means.
        element_spec: the evaluation datasets' element spec (their first trace is done here).
        jit_compile: compile each batch's step with XLA.
    """

    def __init__(self, task, element_spec, *, jit_compile: bool = False):
        self.task = task
        self._step = tf.function(task.eval_step, jit_compile=jit_compile) if jit_compile else task.eval_step
        # The first trace discovers what the step returns; the compiled run calls the same function
        # (nested, inlined), so eval_step is traced once, not twice: a faster start.
        self._checked_step = tf.function(self._checked, autograph=False)
        outputs = self._checked_step.get_concrete_function(element_spec).structured_outputs
        # Name -> the shape of one example's value (() for scalars).
        self.shapes = {name: tuple(value.shape[1:]) if value.shape.rank else ()
                       for name, value in outputs.items()}
        self.sizes = [int(np.prod(shape, dtype=np.int64)) for shape in self.shapes.values()]
        self.run = tf.function(self._run, autograph=False)

    def _checked(self, batch):
        outputs = user_call(self._step, batch)
        name = type(self.task).__name__
        if not isinstance(outputs, dict) or not outputs:
            raise TaskError(f"{name}.eval_step must return a non-empty dict of per-example values "
                            f"or batch means, e.g. {{'mse': squared_errors}}")
        for key, value in outputs.items():
            value = tf.convert_to_tensor(value)
            if value.shape.rank and not value.shape[1:].is_fully_defined():
                raise TaskError(f"{name}.eval_step returned '{key}' of shape {value.shape}; every "
                                f"axis after the batch axis needs a fixed size")
        return {key: tf.convert_to_tensor(value) for key, value in outputs.items()}

    def _sums(self, batch):
        """One batch's contribution: its values summed over its examples, flat, and its size."""
        size = tf.cast(tf.shape(tf.nest.flatten(batch)[0])[0], tf.float32)
        outputs = self._checked_step(batch)
        parts = []
        for name in self.shapes:
            value = tf.cast(outputs[name], tf.float32)
            total = tf.reduce_sum(value, axis=0) if value.shape.rank else value * size
            parts.append(tf.reshape(total, [-1]))
        return tf.concat(parts, axis=0), size

    def _run(self, dataset):
        def add(totals, batch):
            batch_sums, size = self._sums(batch)
            return totals[0] + batch_sums, totals[1] + size

        # What AutoGraph makes of `for batch in dataset:`, written out (engine/autograph.py).
        return dataset.reduce((tf.zeros([sum(self.sizes)]), tf.constant(0.0)),
                              tf.autograph.experimental.do_not_convert(add))

    def __call__(self, dataset: tf.data.Dataset) -> dict[str, Any]:
        """The task's metrics on `dataset` (after `eval_end`): floats, or arrays for values with
        a per-example shape.

        Raises:
            TaskError: the dataset is empty.
        """
        sums, count = (t.numpy() for t in self.run(dataset))
        if count == 0:
            raise TaskError("the evaluation data holds no examples")
        means, start = {}, 0
        for (name, shape), size in zip(self.shapes.items(), self.sizes):
            value = (sums[start:start + size] / count).reshape(shape)
            means[name] = float(value) if shape == () else value
            start += size
        return self.task.eval_end(means)


def scalars(metrics: dict[str, Any], prefix: str) -> dict[str, float]:
    """`prefix/name: float` for every metric; an array's elements become `prefix/name/i`."""
    out = {}
    for name, value in metrics.items():
        array = np.asarray(value, dtype=np.float64)
        if array.ndim == 0:
            out[f"{prefix}/{name}"] = float(array)
        else:
            for index, element in np.ndenumerate(array):
                out[f"{prefix}/{name}/{'/'.join(map(str, index))}"] = float(element)
    return out
