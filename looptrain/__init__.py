"""looptrain: a small TensorFlow 2 framework for training with your own loop instead of `model.fit`.

The public API (`import looptrain as lt`):

    lt.Task                      your model, step and data (subclass it)
    lt.fit(task, train=..., val=..., run_dir=..., **settings) -> lt.FitResult
    lt.evaluate(task, data=..., run_dir=...) -> dict of the task's metrics
    lt.batch_mean, lt.model_losses, lt.apply_gradients
                                 step helpers: exact distribution and the skip-on-NaN guard
    lt.Callback, lt.callbacks    the hook mechanism and the built-in callbacks
    lt.InCallHook                work inside the compiled call (after each step, at due call ends)
    lt.data                      data sources (arrays, datasets, functions of the step)
    lt.LoopSettings              the loop's settings with their documentation

Names are imported on first use, so `import looptrain` alone does not start TensorFlow (the
command line checks its arguments first).
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Task": "looptrain.task",
    "fit": "looptrain.training",
    "evaluate": "looptrain.evaluation",
    "FitResult": "looptrain.training",
    "batch_mean": "looptrain.engine.steps",
    "model_losses": "looptrain.engine.steps",
    "apply_gradients": "looptrain.engine.steps",
    "Callback": "looptrain.engine.callback",
    "InCallHook": "looptrain.engine.call",
    "LoopSettings": "looptrain.settings",
}
_MODULES = {"callbacks": "looptrain.callbacks", "data": "looptrain.data"}

__all__ = sorted([*_EXPORTS, *_MODULES])


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _MODULES:
        value = importlib.import_module(_MODULES[name])
    else:
        raise AttributeError(f"module 'looptrain' has no attribute {name!r}")
    globals()[name] = value
    return value
