"""Sidecar evaluation: `looptrain evaluate --run-dir RUN --watch` evaluates each training
checkpoint of a run once, as it appears, while the trainer goes on (Orbit's
`evaluate_continuously`).

- **What**: every complete checkpoint (`RUN/checkpoints/checkpoint` lists it once its files are
  written), oldest first, on the test (default) or val split, with the evaluation `evaluate.py`
  does for the run (the classifier's report, or a user task's metrics; EMA averages when the run
  has them). Its summaries go into `RUN/logs/<split>` and `RUN/metrics.jsonl` at the checkpoint's
  step, `RUN/eval/report[.val].json` describes the latest one.
- **Exactly once**: the steps done are recorded in `RUN/eval/watched.<split>.json`, so a restarted
  watcher goes on where it stopped.
- **Out of the trainer's way**: it only reads the run (no lock), at a lower CPU priority (`nice`
  10) and with one TensorFlow thread. It still takes CPU time: on a 2-core machine a tiny model's
  trainer ran at about half its speed beside it (docs/loop-extras.md). A checkpoint the trainer
  prunes before it is read (`train.keep_checkpoints`) is reported as skipped.
- **When it stops**: when the run has finished (`RUN/finished.json`, written by the loop when it
  reaches its end and removed when a session starts; not after a signal or the time limit, which a
  resume follows) and every checkpoint is done; or on Ctrl-C.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

import tensorflow as tf

from looptrain.app import evaluation
from looptrain.callbacks.finished import FINISHED_FILE
from looptrain.engine.evaluation import scalars
from looptrain.errors import RunDirError
from looptrain.files import write_text_atomic
from looptrain.run import RunDir


def checkpoint_steps(run: RunDir) -> dict[int, str]:
    """The run's complete training checkpoints: step -> path prefix."""
    state = tf.train.get_checkpoint_state(str(run.checkpoints))
    paths = list(state.all_model_checkpoint_paths) if state else []
    return {int(path.rsplit("-", 1)[1]): path for path in paths}


def watch_run(run_dir: str | Path, *, split: str = "test", poll_seconds: float = 5.0,
              log: Callable[[str], None] = print, nice: int = 10) -> list[int]:
    """Evaluates every checkpoint of `run_dir` once until the run has finished; returns the steps
    this call evaluated.

    Raises:
        UserError: the run directory is not a run, or a checkpoint does not match it.
    """
    run = RunDir(run_dir)
    run.check_exists()
    if nice:
        os.nice(nice)
        _one_thread()
    record = run.eval / f"watched.{split}.json"
    done = set(json.loads(record.read_text())["steps"]) if record.is_file() else set()
    evaluated: list[int] = []
    waiting = False
    while True:
        finished = (run.path / FINISHED_FILE).is_file()  # before the listing: it then holds the last
        pending = sorted((s, p) for s, p in checkpoint_steps(run).items() if s not in done)
        for step, path in pending:
            began = time.perf_counter()
            values = _evaluate(run, path, split)
            done.add(step)
            record.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(record, json.dumps({"steps": sorted(done)}) + "\n")
            if values is None:
                log(f"step {step:>6}  {Path(path).name}: removed by the trainer before it could be "
                    f"read (train.keep_checkpoints); skipped")
                continue
            evaluated.append(step)
            shown = "  ".join(f"{k} {v:.4f}" for k, v in values.items())
            log(f"step {step:>6}  {Path(path).name}: {shown} ({time.perf_counter() - began:.1f}s)")
        if finished and not pending:
            log(f"{run.path} has finished; {len(done)} checkpoints evaluated on {split}")
            return evaluated
        if not pending and not waiting:
            log(f"waiting for new checkpoints of {run.path} (polling every {poll_seconds:g}s; "
                f"exits when the run has finished)")
        waiting = not pending
        time.sleep(poll_seconds)


def _one_thread() -> None:
    """At most one core for TensorFlow's work here: the trainer's threads keep the others."""
    try:
        tf.config.threading.set_inter_op_parallelism_threads(1)
        tf.config.threading.set_intra_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already started in this process: leave it as it is
        pass


def _evaluate(run: RunDir, path: str, split: str) -> dict[str, float] | None:
    """The split's scalars of one checkpoint, written at its step; None when it is gone."""
    try:
        if run.load_config().task_path:
            result = evaluation.evaluate_task_run(run.path, checkpoint=path, split=split)
            evaluation.save_task_report(run.path, result)
            return scalars(result.metrics, split)
        result = evaluation.evaluate_run(run.path, checkpoint=path, split=split)
        evaluation.save_report(run.path, result, split_scalars=True)
        return {f"{split}/loss": result.loss, f"{split}/accuracy": result.accuracy}
    except RunDirError:
        if not Path(f"{path}.index").is_file():
            return None
        raise
