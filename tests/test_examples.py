"""The examples: user tasks in files of their own, public API only, trained through `lt.fit` and
through `scripts/train.py --task`, killed and resumed with the same command bit-identically."""

import os
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT, assert_same_variables, shown_python

import looptrain as lt
from looptrain.app.runs import find_runs
from looptrain.cli import run_main, train_main
from looptrain.errors import TaskError

EXAMPLES = {"regression": "Regression", "multilabel": "MultiLabel", "gan": "GAN",
            "custom_step": "Mixup"}
# Small and fast, with checkpoints often enough to be killed between them.
FLAGS = ["--max-steps", "600", "--epochs", "100", "--checkpoint-every", "25", "--eval-every", "200",
         "--set", "task.width=16"]


def _task(name: str, directory=None) -> str:
    """`file.py:Class` of an example, from `directory` if given (a copy outside the repository)."""
    if directory is not None:
        directory.mkdir(exist_ok=True)
        shutil.copy(ROOT / "examples" / f"{name}.py", directory / f"{name}.py")
    return f"{(directory or ROOT / 'examples') / name}.py:{EXAMPLES[name]}"


def _train(run, task, *extra, env=None) -> subprocess.Popen:
    command = [sys.executable, str(ROOT / "scripts" / "train.py"), "--task", task,
               "--run-dir", str(run), "--resume=auto", *FLAGS, *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _latest(run) -> int:
    return max((int(p.name[5:-6]) for p in (run / "checkpoints").glob("ckpt-*.index")), default=-1)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_example_resumes_bit_identically_after_sigkill_with_the_same_command(name, tmp_path,
                                                                                  capsys):
    task = _task(name, tmp_path / "mine")  # a file outside the repository
    straight = tmp_path / "straight"
    argv = ["--task", task, "--run-dir", str(straight), "--resume=auto", *FLAGS]
    assert run_main(train_main, argv) == 0
    run, seed = tmp_path / "killed", random.randrange(1 << 30)
    proc = _train(run, task)
    deadline = time.monotonic() + 120
    while _latest(run) < 100:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(random.Random(seed).uniform(0.0, 0.2))
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    killed_at = _latest(run)
    assert 100 <= killed_at < 600, (killed_at, seed)
    proc = _train(run, task)  # the same command continues the run
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert "resumed from" in (run / "train.log").read_text()
    final = tf.train.latest_checkpoint(str(run / "checkpoints"))
    names = assert_same_variables(final, tf.train.latest_checkpoint(str(straight / "checkpoints")))
    assert final.endswith("ckpt-600") and any(n.startswith("task/") for n in names)
    if name == "gan":  # both optimizers (they reach both models' weights) and the noise generator
        for part in ("g_optimizer", "d_optimizer", "noise"):
            assert any(n.startswith(f"task/{part}/") for n in names), part
        best = [n for n, _ in tf.train.list_variables(tf.train.latest_checkpoint(str(run / "best")))]
        for part in ("generator", "discriminator"):  # the best copy: both models, no optimizer
            assert any(n.startswith(f"task/{part}/") for n in best), part
        assert not any("optimizer" in n for n in best)
    if name == "custom_step":  # the mixup generator and the dropout seeds
        assert any(n.startswith("task/mix/") for n in names)
        assert any(n.startswith("untracked/") for n in names)


def test_a_task_outside_the_repository_trains_resumes_and_evaluates_in_new_processes(tmp_path):
    home = tmp_path / "mine"
    home.mkdir()
    shutil.copy(ROOT / "examples" / "regression.py", home / "my_regression.py")
    env = {"PYTHONPATH": f"{ROOT}{os.pathsep}{home}"}
    run = tmp_path / "run"
    proc = _train(run, "my_regression:Regression", "--max-steps", "300", env=env)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert "best val/mse" in out
    # What the user sees works for their task too: lines that fit 80 columns, a hint with the
    # Python and script that ran, an HParams session named by the run with its monitor's metrics.
    assert all(len(line) <= 79 for line in out.splitlines() if line.startswith("step "))
    assert f"next: {shown_python()} scripts/evaluate.py --run-dir {run} (test report)" in out
    _assert_hparams_of_user_run(run)
    # A task argument that is not the constructor's is one line naming it; nothing is written.
    proc = _train(tmp_path / "typo", "my_regression:Regression", "--set", "task.widht=3", env=env)
    _, err = proc.communicate(timeout=300)
    # (TensorFlow's own start-up lines come first: importing the user's module imports it.)
    last = err.strip().splitlines()[-1]
    assert proc.returncode == 2 and "Traceback" not in err
    assert "unknown key 'task.widht': Regression() takes no argument 'widht'" in last
    assert not (tmp_path / "typo").exists()
    # Its hyper-parameters are frozen with the run: another width is refused on resume.
    proc = _train(run, "my_regression:Regression", "--set", "task.width=32", env=env)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2 and "cannot change 'task.width' of a resumed run (saved 16" in err
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "--run-dir", str(run)],
                          cwd=tmp_path, env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "test/mse" in done.stdout and (run / "eval" / "report.json").is_file()
    (row,) = find_runs(tmp_path)  # `make runs`: the task, its monitor, the test value
    assert (row.name, row.model, row.state, row.step, row.monitor) == (
        "run", "my_regression:Regression", "finished", 300, "val/mse")
    assert row.best is not None and row.test is not None


def _assert_hparams_of_user_run(run):
    from tensorboard.plugins.hparams import plugin_data_pb2

    data = {}
    for path in (run / "logs").glob("events.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "hparams":
                    data[value.tag] = plugin_data_pb2.HParamsPluginData.FromString(
                        value.metadata.plugin_data.content)
    assert data["_hparams_/session_start_info"].session_start_info.group_name == run.name
    metrics = data["_hparams_/experiment"].experiment.metric_infos
    assert [m.display_name for m in metrics] == ["val/mse", "best/mse", "val/loss", "test/mse"]
    assert [h.name for h in data["_hparams_/experiment"].experiment.hparam_infos][1] == "task.width"


def test_regression_stops_early_on_val_mse_going_down(tmp_path):
    from examples.regression import Regression

    task = Regression(width=8, learning_rate=0.05)
    result = lt.fit(task, train=task.train_data(), val=task.val_data(), run_dir=tmp_path / "run",
                    batch_size=32, max_steps=5000, eval_every=20, patience=100, log_every=20,
                    display=_quiet())
    assert result.monitor == "val/mse" and result.stop_reason == "early_stopping"
    values = _scalars(tmp_path / "run" / "logs" / "val", "mse")
    best_step = min(values, key=values.get)  # mode "min": the smallest mse is the best
    assert result.best_step == best_step and result.best_value == pytest.approx(values[best_step])
    assert result.step == result.best_step + 100
    metrics = lt.evaluate(Regression(width=8, learning_rate=0.05), data=task.val_data(),
                          run_dir=tmp_path / "run")
    assert metrics["mse"] == pytest.approx(result.best_value, rel=1e-5)  # the best copy


def test_steps_the_loop_cannot_use_are_one_line_errors(tmp_path):
    from examples.regression import Regression

    task = Regression(width=8)
    with pytest.raises(TaskError, match="on_nan = 'skip' holds back a non-finite update, which needs "
                                        "Regression.train_step to apply its gradients with "
                                        "lt.apply_gradients"):
        lt.fit(task, train=task.train_data(), run_dir=tmp_path / "skip", on_nan="skip",
               monitor="train/loss", display=_quiet())

    class Vector(Regression):
        def train_step(self, batch):
            return {"errors": self.model(batch[0])[:, 0] - batch[1]}

    with pytest.raises(TaskError, match="returned 'errors' of shape .*; return scalars"):
        lt.fit(Vector(width=8), train=task.train_data(), run_dir=tmp_path / "vector",
               monitor="train/errors", display=_quiet())
    assert not (tmp_path / "skip").exists() and not (tmp_path / "vector").exists()


def _quiet():
    from rich.console import Console

    from looptrain.callbacks import Display

    return Display(Console(file=open(os.devnull, "w")))


def _scalars(logdir, tag) -> dict[int, float]:
    out = {}
    for path in logdir.glob("events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.tag == tag:
                    out[event.step] = float(tf.make_ndarray(value.tensor))
    return out


__all__ = ["np"]
