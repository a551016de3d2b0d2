"""looptrain: a small TensorFlow 2 framework for training with your own loop instead of `model.fit`.

The public entry points are `looptrain.config` (configuration), `looptrain.train.loop.
train_and_evaluate` (the loop), `looptrain.evaluate.evaluate_run` (test metrics and the
classification report of a run), `looptrain.predict.Predictor` (raw text -> label) and
`looptrain.export.export_run` (a SavedModel on raw strings).
"""

__version__ = "0.1.0"
