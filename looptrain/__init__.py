"""looptrain: a small TensorFlow 2 framework for training with your own loop instead of `model.fit`.

The public entry points are `looptrain.config` (configuration), `looptrain.train.loop.
train_and_evaluate` (the loop) and `looptrain.evaluate.evaluate_run` (test metrics of a run).
"""

__version__ = "0.1.0"
