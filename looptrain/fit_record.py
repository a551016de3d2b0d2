"""`fit.json`: what may not change while a run lives, and the check a resume makes against it.

The record holds the task's class and hyper-parameters, the settings the data position and the
best copy depend on (batch size, seed, monitor, mode, an EMA's decay), the training data's
fingerprint and the task's identity (what its weights mean). A resume that would change any of
them is refused with one line naming the key: its checkpoints would not mean the same thing.
"""

from __future__ import annotations

import json
from typing import Any

from looptrain import __version__
from looptrain.engine.rundir import RunDir
from looptrain.errors import RunDirError

CHECKED = ("task", "hparams", "settings", "data")  # `identity` is the checkpoint's own check


def make_record(task, settings, train, *, identity: str, monitor: str, mode: str) -> dict:
    """The record of a `fit` of `task` on the source `train` with the loop `settings`."""
    fixed = {name: getattr(settings, name) for name in ("batch_size", "seed")}
    if settings.ema_decay:  # what the best copy holds (absent when off: runs from before it match)
        fixed["ema_decay"] = settings.ema_decay
    return {"task": type(task).__qualname__,
            "hparams": json.loads(json.dumps(dict(task.hparams), default=repr)),
            "settings": {**fixed, "monitor": monitor, "mode": mode},
            "data": train.fingerprint(), "identity": identity, "looptrain": __version__}


def check_unchanged(run: RunDir, record: dict) -> None:
    """Raises `RunDirError` naming the first key where `record` differs from the run's own."""
    saved = run.read_record()
    for key in CHECKED:
        if saved.get(key) != record[key]:
            raise RunDirError(_changed(run, key, saved.get(key), record[key]))


def _changed(run: RunDir, key: str, saved: Any, given: Any) -> str:
    """The one-line error for a resume that changes what the run is."""
    if key == "data":
        return (f"resume: the training data differs from the data this run started with "
                f"({run.fit_file}); resume with the original data")
    if isinstance(saved, dict) and isinstance(given, dict):
        for name in sorted(set(saved) | set(given)):
            if saved.get(name) != given.get(name):
                return (f"resume: cannot change {key} '{name}' of the run in {run.path} (saved "
                        f"{saved.get(name)!r}, given {given.get(name)!r}); start a new run "
                        f"directory to train with a different value")
    return (f"resume: the run in {run.path} was started with {key} {saved!r}, not {given!r}; "
            f"start a new run directory")
