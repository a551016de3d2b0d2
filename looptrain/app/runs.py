"""`make runs` (`scripts/runs.py [DIR]`): a table of the runs under `runs/`, from the files they
write, without TensorFlow (it answers at once, also while runs train).

| column | from |
|---|---|
| run | the directory (relative to DIR), any depth: a run is a directory holding `fit.json` |
| model | `config.json`'s `model.name`, or its `task.path`'s file name (a user task); else `fit.json`'s task class |
| step | the last step in `metrics.jsonl` or the latest checkpoint, whichever is later |
| state | `running`: a trainer holds `RUN/.lock`; `finished`: `RUN/finished.json`; `diverged`: the last line of `train.log` is the loop's non-finite stop; `stopped`: anything else (Ctrl-C, SIGTERM, the time limit, a crash or a kill: `--resume` continues it) |
| monitor, best | the monitor (`fit.json`) and its best value in `metrics.jsonl`, with its step |
| test | `eval/report.json` (`make eval`): the monitor's metric on the test split |
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from rich.console import Console
from rich.table import Table

DIVERGED = "non-finite loss or gradient"  # in `callbacks.nonfinite`'s stop message


@dataclass(frozen=True)
class RunRow:
    name: str
    model: str
    step: int | None
    state: str
    monitor: str
    best: float | None
    best_step: int | None
    test: float | None


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _records(path: Path) -> list[dict]:
    """`metrics.jsonl`'s records (a line torn by a kill skipped)."""
    records = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return records
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def is_locked(run: Path) -> bool:
    """Whether a trainer holds `run/.lock` (`looptrain.lock`: an exclusive flock while it runs)."""
    try:
        handle = open(run / ".lock", "rb")
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def run_state(run: Path) -> str:
    """`running`, `finished`, `diverged` or `stopped` (see the module docstring)."""
    if is_locked(run):
        return "running"
    if (run / "finished.json").is_file():
        return "finished"
    try:
        lines = (run / "train.log").read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    if lines and DIVERGED in lines[-1]:
        return "diverged"
    return "stopped"


def _checkpoint_step(run: Path) -> int | None:
    try:
        text = (run / "checkpoints" / "checkpoint").read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("model_checkpoint_path:"):
            tail = line.split('"')[1].rsplit("-", 1)[-1]
            return int(tail) if tail.isdigit() else None
    return None


def read_run(run: Path, name: str) -> RunRow:
    """One row of the table, from the files in `run`."""
    config, record = _json(run / "config.json"), _json(run / "fit.json")
    task_path = config.get("task", {}).get("path")
    model = (Path(task_path).name if task_path else config.get("model", {}).get("name")
             or record.get("task", "?"))
    settings = record.get("settings", {})
    monitor, mode = settings.get("monitor", "val/loss"), settings.get("mode", "min")
    records = _records(run / "metrics.jsonl")
    steps = [r["step"] for r in records if isinstance(r.get("step"), int)]
    saved = _checkpoint_step(run)
    step = max([*steps, *([saved] if saved is not None else [])], default=None)
    best = best_step = None
    for r in records:
        value = r.get(monitor)
        if isinstance(value, (int, float)) and math.isfinite(value) and (
                best is None or (value > best if mode == "max" else value < best)):
            best, best_step = value, r.get("step")
    report = _json(run / "eval" / "report.json")
    metric = monitor.partition("/")[2]
    test = report.get("metrics", {}).get(f"test/{metric}", report.get(metric))
    return RunRow(name=name, model=str(model), step=step, state=run_state(run), monitor=monitor,
                  best=best, best_step=best_step,
                  test=test if isinstance(test, (int, float)) else None)


def find_runs(directory: Path) -> list[RunRow]:
    """Every run under `directory` (itself included), by name."""
    directory = Path(directory)
    runs = sorted({path.parent for path in directory.rglob("fit.json")})
    return [read_run(run, str(run.relative_to(directory)) if run != directory else run.name)
            for run in runs]


def runs_table(rows: Sequence[RunRow]) -> Table:
    table = Table(title_justify="left", box=None, pad_edge=False)
    for column, justify in (("run", "left"), ("model", "left"), ("step", "right"),
                            ("state", "left"), ("monitor", "left"), ("best", "left"),
                            ("test", "right")):
        # Names fold when the terminal is narrow; numbers and states never do.
        table.add_column(column, justify=justify, overflow="fold",
                         no_wrap=column not in ("run", "model", "monitor"))
    style = {"running": "cyan", "finished": "green", "diverged": "red", "stopped": "yellow"}
    for row in rows:
        best = f"{row.best:.4f} @{row.best_step}" if row.best is not None else "-"
        table.add_row(row.name, row.model, "-" if row.step is None else str(row.step),
                      f"[{style[row.state]}]{row.state}[/]", row.monitor, best,
                      "-" if row.test is None else f"{row.test:.4f}")
    return table


def main(argv: Sequence[str] | None = None, *, prog: str = "looptrain runs") -> int:
    """`looptrain runs [DIR]`: prints the table of the runs under DIR (default `runs`)."""
    parser = argparse.ArgumentParser(prog=prog, description="List the runs under a directory: "
                                     "model, step, state, best validation value, test value.")
    parser.add_argument("directory", nargs="?", default="runs", help="where to look (default: runs)")
    args = parser.parse_args(argv)
    console = Console(highlight=False)
    directory = Path(args.directory)
    rows = find_runs(directory) if directory.is_dir() else []
    if not rows:
        console.print(f"no runs under {directory} (a run is a directory with fit.json; start one "
                      f"with make train)", soft_wrap=True)
        return 0
    console.print(runs_table(rows))
    return 0
