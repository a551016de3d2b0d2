"""Fault tolerance: kills, signals, divergence, a second trainer and damaged checkpoints.

The promise under test: kill a run at any moment, `--resume` it, and the final variables are
bit-for-bit those of the run that was never interrupted; and nothing ever loses a run.
"""

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT, assert_same_variables, shown_python, snapshot

from looptrain.errors import RunDirError, Stopped, TrainingDiverged
from looptrain.lock import RunLock
from looptrain.tasks import losses as losses_lib
from looptrain.app.experiment import train_and_evaluate
from looptrain.callbacks.progress import Display
from looptrain.engine.signals import StopSignals
from summaries import read_scalars

# XLA on, as users get it with TextCNN (tiny.toml turns it off to keep the other tests fast).
LONG = {"train.num_epochs": 40, "train.max_steps": 400, "train.checkpoint_every": 10,
        "train.eval_every": 50, "train.jit_compile": "on"}


def _train_cmd(config, run, *, resume=False):
    flags = ["--run-dir", str(run)]
    flags += ["--resume"] if resume else [
        "--config", str(ROOT / "configs" / "tiny.toml"), "--data-dir", config.data.data_dir,
        "--epochs", "40", "--max-steps", "400", "--checkpoint-every", "10", "--eval-every", "50",
        "--set", "train.jit_compile=on"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(ROOT / "scripts" / "train.py"), *flags],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _latest_step(run: Path) -> int:
    steps = [int(p.name[5:-6]) for p in (run / "checkpoints").glob("ckpt-*.index")]
    return max(steps, default=-1)


def _wait_for_checkpoint_after(proc, run: Path, step: int, timeout=120.0) -> None:
    deadline = time.monotonic() + timeout
    while _latest_step(run) <= step:
        assert proc.poll() is None, f"trainer exited early: {proc.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, "no new checkpoint in time"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory, corpus_dir):
    """The uninterrupted 400-step run every interrupted one must equal."""
    from conftest import ROOT as root
    from looptrain import config as config_lib
    from rich.console import Console

    config = config_lib.load_toml(root / "configs" / "tiny.toml").replace(
        {"data.data_dir": str(corpus_dir), **LONG})
    run = tmp_path_factory.mktemp("straight") / "run"
    train_and_evaluate(config, run, display=Display(Console(file=open(os.devnull, "w"))))
    return run


def _final(run: Path) -> str:
    return tf.train.latest_checkpoint(str(run / "checkpoints"))


def test_sigkill_at_random_moments_then_resume_is_bit_identical(tiny_config, tmp_path, straight_run):
    rng_seed = random.randrange(1 << 30)
    rng = random.Random(rng_seed)
    run = tmp_path / "run"
    proc, killed_after = _train_cmd(tiny_config, run), []
    for _ in range(3):
        _wait_for_checkpoint_after(proc, run, max(killed_after, default=0) + 30)
        time.sleep(rng.uniform(0.0, 0.3))  # anywhere: in a step, an evaluation or a save
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        killed_after.append(_latest_step(run))
        proc = _train_cmd(tiny_config, run, resume=True)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert "step 400" in out
    assert len(set(killed_after)) == 3 and max(killed_after) < 400, (killed_after, rng_seed)
    assert _final(run).endswith("ckpt-400")
    names = assert_same_variables(_final(run), _final(straight_run))
    assert any(n.startswith("untracked/") for n in names)  # dropout was on
    assert (run / "train.log").read_text().count("resumed from") == 3
    # TensorBoard shows every step once, with the values of the uninterrupted run.
    assert read_scalars(run / "logs") == read_scalars(straight_run / "logs")


def test_sigterm_finishes_the_step_checkpoints_and_exits_143(tiny_config, tmp_path, quiet_display,
                                                             straight_run):
    run = tmp_path / "run"
    proc = _train_cmd(tiny_config, run)
    _wait_for_checkpoint_after(proc, run, 30)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert "Traceback" not in err
    step = _latest_step(run)
    # Said once, by the loop's log (not again on stderr), with the Python that ran the script.
    message = (f"stopped by SIGTERM at step {step}; checkpoint {run}/checkpoints/ckpt-{step} "
               f"written; continue with: {shown_python()} scripts/train.py --run-dir {run} --resume")
    assert out.strip().splitlines()[-1] == message and (out + err).count("stopped by") == 1
    assert 30 < step < 400
    resumed = train_and_evaluate(tiny_config.replace(LONG), run, resume=True, display=quiet_display)
    assert resumed.step == 400
    assert_same_variables(_final(run), _final(straight_run))


class _SignalAt(Display):
    """Sends this process `signum` when the loop reports `step`, as a terminal's Ctrl-C would."""

    def __init__(self, step, signum):
        from rich.console import Console
        super().__init__(Console(file=open(os.devnull, "w")))
        self.at, self.signum = step, signum

    def on_call_end(self, loop, result):
        if loop.step == self.at:
            os.kill(os.getpid(), self.signum)
        super().on_call_end(loop, result)


def test_ctrl_c_finishes_the_step_and_checkpoints_then_exits_130(tiny_config, tmp_path, tiny_run,
                                                                quiet_display):
    run = tmp_path / "run"
    with pytest.raises(Stopped) as stopped:
        train_and_evaluate(tiny_config, run, display=_SignalAt(25, signal.SIGINT))
    assert stopped.value.exit_code == 130
    assert str(stopped.value).startswith(f"stopped by SIGINT at step 25; checkpoint "
                                         f"{run}/checkpoints/ckpt-25 written")
    assert _latest_step(run) == 25
    train_and_evaluate(tiny_config, run, resume=True, display=quiet_display)
    assert_same_variables(_final(run), _final(tiny_run))


def test_second_ctrl_c_aborts_at_once():
    with StopSignals() as signals:
        os.kill(os.getpid(), signal.SIGINT)
        assert signals.requested == signal.SIGINT and signals.name == "SIGINT"
        os.kill(os.getpid(), signal.SIGTERM)  # a repeated SIGTERM changes nothing
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.fixture()
def poison(monkeypatch):
    """`poison(steps)` makes the loss of those steps (counted from 1 in this process) NaN.

    The patched loss counts its own calls in a variable, so it also works inside the compiled
    multi-step loop, where no Python runs between steps.
    """
    calls, bad = tf.Variable(0, dtype=tf.int64), tf.Variable(tf.zeros([8], tf.int64))
    original = losses_lib.cross_entropy

    def loss(labels, logits):
        calls.assign_add(1)
        nan = tf.reduce_any(tf.equal(bad, calls))
        return original(labels, logits) * tf.where(nan, float("nan"), 1.0)

    monkeypatch.setattr(losses_lib, "cross_entropy", loss)
    return lambda steps: bad.assign(list(steps) + [0] * (8 - len(steps)))


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tiny_config, tmp_path,
                                                                      quiet_display, poison):
    run = tmp_path / "run"
    poison([33])  # inside a 5-step compiled call (31-35): the call ends right after it
    with pytest.raises(TrainingDiverged) as error:
        train_and_evaluate(tiny_config.replace({"train.eval_every": 100}), run, display=quiet_display)
    assert error.value.exit_code == 3
    assert str(error.value).startswith(
        f"step 33: non-finite loss or gradient (loss nan, grad_norm nan); training stopped and nothing was saved "
        f"after step 20; the last good checkpoint is {run}/checkpoints/ckpt-20.")
    assert str(error.value).endswith(f" --run-dir {run} --resume --on-nan skip")  # the CLI form
    assert _latest_step(run) == 20
    for index in (run / "checkpoints").glob("ckpt-*.index"):
        prefix = str(index)[:-6]
        for name, _ in tf.train.list_variables(prefix):
            value = tf.train.load_variable(prefix, name)
            if np.issubdtype(np.asarray(value).dtype, np.floating):
                assert not np.isnan(value).any(), (prefix, name)
    assert "step 33: non-finite loss" in (run / "train.log").read_text()
    # The call cut short at step 33 wrote no training scalars: the last are those of step 30.
    assert max(step for step, _ in read_scalars(run / "logs")["train/loss"]) == 30


def test_on_nan_skip_skips_the_batch_and_counts_it(tiny_config, tmp_path, quiet_display, poison):
    run = tmp_path / "run"
    config = tiny_config.replace({"train.on_nan": "skip", "train.eval_every": 100})
    poison([12, 33, 34])
    result = train_and_evaluate(config, run, display=quiet_display)
    assert result.step == 60
    final = tf.train.latest_checkpoint(str(run / "checkpoints"))
    assert tf.train.load_variable(final, "nonfinite_steps/.ATTRIBUTES/VARIABLE_VALUE") == 3
    # Skipped steps apply no update: the optimizer counted 57 updates in 60 steps.
    assert tf.train.load_variable(final, "task/optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 57
    assert dict(read_scalars(run / "logs")["train/nonfinite_steps"])[60] == 3
    log = (run / "train.log").read_text()
    assert "step 12: non-finite loss or gradient (loss nan, grad_norm nan); batch skipped (1 so far)" in log
    assert ("steps 31-35: 2 batches skipped, the last at step 34 with non-finite loss or gradient "
            "(loss nan, grad_norm nan) (3 so far)") in log


def test_a_run_directory_in_use_is_refused(tiny_config, tmp_path, quiet_display):
    run = tmp_path / "run"
    train_and_evaluate(tiny_config.replace({"train.max_steps": 20}), run, display=quiet_display)
    with RunLock(run):
        before = snapshot(run)
        with pytest.raises(RunDirError, match=f"{run} is in use by another trainer \\(pid "
                                              f"{os.getpid()} on .*\\); wait for it"):
            train_and_evaluate(tiny_config, run, resume=True, display=quiet_display)
        assert snapshot(run) == before
    fresh = tmp_path / "fresh"
    with RunLock(fresh), pytest.raises(RunDirError, match="in use by another trainer"):
        train_and_evaluate(tiny_config, fresh, display=quiet_display)


def test_a_killed_trainer_does_not_leave_its_run_locked(tmp_path):
    code = ("import sys, time; from looptrain.lock import RunLock\n"
            "with RunLock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline() == "locked\n"
    with pytest.raises(RunDirError, match="in use"):
        RunLock(tmp_path).__enter__()
    proc.kill()
    proc.wait()
    with RunLock(tmp_path):
        pass


def test_resume_falls_back_to_the_newest_readable_checkpoint(tiny_config, tmp_path, quiet_display,
                                                              tiny_run):
    run = tmp_path / "run"
    config = tiny_config.replace({"train.max_steps": 40})
    train_and_evaluate(config, run, display=quiet_display)
    # A half-written newest checkpoint: its data file cut short, the index intact.
    data = next((run / "checkpoints").glob("ckpt-40.data-*"))
    data.write_bytes(data.read_bytes()[:1000])
    resumed = train_and_evaluate(tiny_config, run, resume=True, display=quiet_display)
    assert (resumed.step, resumed.steps_run) == (60, 40)
    log = (run / "train.log").read_text()
    assert f"warning: skipped unreadable checkpoint {run}/checkpoints/ckpt-40" in log
    assert f"resumed from {run}/checkpoints/ckpt-20 at step 20" in log
    assert_same_variables(_final(run), _final(tiny_run))


def test_a_checkpoint_complete_but_not_yet_indexed_is_resumed_and_indexed(tiny_config, tmp_path,
                                                                         quiet_display):
    run = tmp_path / "run"
    config = tiny_config.replace({"train.max_steps": 40})
    train_and_evaluate(config, run, display=quiet_display)
    index = run / "checkpoints" / "checkpoint"  # as if killed between ckpt-40's files and its index
    index.write_text(index.read_text().replace('model_checkpoint_path: "ckpt-40"',
                                               'model_checkpoint_path: "ckpt-20"'))
    assert _final(run).endswith("ckpt-20")
    resumed = train_and_evaluate(config, run, resume=True, display=quiet_display)
    assert (resumed.step, resumed.steps_run) == (40, 0)  # nothing left to do, and yet:
    assert _final(run).endswith("ckpt-40")  # `latest` readers see what was restored


def test_a_run_killed_before_its_first_checkpoint_resumes_from_step_0(tiny_config, tmp_path,
                                                                      quiet_display):
    run = tmp_path / "run"
    train_and_evaluate(tiny_config.replace({"train.max_steps": 1}), run, display=quiet_display)
    for path in (run / "checkpoints").iterdir():  # as if killed while writing ckpt-0
        path.unlink()
    (run / "best").unlink()  # (which comes before the first evaluation and its best copy)
    shutil.rmtree(run / "best.1")
    result = train_and_evaluate(tiny_config.replace({"train.max_steps": 20}), run, resume=True,
                                display=quiet_display)
    assert (result.step, result.steps_run) == (20, 20)
    assert "no complete checkpoint; starting from step 0" in (run / "train.log").read_text()


def test_best_is_swapped_atomically_and_old_copies_are_removed(tiny_config, tmp_path, quiet_display):
    run = tmp_path / "run"
    train_and_evaluate(tiny_config, run, display=quiet_display)
    assert (run / "best").is_symlink()
    best = json_load(run / "best" / "best.json")
    assert os.readlink(run / "best") == f"best.{best['step']}"
    assert [p.name for p in run.glob("best.*")] == [f"best.{best['step']}"]
    assert tf.train.latest_checkpoint(str(run / "best")).endswith(f"best-{best['step']}")


def json_load(path):
    import json
    return json.loads(Path(path).read_text())


def test_stopped_carries_the_signal_exit_status():
    assert Stopped("x", signal.SIGTERM).exit_code == 143
    assert Stopped("x", signal.SIGINT).exit_code == 130
