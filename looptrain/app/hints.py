"""The commands messages tell a user to type, in the form the user typed this one.

`make train` sets `LOOPTRAIN_INVOKED_AS=make` (Makefile): its messages then say `make resume
RUN=x`, `make eval RUN=x`. `looptrain train ...` gets `looptrain train ... --resume` back, `python
-m looptrain train` the same Python with `-m looptrain`, and a script run (`.venv/bin/python
scripts/train.py ...`) the same Python and script directory, so a hint never names a `python`
without TensorFlow. No TensorFlow here: the hints are
needed before it starts (a refused run directory).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

INVOKED_AS = "LOOPTRAIN_INVOKED_AS"


def make_run_name(run_dir: str | Path) -> str | None:
    """`x` when `run_dir` is `runs/x` of the current directory (what `make ... RUN=x` names)."""
    runs = (Path.cwd() / "runs").resolve()
    try:
        name = Path(run_dir).resolve().relative_to(runs)
    except ValueError:
        return None
    return str(name) if str(name) != "." else None


def _make_name(run_dir: str | Path) -> str | None:
    return make_run_name(run_dir) if os.environ.get(INVOKED_AS) == "make" else None


def _short(path: str | Path) -> str:
    """`path` relative to the current directory when it is below it."""
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


def script(name: str) -> str:
    """How to run the command `name` ("train", "evaluate", ...) the way this one ran: `looptrain
    NAME` (the console script), `PYTHON -m looptrain NAME`, or the sibling script."""
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path()
    if argv0.name == "looptrain":  # the installed console script
        return f"looptrain {name}"
    if argv0.name == "__main__.py" and argv0.parent.name == "looptrain":  # python -m looptrain
        return f"{_short(sys.executable)} -m looptrain {name}"
    if argv0.name.startswith("looptrain-"):  # an installed per-command script
        return f"looptrain-{name}"
    folder = argv0.parent if argv0.suffix == ".py" and argv0.parent.name == "scripts" else \
        Path("scripts")
    return f"{_short(sys.executable)} {_short(folder / f'{name}.py')}"


def resume(run_dir: str | Path, *, flags: str = "") -> str:
    """The command that continues the run in `run_dir`, with the train `flags` (`--on-nan skip`)
    where they go: after `--resume`, or in `make`'s `ARGS`."""
    name = _make_name(run_dir)
    if name:
        return f"make resume RUN={name}" + (f" ARGS='{flags}'" if flags else "")
    return f"{script('train')} --run-dir {run_dir} --resume" + (f" {flags}" if flags else "")


def evaluate(run_dir: str | Path) -> str:
    """The command that evaluates the run's best copy on its test split."""
    name = _make_name(run_dir)
    return f"make eval RUN={name}" if name else f"{script('evaluate')} --run-dir {run_dir}"


def tensorboard(run_dir: str | Path) -> str:
    """The command that shows the run (and its neighbours) in TensorBoard."""
    if _make_name(run_dir):
        return "make tensorboard"
    return f"{_short(Path(sys.executable).with_name('tensorboard'))} --logdir {Path(run_dir).parent}"


def other_run_dir() -> str:
    """How to name another run directory."""
    return "another RUN=" if os.environ.get(INVOKED_AS) == "make" else "another --run-dir"
