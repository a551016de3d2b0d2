"""`--fast-dev-run`: the whole path of a config (or a user task) checked in seconds, before a long run.

In a scratch run directory (removed afterwards) it trains a few steps, evaluates, writes a
checkpoint, resumes from it in the same process and trains a few more, evaluates the best copy as
`evaluate.py` would, and trains the same steps again without the interruption: the two must end
bit for bit equal (when `train.deterministic`), or the task keeps state the checkpoint cannot hold
(e.g. `tf.random.uniform` in its step). The time limit, the profiler and MLflow are off in it (a
scratch run must not reach a tracking server); everything else is the config's.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from looptrain.app import evaluation
from looptrain.app.experiment import train_and_evaluate
from looptrain.callbacks import Display
from looptrain.config import Config
from looptrain.engine.evaluation import scalars
from looptrain.engine.writers import METRICS_FILE, read_jsonl
from looptrain.errors import TaskError


def fast_dev_run(config: Config, *, steps: int = 2, display: Display | None = None) -> list[str]:
    """Runs the check; returns what it found, one line per part.

    Raises:
        UserError: any part fails (as the same command would fail in a real run), or a resumed
            run differs from the uninterrupted one.
    """
    began = time.perf_counter()
    dev = config.replace({"train.max_steps": steps, "train.eval_every": steps,
                          "train.checkpoint_every": steps, "train.log_every": 1,
                          "train.patience": 10**6, "train.time_limit": "",
                          "train.profile_steps": "", "train.mlflow": False})
    lines = []
    with tempfile.TemporaryDirectory(prefix="looptrain-fast-dev-run-") as tmp:
        run, straight = Path(tmp) / "run", Path(tmp) / "straight"
        first = train_and_evaluate(dev, run, display=display)
        records = read_jsonl(run / METRICS_FILE)
        lines.append(f"train       steps 1-{first.step}: " + _values(records, "train/", first.step))
        lines.append(f"evaluate    step {first.step}: " + (_values(records, "val/", first.step)
                                                           or "no validation data"))
        lines.append(f"checkpoint  {tf.train.latest_checkpoint(str(run / 'checkpoints'))}")
        longer = dev.replace({"train.max_steps": 2 * steps})
        second = train_and_evaluate(longer, run, resume=True, display=display)
        lines.append(f"resume      from step {first.step} to step {second.step}: "
                     + _values(read_jsonl(run / METRICS_FILE), "train/", second.step))
        if (run / "best").exists():
            lines.append(f"best copy   {_best(run, config)}")
        train_and_evaluate(longer, straight, display=Display(_null_console()))
        lines.append("exactness   " + _compare(run, straight, config.train.deterministic))
    lines.append(f"all checked in {time.perf_counter() - began:.1f}s; the scratch run directory "
                 f"is removed")
    return lines


def _values(records: list[dict], prefix: str, step: int) -> str:
    found = {k: v for r in records if r["step"] == step for k, v in r.items() if k.startswith(prefix)}
    return "  ".join(f"{k} {v:.4g}" if v is not None else f"{k} non-finite"
                     for k, v in found.items())


def _best(run: Path, config: Config) -> str:
    """The best copy evaluated on the validation split, as `evaluate.py --split val` does."""
    if config.task_path:
        result = evaluation.evaluate_task_run(run, split="val")
        values = scalars(result.metrics, "val")
    else:
        result = evaluation.evaluate_run(run, split="val")
        values = {"val/loss": result.loss, "val/accuracy": result.accuracy}
    return f"{Path(result.checkpoint).name}: " + "  ".join(f"{k} {v:.4g}" for k, v in values.items())


def _compare(resumed: Path, straight: Path, deterministic: bool) -> str:
    a = tf.train.latest_checkpoint(str(resumed / "checkpoints"))
    b = tf.train.latest_checkpoint(str(straight / "checkpoints"))
    names = [n for n, _ in tf.train.list_variables(b)
             if n.endswith("VARIABLE_VALUE") and not n.startswith("save_counter")]
    differ = [n for n in names if not np.array_equal(tf.train.load_variable(a, n),
                                                     tf.train.load_variable(b, n))]
    if not differ:
        return f"the resumed run equals the uninterrupted one bit for bit ({len(names)} variables)"
    message = (f"the resumed run differs from the uninterrupted one in {len(differ)} of "
               f"{len(names)} variables (first: {differ[0]})")
    if deterministic:
        raise TaskError(f"--fast-dev-run: {message}: the task keeps state its checkpoint cannot "
                        f"hold (stateful random ops such as tf.random.uniform: use Keras layers or "
                        f"a tf.random.Generator attribute)")
    return message + " (train.deterministic is off: not expected to match)"


def _null_console():
    import os

    from rich.console import Console

    return Console(file=open(os.devnull, "w"))
