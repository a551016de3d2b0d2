"""`user_call`: the user's code converted by AutoGraph, the engine's own code left alone.

AutoGraph turns Python control flow on tensors (`if loss > 0:`, `for batch in dataset:`) into
graph ops, so a user's `train_step` may be written as plain Python. Converting a function costs
its first trace 20-800 ms on a CPU: converting the engine's compiled call, evaluation, summary
writes and input pipeline took 4.0 s of a `lt.fit` start on a loaded 2-core VM (0.2 s after this
change), and the tiny config's `--max-steps 1` now starts 3.2 s (18 %) sooner on the same VM,
quiet (docs/performance-bench.md). The engine's own functions are explicit graph code that needs
none of it. So the engine's `tf.function`s are
built with `autograph=False` and call user code (steps, hooks) through `user_call`, which converts
it as a `tf.function` would: recursively, except what is marked `do_not_convert`.
"""

from __future__ import annotations

import tensorflow as tf

_converted = None


def _call(fn, *args, **kwargs):
    return fn(*args, **kwargs)


def user_call(fn, *args, **kwargs):
    """`fn(*args, **kwargs)` with `fn` converted by AutoGraph (for code traced with
    `autograph=False`)."""
    global _converted
    if _converted is None:  # converting this two-line function is the only cost, once a process
        _converted = tf.autograph.to_graph(_call)
    return _converted(fn, *args, **kwargs)
