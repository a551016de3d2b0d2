"""`Display`: a rich progress bar while training and one log line per evaluation.

Log lines also go, time-stamped, to the run's `train.log`, so the history of a run (including every
resume) stays with it after the terminal is gone.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                           TimeRemainingColumn)
from rich.text import Text

from looptrain.engine.callback import Callback

_SHORT = {"accuracy": "acc"}  # names shortened on the bar and in log lines
_SHOWN = 2  # training values on the bar


class _StepsPerSecond(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed:.2f} steps/s" if task.speed else "-.-- steps/s", style="cyan")


def _format(logs: dict[str, float], limit: int | None = None) -> str:
    """`loss 0.1234  acc 0.912` of `split/name` values (the split left out), in their order."""
    items = [(key.partition("/")[2], value) for key, value in logs.items()
             if "/" in key and key.partition("/")[2].count("/") == 0 and not key.endswith(
                 ("/nonfinite_steps", "/learning_rate"))][:limit]
    return "  ".join(f"{_SHORT.get(name, name)} {value:.4f}" for name, value in items)


class Display(Callback):
    """Progress bar (step, epoch, the first training values, steps/s, ETA, best so far) plus
    plain log lines. The live bar is shown only on a terminal; piped output (CI, log files) gets
    the log lines alone.

    Args:
        console: where it prints (default: the terminal).
        best: the `callbacks.best.Best` tracker whose value the bar and log lines show.
    """

    def __init__(self, console: Console | None = None, best=None):
        self.console = console or Console()
        self.best = best
        self._progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[epoch]}"), TextColumn("{task.fields[values]}"),
            _StepsPerSecond(), TimeRemainingColumn(), TextColumn("{task.fields[best]}"),
            console=self.console, disable=not self.console.is_terminal, transient=False)
        self._task = None
        self._num_epochs: int | None = None
        self._log_file: Path | None = None

    def log_to(self, path: Path) -> None:
        """Appends every later log line to `path` as well."""
        self._log_file = Path(path)

    def log(self, message: str) -> None:
        self._progress.console.print(message, highlight=False, soft_wrap=True)
        if self._log_file is not None:
            with open(self._log_file, "a", encoding="utf-8") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    def _epoch(self, loop, step: int) -> str:
        epoch = loop.epoch_of(step)
        if epoch is None:
            return ""
        return f"epoch {min(epoch, self._num_epochs or epoch)}/{self._num_epochs}"

    def _best(self) -> str:
        if self.best is None or not math.isfinite(self.best.best_value):
            return ""
        return f"best {self.best.best_value:.4f}"

    def on_fit_begin(self, loop) -> None:
        self._num_epochs = (-(-loop.total_steps // loop.steps_per_epoch)
                            if loop.steps_per_epoch else None)
        self._progress.start()
        self._task = self._progress.add_task(
            "train", total=loop.total_steps, completed=loop.step, epoch=self._epoch(loop, loop.step),
            values="", best=self._best())

    def on_call_end(self, loop, result) -> None:
        fields = {"epoch": self._epoch(loop, loop.step)}
        if result.logs is not None:
            fields["values"] = _format(result.logs, _SHOWN)
        self._progress.update(self._task, completed=loop.step, **fields)

    def on_eval_end(self, loop, logs) -> None:
        improved = self.best.consider(loop.step, logs) if self.best is not None else None
        epoch = self._epoch(loop, loop.step)
        train = _format(loop.train_logs)
        split = next(iter(logs), "val/").partition("/")[0]
        parts = [f"step {loop.step:>6}" + (f"  {epoch}" if epoch else ""),
                 *([f"train {train}"] if train else []), f"{split} {_format(logs)}"]
        self.log(" | ".join(parts) + ("  *best" if improved else ""))
        self._progress.update(self._task, best=self._best())

    def on_fit_end(self, loop, result) -> None:
        self.stop()

    def on_stop(self, loop, reason: str) -> None:
        self.stop()

    def stop(self) -> None:
        self._progress.stop()
