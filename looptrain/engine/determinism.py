"""TensorFlow's op determinism, switched on once per process and remembered.

`tf.config.experimental.enable_op_determinism()` has no public way to ask whether it is on (nor
to switch it off); the loop turns it on through `enable()`, and code that must behave differently
under it (the input pipeline's parallel reads) asks `enabled()`.
"""

from __future__ import annotations

import tensorflow as tf

_enabled = False


def enable() -> None:
    """Turns on op determinism for the rest of the process."""
    global _enabled
    tf.config.experimental.enable_op_determinism()
    _enabled = True


def enabled() -> bool:
    """Whether `enable()` was called in this process."""
    return _enabled
