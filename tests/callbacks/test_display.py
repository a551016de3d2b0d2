"""What a user sees in the terminal: the bar and log lines fit the width, one stop message, hints
that name the command the user ran, the end-of-run summary."""

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from looptrain.app import hints
from looptrain.callbacks.progress import COMPILING, Display, clock, eval_line

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's looptrain in subprocesses
TRAIN = {"train/loss": 2.30691, "train/accuracy": 0.08281, "train/grad_norm": 0.32,
         "train/learning_rate": 0.001}
VAL = {"val/loss": 2.30631, "val/accuracy": 0.10602}


def _loop(step=120, total=1250, per_epoch=125):
    return SimpleNamespace(step=step, total_steps=total, steps_per_epoch=per_epoch,
                           train_logs=TRAIN, epoch_of=lambda s: s // per_epoch + 1)


def _bar_lines(display: Display, width: int) -> list[str]:
    out = io.StringIO()
    Console(file=out, width=width, force_terminal=True, color_system=None).print(
        display._progress.make_tasks_table(display._progress.tasks))
    return out.getvalue().rstrip("\n").splitlines()


@pytest.mark.parametrize("width", [120, 80, 60, 40])
def test_the_bar_and_evaluation_lines_fit_the_width(width, tmp_path):
    out = io.StringIO()
    display = Display(Console(file=out, width=width, force_terminal=True, color_system=None),
                      best=SimpleNamespace(best_value=0.9123, consider=lambda step, logs: True,
                                           monitor="val/accuracy"))
    display.log_to(tmp_path / "log")  # the lines the terminal shows, without the bar
    loop = _loop()
    display.on_fit_begin(loop)
    before = _bar_lines(display, width)
    assert len(before) == 1 and "120/1250" in before[0]
    assert (COMPILING in before[0]) == (width >= 60)  # while the first call compiles
    display.on_call_end(loop, SimpleNamespace(logs=TRAIN))
    (line,) = _bar_lines(display, width)
    assert len(line) <= width - 3  # room for a "^C" echo
    assert "120/1250" in line
    if width >= 60:
        assert "loss 2.30" in line and "eta " in line
    if width >= 80:
        assert "ep 1/10" in line or "epoch 1/10" in line
    if width >= 120:
        assert "acc 0.0828" in line and "steps/s" in line and "best 0.9123" in line
    display.on_eval_end(loop, VAL)
    display.stop()
    printed = [line[20:] for line in (tmp_path / "log").read_text().splitlines()]
    assert printed and all(len(line) <= min(79, width - 1) for line in printed), printed
    assert "val loss 2.3063" in printed[-1] and "*best" in printed[-1]


def test_the_epoch_total_comes_from_max_steps_when_it_ends_the_run_first():
    display = Display(Console(file=io.StringIO(), width=100, force_terminal=True, color_system=None))
    loop = _loop(step=260, total=300)  # --max-steps 300 of 10 epochs of 125 steps
    display.on_fit_begin(loop)
    display.on_call_end(loop, SimpleNamespace(logs=TRAIN))
    assert "epoch 3/3" in _bar_lines(display, 100)[0]
    display.stop()


def test_evaluation_lines_drop_training_values_before_validation_ones():
    full = eval_line(100, "epoch 1/10", TRAIN, "val", VAL, True, limit=200)
    assert full == ("step    100  epoch 1/10 | train loss 2.3069  acc 0.0828  grad_norm 0.3200 | "
                    "val loss 2.3063  acc 0.1060  *best")
    short = eval_line(100, "epoch 1/10", TRAIN, "val", VAL, True)
    assert len(short) <= 79 and short.endswith("| val loss 2.3063  acc 0.1060  *best")
    assert "train loss 2.3069" in short
    many = {f"val/metric_{i}": 0.5 for i in range(12)}
    assert len(eval_line(100, "epoch 1/10", TRAIN, "val", many, False)) <= 79


def test_a_display_stops_once_and_can_be_used_again():
    out = io.StringIO()
    display = Display(Console(file=out, width=80, force_terminal=True, color_system=None))
    display.on_fit_begin(_loop())
    display.on_stop(None, "signal")
    after_first = out.getvalue()
    display.on_fit_end(None, None)
    assert out.getvalue() == after_first  # the last bar is not drawn a second time
    display.on_fit_begin(_loop(step=200))
    assert len(display._progress.tasks) == 1
    display.on_fit_end(None, None)  # nothing was left to do: no call compiled
    assert COMPILING not in "".join(_bar_lines(display, 80))


def test_hints_name_the_command_the_user_ran(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "scripts" / "train.py")])
    monkeypatch.delenv(hints.INVOKED_AS, raising=False)
    python = sys.executable if os.path.relpath(sys.executable).startswith("..") else \
        os.path.relpath(sys.executable)
    assert hints.resume("runs/x") == f"{python} scripts/train.py --run-dir runs/x --resume"
    assert hints.resume("runs/x", flags="--on-nan skip") == \
        f"{python} scripts/train.py --run-dir runs/x --resume --on-nan skip"
    assert hints.evaluate("runs/x") == f"{python} scripts/evaluate.py --run-dir runs/x"
    monkeypatch.setenv(hints.INVOKED_AS, "make")
    assert hints.resume("runs/x") == "make resume RUN=x"
    assert hints.resume("runs/x", flags="--on-nan skip") == "make resume RUN=x ARGS='--on-nan skip'"
    assert hints.evaluate(tmp_path / "runs" / "x") == "make eval RUN=x"
    assert hints.tensorboard("runs/x") == "make tensorboard"
    assert hints.resume("/elsewhere/x").endswith("--run-dir /elsewhere/x --resume")  # no RUN= for it
    monkeypatch.setattr(sys, "argv", ["/usr/bin/looptrain-train"])
    monkeypatch.delenv(hints.INVOKED_AS)
    assert hints.resume("runs/x") == "looptrain-train --run-dir runs/x --resume"


def _make(*args, cwd=ROOT, **env):
    return subprocess.run(["make", "--no-print-directory", *args], cwd=cwd, capture_output=True,
                          text=True, env={**ENV, **env}, timeout=60)


@pytest.fixture
def run_in_runs():
    """A run directory under the repository's runs/ (where `make ... RUN=x` looks)."""
    name = f"test-display-{os.getpid()}"
    run = ROOT / "runs" / name
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-5"\n')
    yield name
    shutil.rmtree(run)


def test_make_names_make_targets_in_the_refusal_and_max_steps_0_is_refused(run_in_runs, tmp_path):
    done = _make("train", f"RUN={run_in_runs}", f"PY={sys.executable}", "STAMP=")
    assert done.returncode == 2 and done.stderr.splitlines()[0].endswith(
        f"already holds a run with checkpoints: continue it with make resume RUN={run_in_runs}, or "
        f"choose another RUN="), done.stderr
    refused = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), "--max-steps",
                              "0", "--run-dir", str(tmp_path / "new")], capture_output=True,
                             text=True, timeout=60, env=ENV)
    assert refused.returncode == 2
    assert refused.stderr.strip() == ("error: --max-steps must be at least 1, got 0 (leave it out "
                                      "for no limit)")


def test_make_help_lists_every_target_and_help_names_every_model():
    listed = _make("help").stdout
    for target in ("train", "resume", "eval", "runs", "tensorboard", "test", "help"):
        assert f"make {target} " in listed
    from looptrain.models import registered_names

    text = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), "--help"],
                          capture_output=True, text=True, timeout=60, env=ENV).stdout
    assert all(name in " ".join(text.split()) for name in registered_names())


def test_clock():
    assert [clock(s) for s in (4.4, 65, 3725)] == ["4s", "1m05s", "1h02m"]
