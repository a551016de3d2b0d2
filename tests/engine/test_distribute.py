"""tf.distribute: the same loop on 2 devices (mirrored) and 2 workers (multi-worker) ends where one
device does, writes the run directory as usual (from the chief only), and stops and resumes cleanly.

Each distributed run is a fresh process: logical CPU devices and multi-worker collectives can only
be set up before TensorFlow initialises, which the test process did long ago.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT, assert_same_variables

pytestmark = pytest.mark.slow  # subprocesses of minutes: `make test-slow`

from looptrain.errors import ConfigError
from looptrain.engine import distribute

# Dropout masks are drawn per replica, so only a dropout-free model can equal one device.
NO_DROPOUT = ["--set", "model.dropout=0"]
STEPS = 120
LONG = ["--max-steps", str(STEPS), "--epochs", "40", "--checkpoint-every", "40", "--eval-every", "40"]


def _train_args(config, run: Path, *extra) -> list[str]:
    return ["--config", str(ROOT / "configs" / "tiny.toml"), "--data-dir", config.data.data_dir,
            "--run-dir", str(run), *NO_DROPOUT, *extra]


def _run(argv, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TF_CONFIG", None)
    return subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300, **kwargs)


def _max_abs_diff(checkpoint: str, reference: str) -> float:
    # The task's weights (under the model's path or, for a Sequential model, the optimizer's,
    # whichever tf.train.Checkpoint reaches first) and its optimizer's slots.
    names = [n for n, _ in tf.train.list_variables(reference)
             if n.startswith("task/") and n.endswith("VARIABLE_VALUE")
             and np.issubdtype(np.asarray(tf.train.load_variable(reference, n)).dtype, np.floating)]
    assert names
    return max(float(np.max(np.abs(tf.train.load_variable(checkpoint, n)
                                   - tf.train.load_variable(reference, n)))) for n in names)


def test_mirrored_on_two_devices_ends_where_one_device_does(long_runs, tmp_path):
    config, base, _ = long_runs
    run = tmp_path / "mirrored"
    done = _run([str(ROOT / "scripts" / "train.py"), *_train_args(
        config, run, *LONG, "--strategy", "mirrored", "--num-devices", "2")])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "mirrored: 2 replicas" in done.stdout
    latest = tf.train.latest_checkpoint(str(run / "checkpoints"))
    assert latest.endswith(f"ckpt-{STEPS}")
    assert _max_abs_diff(latest, tf.train.latest_checkpoint(str(base / "single" / "checkpoints"))) < 1e-4
    assert (run / "best" / "best.json").is_file() and (run / "logs" / "train").is_dir()
    assert json.loads((run / "config.json").read_text())["train"]["strategy"] == "mirrored"


def test_strategy_settings_that_cannot_work_are_one_line_errors(monkeypatch):
    with pytest.raises(ConfigError, match=r"train.num_devices = 2 needs train.strategy = mirrored"):
        distribute.make_strategy("default", 2)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match=r"multiworker needs the TF_CONFIG environment variable.*"
                                          r"looptrain launch"):
        distribute.make_strategy("multiworker", 0)


def test_the_flags_reach_the_config_and_a_resume_may_change_them(tmp_path):
    from looptrain.cli import resolve_train_config, train_parser
    from looptrain.config import resume_config

    args = train_parser().parse_args(["--strategy", "mirrored", "--num-devices", "4"])
    config = resolve_train_config(args)
    assert (config.train.strategy, config.train.num_devices) == ("mirrored", 4)
    # A checkpoint does not depend on the strategy: a run may continue on other hardware.
    resumed = resume_config(config, {"train.strategy": "default", "train.num_devices": 0}, source="--set")
    assert resumed.train.strategy == "default"


# ---- several workers (scripts/launch_local.py) -------------------------------------------------



def _launch_args(config, run: Path, *extra) -> list[str]:
    return [str(ROOT / "scripts" / "launch_local.py"), "--num-workers", "2", "--grace-seconds", "20",
            "--", *_train_args(config, run, *LONG, *extra)]


def _worker_pids(launcher: int) -> dict[int, int]:
    """Worker index -> pid of the launcher's children (read from their TF_CONFIG)."""
    pids = {}
    for pid in Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split():
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        spec = next(e for e in environ if e.startswith(b"TF_CONFIG="))
        pids[json.loads(spec[len(b"TF_CONFIG="):])["task"]["index"]] = int(pid)
    return pids


def _launch_until(argv, line_start: str, action, scratch: Path) -> tuple[int, str]:
    """Starts the launcher; when a line starts with `line_start`, calls `action(worker_pids)`;
    returns the launcher's exit status and output."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(scratch)}
    proc = subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines, deadline = [], time.monotonic() + 300
    for line in proc.stdout:
        lines.append(line)
        if line.startswith(line_start) and action:
            action(_worker_pids(proc.pid))
            action = None
        assert time.monotonic() < deadline, "".join(lines[-30:])
    return proc.wait(timeout=60), "".join(lines)


@pytest.fixture(scope="module")
def long_runs(tmp_path_factory, corpus_dir):
    """STEPS steps on one device and, uninterrupted, on 2 workers."""
    from looptrain import config as config_lib

    config = config_lib.load_toml(ROOT / "configs" / "tiny.toml").replace(
        {"data.data_dir": str(corpus_dir)})
    base = tmp_path_factory.mktemp("long")
    single = _run([str(ROOT / "scripts" / "train.py"), *_train_args(config, base / "single", *LONG)])
    assert single.returncode == 0, single.stderr[-2000:]
    (base / "scratch").mkdir()
    status, output = _launch_until(_launch_args(config, base / "workers"), "", None, base / "scratch")
    assert status == 0, output[-3000:]
    return config, base, output


def test_two_workers_end_where_one_device_does_and_only_the_chief_writes(long_runs):
    config, base, output = long_runs
    assert "[worker 1] multiworker: 2 replicas, worker 1 of 2" in output
    assert "launch: all 2 workers finished" in output
    latest = tf.train.latest_checkpoint(str(base / "workers" / "checkpoints"))
    assert latest.endswith(f"ckpt-{STEPS}")
    assert _max_abs_diff(latest, tf.train.latest_checkpoint(str(base / "single" / "checkpoints"))) < 1e-4
    # TensorBoard from the chief only; the other worker's scratch directory is gone.
    assert len(list((base / "workers" / "logs" / "train").glob("events.out.tfevents.*"))) == 1
    assert not list((base / "scratch").glob("looptrain-*"))


def test_sigterm_to_one_worker_stops_all_and_a_sigkilled_run_resumes_exactly(long_runs, tmp_path):
    config, base, _ = long_runs
    run, scratch = tmp_path / "run", tmp_path / "scratch"
    scratch.mkdir()

    # Preemption: SIGTERM to worker 1 only; both workers checkpoint the same step and stop.
    status, output = _launch_until(_launch_args(config, run), "[worker 0] step     40",
                                   lambda pids: os.kill(pids[1], signal.SIGTERM), scratch)
    assert status == 128 + signal.SIGTERM, output[-3000:]
    stopped = [line for line in output.splitlines() if "stopped by SIGTERM" in line]
    assert any(line.startswith("[worker 0]") and "(sent to another worker)" in line for line in stopped)
    assert any(line.startswith("[worker 1]") for line in stopped)
    steps = {int(line.split(" at step ")[1].split(";")[0]) for line in stopped}
    assert len(steps) == 1 and 40 <= steps.pop() < STEPS

    # A crash: SIGKILL to the chief after the resumed run's next checkpoint; the launcher stops
    # the other worker.
    resume = [str(ROOT / "scripts" / "launch_local.py"), "--num-workers", "2", "--grace-seconds", "20",
              "--", "--run-dir", str(run), "--resume"]
    status, output = _launch_until(resume, "[worker 0] step     80",
                                   lambda pids: os.kill(pids[0], signal.SIGKILL), scratch)
    assert status == 128 + signal.SIGKILL, output[-3000:]
    assert "launch: worker 0 exited with 137; stopped the others" in output
    # The survivor says what happened in one line.
    assert re.search(r"\[worker 1\] error: lost contact with another worker \(.*\); stopped without "
                     r"saving; the last checkpoint is step \d+; start all workers again with --resume",
                     output), output[-3000:]
    # 4, or 143 where the launcher's SIGTERM arrives after the worker stopped catching signals.
    assert re.search(r"exit statuses by worker: 137, (4|143)\)", output)

    status, output = _launch_until(resume, "", None, scratch)
    assert status == 0, output[-3000:]
    assert "[worker 1] resumed from" in output
    # The killed worker's scratch directory was cleaned up too (a killed process leaves autograph's
    # temporary files, which are TensorFlow's).
    assert not list(scratch.glob("looptrain-*"))
    assert_same_variables(tf.train.latest_checkpoint(str(run / "checkpoints")),
                          tf.train.latest_checkpoint(str(base / "workers" / "checkpoints")))


def test_a_user_task_trains_on_two_workers_like_on_one_device(tmp_path):
    """A task of the user's (its step built from lt.batch_mean and lt.apply_gradients) through
    launch_local: both workers load it from its file; the result equals one device's."""
    task = f"{ROOT / 'examples' / 'multilabel.py'}:MultiLabel"
    flags = ["--task", task, "--max-steps", "60", "--epochs", "10", "--eval-every", "30",
             "--checkpoint-every", "30", "--set", "task.width=8"]
    single = _run([str(ROOT / "scripts" / "train.py"), "--run-dir", str(tmp_path / "single"), *flags])
    assert single.returncode == 0, single.stderr[-2000:]
    (tmp_path / "scratch").mkdir()
    status, output = _launch_until(
        [str(ROOT / "scripts" / "launch_local.py"), "--num-workers", "2", "--",
         "--run-dir", str(tmp_path / "workers"), *flags], "", None, tmp_path / "scratch")
    assert status == 0, output[-3000:]
    latest = tf.train.latest_checkpoint(str(tmp_path / "workers" / "checkpoints"))
    reference = tf.train.latest_checkpoint(str(tmp_path / "single" / "checkpoints"))
    assert latest.endswith("ckpt-60") and _max_abs_diff(latest, reference) < 1e-4
