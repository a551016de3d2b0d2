"""Terminal display: a rich progress bar while training and one log line per evaluation.

Log lines also go, time-stamped, to the run's `train.log`, so the history of a run (including every
resume) stays with it after the terminal is gone.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                           TimeRemainingColumn)
from rich.text import Text


class _StepsPerSecond(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed:.2f} steps/s" if task.speed else "-.-- steps/s", style="cyan")


class Display:
    """Progress bar (step, epoch, loss, accuracy, steps/s, ETA, best so far) plus plain log lines.

    The live bar is shown only on a terminal; piped output (CI, log files) gets the log lines alone.
    """

    def __init__(self, console: Console | None = None):
        self.console = console or Console()
        self._progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
            TextColumn("epoch {task.fields[epoch]}"),
            TextColumn("loss {task.fields[loss]}  acc {task.fields[accuracy]}"),
            _StepsPerSecond(), TimeRemainingColumn(),
            TextColumn("best {task.fields[best]}"),
            console=self.console, disable=not self.console.is_terminal, transient=False)
        self._task = None
        self._steps_per_epoch = self._num_epochs = 1
        self._log_file: Path | None = None

    def log_to(self, path: Path) -> None:
        """Appends every later log line to `path` as well."""
        self._log_file = Path(path)

    def start(self, *, step: int, total: int, steps_per_epoch: int, num_epochs: int) -> None:
        self._steps_per_epoch, self._num_epochs = steps_per_epoch, num_epochs
        self._progress.start()
        self._task = self._progress.add_task("train", total=total, completed=step, epoch=self._epoch(step),
                                             loss="-", accuracy="-", best="-")

    def _epoch(self, step: int) -> str:
        """1-based epoch of the step just run (of the next one before any step)."""
        return f"{min(max(step - 1, 0) // self._steps_per_epoch + 1, self._num_epochs)}/{self._num_epochs}"

    def update(self, step: int, *, loss: float | None = None, accuracy: float | None = None,
               best: float | None = None) -> None:
        fields = {"epoch": self._epoch(step)}
        if loss is not None:
            fields.update(loss=f"{loss:.4f}", accuracy=f"{accuracy:.3f}")
        if best is not None:
            fields["best"] = f"{best:.4f}"
        self._progress.update(self._task, completed=step, **fields)

    def log(self, message: str) -> None:
        self._progress.console.print(message, highlight=False, soft_wrap=True)
        if self._log_file is not None:
            with open(self._log_file, "a", encoding="utf-8") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    def stop(self) -> None:
        self._progress.stop()
