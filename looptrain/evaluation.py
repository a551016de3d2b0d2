"""`lt.evaluate`: a task's metrics on some data with a checkpoint of one of its runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from looptrain import oserrors
from looptrain.data.sources import as_source
from looptrain.engine.checkpoint import restore_for_evaluation
from looptrain.engine.evaluation import Evaluator
from looptrain.engine.rundir import RunDir
from looptrain.errors import RunDirError
from looptrain.task import check_built
from looptrain.task import identity_of, use_jit


@oserrors.reported
def evaluate(task, *, data, run_dir: str | Path, checkpoint: str = "best", batch_size: int = 64,
             jit_compile: str = "off") -> dict[str, Any]:
    """The task's metrics on `data` with a checkpoint of the run in `run_dir`.

    Args:
        task: the task the run trained (not built; the same hyper-parameters).
        data: the data to evaluate on (the kinds `fit` takes).
        run_dir: the run directory.
        checkpoint: "best" (default), "latest", or a checkpoint path prefix of this run.
        batch_size: examples per batch (array data).
        jit_compile: "auto", "on" or "off".

    Returns:
        `{name: value}` as the task's `eval_step`/`eval_end` define them (without a split prefix).

    Raises:
        UserError: the run, its checkpoint or the data is missing or does not match the task.
    """
    return evaluate_checkpoint(task, data=data, run_dir=run_dir, checkpoint=checkpoint,
                               batch_size=batch_size, jit_compile=jit_compile)[0]


@oserrors.reported
def evaluate_checkpoint(task, *, data, run_dir: str | Path, checkpoint: str = "best",
                        batch_size: int = 64, jit_compile: str = "off") -> tuple[dict[str, Any], str]:
    """`evaluate`, and the path of the checkpoint it restored."""
    run = RunDir(run_dir)
    if not run.has_run():
        raise RunDirError(f"{run.path} is not a looptrain run directory (no fit.json)")
    source = as_source(data, what="evaluation")
    task.build()
    check_built(task)
    path = restore_for_evaluation(task, run, checkpoint, identity_of(task))
    dataset = source.eval_dataset(batch_size)
    metrics = Evaluator(task, dataset.element_spec, jit_compile=use_jit(jit_compile, task))(dataset)
    return metrics, path
