"""The optional callbacks the loop's settings switch on (`lt.fit` keywords, `[train]` keys).

Each is also a public callback a user may pass to `lt.fit(callbacks=...)` directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from looptrain.callbacks.best import Best
from looptrain.callbacks.ema import EMA
from looptrain.callbacks.finished import Finished
from looptrain.callbacks.metrics_file import MetricsFile
from looptrain.callbacks.profiler import Profiler, parse_steps
from looptrain.callbacks.time_limit import TimeLimit
from looptrain.engine.callback import Callback
from looptrain.engine.writers import METRICS_FILE, JsonlWriter, MlflowWriter, MultiWriter
from looptrain.errors import ConfigError


def setting_callbacks(settings, *, run_path: Path, best: Best, chief: bool,
                      record: Mapping[str, object]) -> list[Callback]:
    """`RUN/metrics.jsonl` (and MLflow: `mlflow`), the end marker, and when set: `ema_decay`,
    `profile_steps`, `time_limit`.

    Args:
        settings: the `LoopSettings`.
        run_path: the directory this process writes (a scratch one on a non-chief worker).
        best: the run's best tracker (for `val/best_<name>` in the metrics).
        chief: whether this process writes the run (only the chief logs to MLflow).
        record: the run's record (`fit.json`): MLflow records its hyper-parameters and fixed
            settings as the run's parameters.
    """
    writers = [JsonlWriter(Path(run_path) / METRICS_FILE)]
    if settings.mlflow and chief:
        params = {**{f"task.{k}": v for k, v in record["hparams"].items()},
                  **{f"train.{k}": v for k, v in record["settings"].items()}, "task": record["task"]}
        writers.append(MlflowWriter(run_path, params=params))
    callbacks: list[Callback] = [MetricsFile(MultiWriter(writers), best=best), Finished()]
    if settings.ema_decay:
        callbacks.append(EMA(settings.ema_decay))
    if settings.profile_steps:
        try:
            steps = parse_steps(settings.profile_steps)
        except ValueError as exc:
            raise ConfigError(f"'train.profile_steps': {exc}") from None
        callbacks.append(Profiler(steps, Path(run_path) / "logs" / "train"))
    if settings.time_limit:
        callbacks.append(TimeLimit(settings.time_limit))
    return callbacks
