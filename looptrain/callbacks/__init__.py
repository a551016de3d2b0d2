"""The loop's built-in callbacks, one concern per module; user callbacks subclass `Callback`."""

from looptrain.callbacks.best import Best, BestCopy
from looptrain.callbacks.checkpointing import Checkpointing
from looptrain.callbacks.early_stopping import EarlyStopping
from looptrain.callbacks.ema import EMA
from looptrain.callbacks.evaluation import Evaluation
from looptrain.callbacks.finished import Finished
from looptrain.callbacks.histograms import Histograms
from looptrain.callbacks.metrics_file import MetricsFile
from looptrain.callbacks.nonfinite import NonFinite
from looptrain.callbacks.profiler import Profiler
from looptrain.callbacks.progress import Display
from looptrain.callbacks.scalars import Scalars
from looptrain.callbacks.time_limit import TimeLimit
from looptrain.engine.callback import Callback, Periodic

__all__ = ["Best", "BestCopy", "Callback", "Checkpointing", "Display", "EMA", "EarlyStopping",
           "Evaluation", "Finished", "Histograms", "MetricsFile", "NonFinite", "Periodic",
           "Profiler", "Scalars", "TimeLimit"]
