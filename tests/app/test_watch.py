"""evaluate.py --watch: a sidecar that evaluates every checkpoint of a (concurrent) run exactly
once, writes its summaries at the checkpoint's step, and exits when the run has finished."""

import os
import subprocess
import sys
import time
from collections import Counter

import pytest
from conftest import ROOT
from user_tasks import regression_file

from looptrain.app.watch import watch_run
from looptrain.cli import run_main, train_main
from looptrain.engine.writers import read_jsonl

from summaries import tensorboard_scalars


def _train_argv(task, run, *extra):
    return ["--task", task, "--run-dir", str(run), "--max-steps", "100", "--checkpoint-every", "20",
            "--set", "task.width=8", "--set", "train.keep_checkpoints=50", *extra]


def test_a_finished_run_is_evaluated_once_per_checkpoint_and_a_restart_adds_nothing(tmp_path):
    task, run = f"{regression_file(tmp_path / 'mine')}:Regression", tmp_path / "run"
    assert run_main(train_main, _train_argv(task, run)) == 0
    assert (run / "finished.json").is_file()
    lines = []
    steps = watch_run(run, poll_seconds=0.05, log=lines.append, nice=0)
    assert steps == [0, 20, 40, 60, 80, 100]
    assert "has finished; 6 checkpoints evaluated on test" in lines[-1]
    assert watch_run(run, poll_seconds=0.05, log=lines.append, nice=0) == []  # exactly once
    tests = Counter(step for tag, step, _ in tensorboard_scalars(run / "logs") if tag == "test/mse")
    assert tests == {step: 1 for step in steps}
    assert sorted(r["step"] for r in read_jsonl(run / "metrics.jsonl") if "test/mse" in r) == steps


@pytest.mark.slow
def test_watch_evaluates_every_checkpoint_of_a_concurrent_run_exactly_once(tmp_path):
    task, run = f"{regression_file(tmp_path / 'mine')}:Regression", tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    trainer = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "train.py"),
                                *_train_argv(task, run, "--max-steps", "2000", "--checkpoint-every",
                                             "200", "--eval-every", "500", "--epochs", "100")],
                               cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (run / "config.json").is_file():  # the sidecar starts once the run exists
        assert trainer.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    watcher = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "--run-dir",
                                str(run), "--watch", "--poll-seconds", "0.2"], cwd=tmp_path,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert trainer.wait(timeout=300) == 0, trainer.stderr.read()[-2000:]
    # It ran alongside the whole run (at nice 10 it may fall behind while the trainer takes both
    # cores) and exits only once the run has finished and every checkpoint is evaluated.
    assert watcher.poll() is None or (run / "eval" / "watched.test.json").is_file()
    out, err = watcher.communicate(timeout=600)
    assert watcher.returncode == 0, err[-2000:]
    expected = list(range(0, 2001, 200))
    assert f"has finished; {len(expected)} checkpoints evaluated on test" in out
    tests = Counter(step for tag, step, _ in tensorboard_scalars(run / "logs") if tag == "test/mse")
    assert tests == {step: 1 for step in expected}
