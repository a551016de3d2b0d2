"""The loop's built-in callbacks, one concern per module; user callbacks subclass `Callback`."""

from looptrain.callbacks.best import Best, BestCopy
from looptrain.callbacks.checkpointing import Checkpointing
from looptrain.callbacks.early_stopping import EarlyStopping
from looptrain.callbacks.evaluation import Evaluation
from looptrain.callbacks.histograms import Histograms
from looptrain.callbacks.nonfinite import NonFinite
from looptrain.callbacks.progress import Display
from looptrain.callbacks.scalars import Scalars
from looptrain.engine.callback import Callback, Periodic

__all__ = ["Best", "BestCopy", "Callback", "Checkpointing", "Display", "EarlyStopping",
           "Evaluation", "Histograms", "NonFinite", "Periodic", "Scalars"]
