"""`Display`: a rich progress bar while training and one log line per evaluation.

Both fit the terminal: as it narrows, the bar's fields are abbreviated, then dropped (the second
training value, the best, the speed, the epoch, ...; step/total stays), and evaluation lines
drop training values before validation ones, so nothing wraps at 80 columns (a wrapped live bar
is redrawn as a second copy). Log lines also go, time-stamped, to the run's `train.log`, so the
history of a run (including every resume) stays with it after the terminal is gone.
"""

from __future__ import annotations

import datetime
import math
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn
from rich.text import Text

from looptrain.engine.callback import Callback

_SHORT = {"accuracy": "acc"}  # names shortened on the bar and in log lines
_SHOWN = 2  # training values on the bar at full width
LINE_LIMIT = 79  # evaluation lines fit an 80-column terminal
_LABEL = "train"
_MIN_BAR, _MAX_BAR = 10, 40
COMPILING = "compiling the first step..."
# The bar's fields in the order they go when the width is short (step/total always stays).
DROP = ("second", "best", "speed", "epoch", "first", "eta")


def _items(logs: dict[str, float]) -> list[tuple[str, float]]:
    """(name, value) of `split/name` values (the split left out), in their order."""
    return [(_SHORT.get(name, name), value) for name, value in
            ((key.partition("/")[2], value) for key, value in logs.items() if "/" in key)
            if "/" not in name and name not in ("nonfinite_steps", "learning_rate")]


def _format(logs: dict[str, float], limit: int | None = None) -> str:
    """`loss 0.1234  acc 0.9120` of `split/name` values, the first `limit` of them."""
    return "  ".join(f"{name} {value:.4f}" for name, value in _items(logs)[:limit])


def _duration(seconds: float | None, short: bool = False) -> str:
    if seconds is None:
        return "eta -:--" if short else "eta -:--:--"
    text = str(datetime.timedelta(seconds=int(seconds)))
    return f"eta {text[2:] if short and text.startswith('0:') else text}"


def clock(seconds: float) -> str:
    """`42s`, `3m05s`, `1h02m`."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def fit_status(fields: dict[str, str | None], short: dict[str, str | None], room: int) -> str:
    """The bar's fields, in their order, abbreviated then dropped until they fit `room` columns.

    `fields` maps each field to its full text (None: not shown), `short` to its abbreviation;
    fields are dropped in the order of `DROP` (the step count stays).
    """
    shown = dict(fields)
    for reduce in ("abbreviate", *DROP):
        text = " ".join(v for v in shown.values() if v)
        if len(text) <= room:
            return text
        if reduce == "abbreviate":
            shown = {k: short.get(k, v) if v else v for k, v in shown.items()}
        else:
            shown[reduce] = None
    return " ".join(v for v in shown.values() if v)[:max(room, 0)]


def eval_line(step: int, epoch: str, train: dict[str, float], split: str,
              values: dict[str, float], improved: bool, limit: int = LINE_LIMIT) -> str:
    """`step    100  epoch 1/10 | train loss 2.3008 | val loss 2.3063  acc 0.1060  *best`,
    shortened to `limit`: training values dropped down to the first, the epoch abbreviated (`ep`),
    then the rest of the training values and validation values beyond the first dropped."""
    mark = "  *best" if improved else ""
    num_train, num_val = len(_items(train)), len(_items(values))
    short = epoch.replace("epoch", "ep")
    tries = [(epoch, n, num_val) for n in range(num_train, 0, -1)]
    tries += [(short, n, num_val) for n in range(min(num_train, 1), -1, -1)]
    tries += [("", 0, n) for n in range(num_val, 0, -1)]
    line = ""
    for shown_epoch, n_train, n_val in tries:
        parts = [f"step {step:>6}" + (f"  {shown_epoch}" if shown_epoch else "")]
        if n_train:
            parts.append(f"train {_format(train, n_train)}")
        parts.append(f"{split} {_format(values, n_val)}")
        line = " | ".join(parts) + mark
        if len(line) <= limit:
            return line
    return line[:limit]


class _Bar(BarColumn):
    """The bar, as wide as the fields right of it leave room for (rendered before them)."""

    def __init__(self, display: "Display"):
        super().__init__(bar_width=_MIN_BAR)
        self.display = display

    def render(self, task):
        text = self.display.status(task)
        room = self.display.console.width - len(_LABEL) - 2 - 3  # see `Display.status`
        self.bar_width = max(_MIN_BAR, min(_MAX_BAR, room - len(text) - 1))
        self.display.status_text = text
        return super().render(task)


class _Status(ProgressColumn):
    """Everything right of the bar, fitted to the console's width (see `Display.status`)."""

    def __init__(self, display: "Display"):
        super().__init__()
        self.display = display

    def render(self, task) -> Text:
        return Text(self.display.status_text, no_wrap=True, overflow="crop")


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
        self.status_text = ""
        self._progress = Progress(TextColumn(f"[bold]{_LABEL}"), _Bar(self), _Status(self),
                                  console=self.console, disable=not self.console.is_terminal,
                                  transient=False)
        self._task = None
        self._num_epochs: int | None = None
        self._log_file: Path | None = None
        self._values: dict[str, float] = {}
        self._stopped = False

    def log_to(self, path: Path) -> None:
        """Appends every later log line to `path` as well."""
        self._log_file = Path(path)

    def log(self, message: str) -> None:
        # Wrapped between words on a terminal (a long path or hint); one line in a pipe, for grep.
        self._progress.console.print(message, highlight=False,
                                     soft_wrap=not self.console.is_terminal)
        if self._log_file is not None:
            with open(self._log_file, "a", encoding="utf-8") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    def _epoch(self, loop, step: int) -> str:
        epoch = loop.epoch_of(step)
        if epoch is None:
            return ""
        return f"epoch {min(epoch, self._num_epochs or epoch)}/{self._num_epochs}"

    def _best(self, digits: int = 4) -> str | None:
        if self.best is None or not math.isfinite(self.best.best_value):
            return None
        return f"best {self.best.best_value:.{digits}f}"

    def status(self, task) -> str:
        """The bar's fields fitted to what the console's width leaves beside the label and a
        bar of `_MIN_BAR` (the bar then takes what they leave, up to `_MAX_BAR`)."""
        # 3 columns spare: a terminal echoes Ctrl-C as "^C" after the bar, which must not wrap it.
        room = self.console.width - len(_LABEL) - 2 - _MIN_BAR - 3
        count = f"{task.completed:.0f}/{task.total:.0f}"
        if not task.fields.get("started"):
            text = fit_status({"count": count, "note": COMPILING}, {}, room)
        else:
            items = _items(self._values)
            value = [f"{n} {v:.4f}" for n, v in items[:_SHOWN]]
            value_short = [f"{n} {v:.3f}" for n, v in items[:_SHOWN]]
            eta = task.time_remaining
            epoch = task.fields.get("epoch") or None
            text = fit_status(
                {"count": count, "epoch": epoch, "first": (value or [None])[0],
                 "second": (value[1:] or [None])[0],
                 "speed": f"{task.speed:.2f} steps/s" if task.speed else "-.-- steps/s",
                 "eta": _duration(eta), "best": self._best()},
                {"epoch": epoch and epoch.replace("epoch ", "ep "),
                 "first": (value_short or [None])[0], "second": (value_short[1:] or [None])[0],
                 "speed": f"{task.speed:.1f}/s" if task.speed else "-.-/s",
                 "eta": _duration(eta, short=True), "best": self._best(3)}, room)
        return text

    def on_fit_begin(self, loop) -> None:
        self._stopped = False
        if self._task is not None:  # a display used again, by a second `fit`
            self._progress.remove_task(self._task)
        self._num_epochs = (-(-loop.total_steps // loop.steps_per_epoch)
                            if loop.steps_per_epoch else None)
        if not self.console.is_terminal:  # the bar says it on a terminal
            self.console.print(COMPILING, highlight=False)
        self._progress.start()
        self._task = self._progress.add_task(
            "train", total=loop.total_steps, completed=loop.step, epoch=self._epoch(loop, loop.step),
            started=False)

    def on_call_end(self, loop, result) -> None:
        if result.logs is not None:
            self._values = dict(result.logs)
        self._progress.update(self._task, completed=loop.step, epoch=self._epoch(loop, loop.step),
                              started=True)

    def on_eval_end(self, loop, logs) -> None:
        improved = self.best.consider(loop.step, logs) if self.best is not None else None
        split = next(iter(logs), "val/").partition("/")[0]
        limit = min(LINE_LIMIT, self.console.width - 1)
        self.log(eval_line(loop.step, self._epoch(loop, loop.step), loop.train_logs, split, logs,
                           bool(improved), limit))
        self._progress.refresh()

    def on_fit_end(self, loop, result) -> None:
        self.stop()

    def on_stop(self, loop, reason: str) -> None:
        self.stop()

    def stop(self) -> None:
        """Leaves the bar as it was last drawn, once (a second stop draws nothing)."""
        if not self._stopped:
            self._stopped = True
            if self._task is not None:  # no call ran (nothing left to do): compiling no more
                self._progress.update(self._task, started=True)
            self._progress.stop()
