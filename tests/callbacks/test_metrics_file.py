"""Metrics for other tools: RUN/metrics.jsonl equals the TensorBoard scalars, also after a killed
and resumed run; one MetricWriter interface (a user's writer, MLflow when installed)."""

import importlib.util
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT
from summaries import tensorboard_scalars
from user_tasks import quiet, regression_class, regression_file

import looptrain as lt
from looptrain.engine.writers import (JsonlWriter, MetricWriter, MultiWriter, drop_lines_after,
                                      read_jsonl)

SETTINGS = dict(batch_size=32, log_every=10, eval_every=20, checkpoint_every=20)


def jsonl_scalars(path) -> set[tuple[str, int, float]]:
    return {(key, record["step"], value) for record in read_jsonl(path)
            for key, value in record.items() if key not in ("step", "time")}


def test_metrics_jsonl_equals_tensorboard_after_a_resume_past_a_lost_checkpoint(tmp_path):
    Regression = regression_class(tmp_path / "mine")
    task, run = Regression(width=8), tmp_path / "run"
    data = dict(train=task.train_data(), val=task.val_data())
    lt.fit(task, run_dir=run, max_steps=40, display=quiet(), **data, **SETTINGS)
    assert {r["step"] for r in read_jsonl(run / "metrics.jsonl")} == {10, 20, 30, 40}
    # As if killed while ckpt-40 was being written: its steps were logged, its checkpoint is lost.
    for path in (run / "checkpoints").glob("ckpt-40.*"):
        path.unlink()
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 40, "train/lo')  # and a line torn by the kill
    lt.fit(Regression(width=8), run_dir=run, max_steps=60, resume=True, display=quiet(), **data,
           **SETTINGS)
    assert "removed 4 metric records of steps after 20" in (run / "train.log").read_text()
    scalars = tensorboard_scalars(run / "logs")
    assert scalars == jsonl_scalars(run / "metrics.jsonl")
    steps = sorted((step for tag, step, _ in scalars if tag == "val/mse"))
    assert steps == [20, 40, 60]  # step 40 once: run again, the first one removed
    assert {tag for tag, _, _ in scalars} >= {"train/loss", "train/learning_rate", "val/mse",
                                              "val/mae", "val/best_mse", "train/nonfinite_steps"}


class ListWriter(MetricWriter):
    def __init__(self):
        self.records, self.closed = [], False

    def write_scalars(self, step, values):
        self.records.append((step, dict(values)))

    def close(self):
        self.closed = True


def test_a_writer_of_the_user_gets_every_scalar_and_the_jsonl_rewinds_torn_lines(tmp_path):
    Regression = regression_class(tmp_path / "mine")
    task, mine = Regression(width=8), ListWriter()
    callback = lt.callbacks.MetricsFile(MultiWriter([mine]))
    lt.fit(task, train=task.train_data(), val=task.val_data(), run_dir=tmp_path / "run",
           max_steps=20, display=quiet(), callbacks=[callback], **SETTINGS)
    assert mine.closed and [step for step, _ in mine.records] == [10, 20, 20]
    assert "val/mse" in mine.records[1][1] and "train/loss" in mine.records[2][1]
    path = tmp_path / "m.jsonl"
    writer = JsonlWriter(path)
    for step in (1, 2, 3):
        writer.write_scalars(step, {"x/y": step, "x/bad": float("nan")})
    writer.close()
    assert read_jsonl(path)[0]["x/bad"] is None  # valid JSON: null for a non-finite value
    with open(path, "a") as f:
        f.write('{"step": 4')
    assert drop_lines_after(path, 2) == 2 and [r["step"] for r in read_jsonl(path)] == [1, 2]


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None,
                    reason="MLflow is not installed (pip install 'looptrain[mlflow]')")
def test_mlflow_gets_the_same_scalars_in_one_run_across_a_resume(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    Regression = regression_class(tmp_path / "mine")
    task, run = Regression(width=8), tmp_path / "run"
    data = dict(train=task.train_data(), val=task.val_data())
    lt.fit(task, run_dir=run, max_steps=20, mlflow=True, display=quiet(), **data, **SETTINGS)
    lt.fit(Regression(width=8), run_dir=run, max_steps=40, mlflow=True, resume=True,
           display=quiet(), **data, **SETTINGS)
    client = MlflowClient(tracking_uri=(run / "mlruns").resolve().as_uri())  # a file store
    (experiment,) = [e for e in client.search_experiments() if e.name == "looptrain"]
    (found,) = client.search_runs([experiment.experiment_id])
    assert found.data.params["task.width"] == "8" and found.data.params["train.batch_size"] == "32"
    for key in ("val/mse", "train/loss"):
        history = {(m.step, m.value) for m in client.get_metric_history(found.info.run_id, key)}
        assert history == {(step, value) for k, step, value in jsonl_scalars(run / "metrics.jsonl")
                           if k == key}


@pytest.mark.slow
def test_metrics_jsonl_equals_tensorboard_after_sigkill_and_resume_with_the_same_command(tmp_path):
    task = f"{regression_file(tmp_path / 'mine')}:Regression"
    run = tmp_path / "run"
    command = [sys.executable, str(ROOT / "scripts" / "train.py"), "--task", task, "--run-dir",
               str(run), "--resume=auto", "--max-steps", "600", "--epochs", "100",
               "--checkpoint-every", "50", "--eval-every", "30", "--set", "task.width=16",
               "--set", "train.log_every=5"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not any(r["step"] > 160 for r in _records(run)):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-2000:]
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "removed" in (run / "train.log").read_text()
    assert tensorboard_scalars(run / "logs") == jsonl_scalars(run / "metrics.jsonl")


def _records(run):
    return read_jsonl(run / "metrics.jsonl") if (run / "metrics.jsonl").is_file() else []
