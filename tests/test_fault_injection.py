"""Fault injection: a full disk, read-only storage, SIGKILL at every write of a checkpoint, a best
copy, an export and a report, and readers running while a trainer writes.

Each asserts the promise of "When something is wrong" (docs/fault-tolerance.md): one line (no traceback), nothing
lost (the last good checkpoint and the old report stay readable, no half-written export), the
leftovers removed by the next start, and a continued run bit-for-bit equal to one never
interrupted. The kills and the simulated full disk come from `tests/faultpoints.py` (a file-size
limit past which writes fail, as on a full disk, where no small tmpfs can be mounted); the real
tmpfs and read-only mounts need root and are skipped without it (a read-only directory is made
with chmod for other users). `pytest -m faults` runs the suite; the slow part runs in
`make test-slow`.
"""

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import tensorflow as tf
from conftest import ROOT, assert_same_variables, snapshot

import looptrain as lt
from looptrain.app.evaluation import evaluate_run, save_report
from looptrain.app.experiment import train_and_evaluate
from looptrain.app.export import export_run
from looptrain.app.predict import Predictor
from looptrain.app.trained import load_trained
from looptrain.cli import evaluate_main, export_main, predict_main, run_main, train_main
from looptrain.errors import UserError
from looptrain.files import TEMP_NAME
from looptrain.user_code import import_attr

pytestmark = pytest.mark.faults
INJECT = ROOT / "tests" / "faultpoints.py"


def _inject(script: str, under: Path, at: int, *argv, match=(), fsize=None) -> subprocess.CompletedProcess:
    """`script argv` in a process that is SIGKILLed at its `at`-th write under `under` (or whose
    writes past `fsize` bytes fail from then on)."""
    cmd = [sys.executable, str(INJECT), "--under", str(under), "--at", str(at),
           *[f"--match={m}" for m in match], *(["--fsize", str(fsize)] if fsize else []),
           "--", script, *map(str, argv)]
    return subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=600)


def _one_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    (line,) = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    return line


def leftovers(run: Path) -> list[str]:
    """What an interrupted save may leave and the next start must have removed."""
    best = run / "best"
    current = os.readlink(best) if best.is_symlink() else None
    return sorted(str(p.relative_to(run)) for p in run.rglob("*")
                  if "_temp" in p.name or ".tempstate" in p.name or TEMP_NAME.fullmatch(p.name)
                  or p.name in (".best.tmp", ".readers") or p.name.startswith("checkpoint.tmp")
                  or (p.parent == run and re.fullmatch(r"best\.\d+", p.name) and p.name != current))


def _final(run: Path) -> str:
    return tf.train.latest_checkpoint(str(run / "checkpoints"))


@contextmanager
def _mounted(*args):
    """`mount args...` for the block (unmounted after it); the test is skipped where it fails."""
    proc = subprocess.run(["mount", *map(str, args)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount here ({proc.stderr.strip() or 'mount failed'}); needs root")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(args[-1])], capture_output=True)


@contextmanager
def _read_only(directory: Path):
    """`directory` read-only for the block: chmod for a user, a read-only bind mount for root
    (whom permissions do not stop)."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [directory, *directory.rglob("*")] if not p.is_symlink()}
        for path, mode in modes.items():
            os.chmod(path, mode & ~0o222)
        try:
            yield
        finally:
            for path, mode in modes.items():
                os.chmod(path, mode)
        return
    with _mounted("--bind", directory, directory):
        proc = subprocess.run(["mount", "-o", "remount,bind,ro", str(directory)], capture_output=True)
        if proc.returncode != 0:
            pytest.skip("cannot remount read-only here")
        yield


@pytest.fixture()
def run_at_20(tiny_config, tmp_path, quiet_display):
    """The tiny run stopped at step 20 (checkpoint and best copy there); continuing it to step 60
    must give `tiny_run` bit for bit."""
    run = tmp_path / "base"
    train_and_evaluate(tiny_config.replace({"train.max_steps": 20}), run, display=quiet_display)
    return run


def _resume_and_compare(tiny_config, run, tiny_run, display, *, step=60):
    """Continues `run` to `step` and compares it with the uninterrupted `tiny_run` there."""
    train_and_evaluate(tiny_config.replace({"train.max_steps": step}), run, resume=True,
                       display=display)
    assert_same_variables(_final(run), str(tiny_run / "checkpoints" / f"ckpt-{step}"))
    assert leftovers(run) == []


def test_read_only_storage_is_one_line_and_changes_nothing(trained_run, tmp_path, capsys):
    ro = tmp_path / "ro"
    shutil.copytree(trained_run, ro / "run", symlinks=True)
    (ro / "empty").mkdir()
    before = snapshot(ro)
    config = json.loads((ro / "run" / "config.json").read_text())
    with _read_only(ro):
        for main, argv in [
            (train_main, ["--config", str(ROOT / "configs" / "tiny.toml"), "--data-dir",
                          config["data"]["data_dir"], "--run-dir", str(ro / "empty" / "new")]),
            (train_main, ["--run-dir", str(ro / "run"), "--resume", "--max-steps", "80"]),
            (evaluate_main, ["--run-dir", str(ro / "run")]),
            (export_main, ["--run-dir", str(ro / "run"), "--out", str(ro / "model")])]:
            capsys.readouterr()
            assert run_main(main, argv) == 2, argv
            err = capsys.readouterr().err
            assert re.fullmatch(rf"error: {re.escape(str(ro))}/\S+: (read-only file system|permission "
                                rf"denied); (choose a directory you can write to|check its "
                                rf"permissions).*\n", err), err
        assert run_main(predict_main, ["--run-dir", str(ro / "run"), "体育比赛"]) == 0  # reads only
    assert snapshot(ro) == before


@pytest.mark.slow
def test_a_full_disk_during_training_keeps_the_last_checkpoint_and_resumes_exactly(
        tiny_config, run_at_20, tiny_run, quiet_display):
    # From the first write of a best copy or checkpoint on, no file may grow past 100 kB: the
    # checkpoint of step 40 (210 kB with Adam's slots) cannot be written, as on a full disk.
    proc = _inject("train", run_at_20, 1, "--run-dir", run_at_20, "--resume", "--max-steps", "40",
                   match=["best", "checkpoints"], fsize=100_000)
    assert re.fullmatch(rf"error: {run_at_20}/checkpoints/ckpt-40: file too large for the file system "
                        r"or the file-size limit \(ulimit -f\); raise the limit or choose another file "
                        r"system, and run it again with --resume=auto .*", _one_error(proc))
    assert _final(run_at_20).endswith("ckpt-20")  # the last good checkpoint, readable
    assert load_trained(run_at_20, checkpoint="latest").step == 20
    assert (run_at_20 / "checkpoints" / "ckpt-40_temp").exists()
    _resume_and_compare(tiny_config, run_at_20, tiny_run, quiet_display)
    assert "removed checkpoints/ckpt-40_temp, left by an interrupted save" in (
        run_at_20 / "train.log").read_text()


@pytest.mark.slow
def test_a_full_tmpfs_during_training_is_one_line_and_resumes_exactly(tiny_config, run_at_20, tmp_path,
                                                                     tiny_run, quiet_display):
    disk = tmp_path / "disk"
    disk.mkdir()
    used = sum(p.stat().st_size for p in run_at_20.rglob("*") if p.is_file())
    with _mounted("-t", "tmpfs", "-o", f"size={used + 120_000}", "tmpfs", disk):
        run = disk / "run"
        shutil.copytree(run_at_20, run, symlinks=True)
        proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), "--run-dir", str(run),
                               "--resume", "--max-steps", "40"], capture_output=True, text=True)
        assert re.fullmatch(rf"error: {run}/\S+: no space left on the device; free space on that file "
                            r"system, or choose a directory on another one, and run it again with "
                            r"--resume=auto .*", _one_error(proc))
        assert load_trained(run, checkpoint="latest").step == 20
        subprocess.run(["mount", "-o", "remount,size=50m", str(disk)], check=True)
        _resume_and_compare(tiny_config, run, tiny_run, quiet_display)


@pytest.mark.slow
def test_a_full_disk_during_export_and_evaluation_leaves_no_half_file(trained_run, tmp_path):
    run = shutil.copytree(trained_run, tmp_path / "run", symlinks=True)
    out = tmp_path / "out" / "model"
    proc = _inject("export", tmp_path / "out", 1, "--run-dir", run, "--out", out, fsize=10_000)
    assert re.fullmatch(rf"error: {out}: file too large .*", _one_error(proc))
    assert list((tmp_path / "out").iterdir()) == []  # neither a half model nor its temporary
    export_run(run, out)  # the retry
    assert tf.saved_model.load(str(out)).signatures["serving_default"] is not None

    save_report(run, evaluate_run(run))
    before = snapshot(run / "eval")
    proc = _inject("evaluate", run / "eval", 1, "--run-dir", run, fsize=1_000)
    assert re.fullmatch(rf"error: {run}/eval/\S+: file too large .*", _one_error(proc))
    assert snapshot(run / "eval") == before  # the old report, whole
    assert leftovers(run) == []


def _kill_at_every_write(make_state, command, check, *, match=()) -> int:
    """For N = 1, 2, ...: a fresh state, `command` SIGKILLed at its N-th write, then `check`;
    until the command finishes before its N-th write. Returns how many writes were covered."""
    for at in itertools.count(1):
        under, argv = make_state(at)
        proc = _inject(command, under, at, *argv, match=match)
        if proc.returncode == 0:
            assert f"faultpoints: done after {at - 1}" in proc.stderr, proc.stderr[-2000:]
            return at - 1
        assert proc.returncode == -9, proc.stderr[-3000:]
        check(at, proc.stderr.strip().splitlines()[-1])


@pytest.mark.slow
def test_sigkill_at_every_write_of_a_checkpoint_or_best_copy_then_resume_is_exact(
        tiny_config, run_at_20, tiny_run, tmp_path, quiet_display):
    def state(at):
        run = tmp_path / f"run{at}"
        shutil.copytree(run_at_20, run, symlinks=True)
        return run, ["--run-dir", run, "--resume", "--max-steps", "40"]

    def check(at, where):
        run = tmp_path / f"run{at}"
        for which in ("best", "latest"):  # readers find a whole checkpoint
            assert load_trained(run, checkpoint=which).step in (20, 40), (where, which)
        _resume_and_compare(tiny_config, run, tiny_run, quiet_display, step=40)
        shutil.rmtree(run)

    # best.40: its directory, SaveV2, merge, index, best.json, the link; then ckpt-40 alike.
    assert _kill_at_every_write(state, "train", check, match=["best", "checkpoints"]) >= 15


@pytest.mark.slow
def test_sigkill_at_every_write_of_an_export_then_the_retry_works(trained_run, tmp_path):
    run = shutil.copytree(trained_run, tmp_path / "run", symlinks=True)
    out = tmp_path / "model"

    def check(at, where):
        assert not out.exists(), where  # all or nothing: the rename is the last write
        export_run(run, out)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "run"], where
        assert (out / "saved_model.pb").is_file() and leftovers(run) == []
        shutil.rmtree(out)

    # The SavedModel's writes (the lease's are the report test's): its temporary directory,
    # variables (SaveV2, merge), saved_model.pb, fingerprint.pb, the rename.
    covered = _kill_at_every_write(lambda at: (tmp_path, ["--run-dir", run, "--out", out]), "export",
                                   check, match=["model"])
    assert covered >= 8


@pytest.mark.slow
def test_sigkill_at_every_write_of_a_report_keeps_each_file_whole(trained_run, tmp_path):
    run = shutil.copytree(trained_run, tmp_path / "run", symlinks=True)
    save_report(run, evaluate_run(run, checkpoint=str(run / "checkpoints" / "ckpt-20")))  # older
    old = snapshot(run / "eval")
    assert set(old) == {Path("report.json"), Path("report.txt"), Path("confusion_matrix.png")}
    parse = {"report.json": json.loads, "report.txt": bytes.decode, "confusion_matrix.png": tf.io.decode_png}

    def check(at, where):
        for name, read in parse.items():  # each file the old one or a whole new one
            data = (run / "eval" / name).read_bytes()
            if data != old[Path(name)]:
                assert data and read(data) is not None, (where, name)
        assert run_main(evaluate_main, ["--run-dir", str(run)]) == 0  # the next evaluation
        assert leftovers(run) == []
        for name in parse:
            (run / "eval" / name).write_bytes(old[Path(name)])

    # The image, the text and report.json, each a temporary file and its rename (a reader's
    # lease left by a kill: tests/engine/test_lease.py).
    assert _kill_at_every_write(lambda at: (run, ["--run-dir", run]), "evaluate", check,
                                match=["eval"]) >= 6


@pytest.mark.slow
def test_readers_never_fail_while_a_run_trains(corpus_dir, tmp_path):
    """A trainer checkpointing every 2 steps and keeping one checkpoint, its best copy replaced at
    every improvement, and evaluate, predict and export of `best` and `latest` in a loop."""
    run = tmp_path / "run"
    trainer = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "train.py"), "--config", str(ROOT / "configs" / "tiny.toml"),
         "--data-dir", str(corpus_dir), "--run-dir", str(run), "--epochs", "1000", "--max-steps", "1000000",
         "--checkpoint-every", "2", "--eval-every", "2", "--set", "train.keep_checkpoints=1",
         "--set", "train.monitor=val/loss", "--set", "train.log_every=2"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (run / "best").exists():
            assert trainer.poll() is None and time.monotonic() < deadline, trainer.stderr.read()
            time.sleep(0.1)
        first, failures, done = _latest_step(run), [], 0
        end = time.monotonic() + 20
        while time.monotonic() < end:
            for which in ("best", "latest"):
                try:
                    evaluate_run(run, checkpoint=which, split="val")
                    Predictor.from_run(run, checkpoint=which).predict(["体育比赛"])
                    export_run(run, tmp_path / f"model{done}", checkpoint=which)
                    done += 1
                except UserError as exc:
                    failures.append(f"{which}: {exc}")
        assert trainer.poll() is None
        assert failures == [] and done >= 4, failures
        assert _latest_step(run) > first + 20  # the trainer went on checkpointing (and pruning)
    finally:
        trainer.kill()
        trainer.wait()
    assert not (run / ".readers").exists()


@pytest.mark.slow
def test_lt_evaluate_of_a_users_task_never_fails_while_it_trains(tmp_path):
    shutil.copy(ROOT / "examples" / "regression.py", tmp_path / "regression.py")
    task = f"{tmp_path / 'regression.py'}:Regression"
    run = tmp_path / "run"
    trainer = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "train.py"), "--task", task, "--run-dir", str(run),
         "--epochs", "1000", "--max-steps", "1000000", "--checkpoint-every", "2", "--eval-every", "2",
         "--set", "train.keep_checkpoints=1", "--set", "task.width=16"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    regression = import_attr(task, "task")
    try:
        deadline = time.monotonic() + 120
        while not (run / "best").exists():
            assert trainer.poll() is None and time.monotonic() < deadline, trainer.stderr.read()
            time.sleep(0.1)
        first, failures, done = _latest_step(run), [], 0
        end = time.monotonic() + 10
        while time.monotonic() < end:
            for which in ("best", "latest"):
                try:
                    metrics = lt.evaluate(regression(width=16), data=regression().test_data(),
                                          run_dir=run, checkpoint=which)
                    assert set(metrics) == {"mse", "mae"}
                    done += 1
                except UserError as exc:
                    failures.append(f"{which}: {exc}")
        assert trainer.poll() is None
        assert failures == [] and done >= 4, failures
        assert _latest_step(run) > first + 20
    finally:
        trainer.kill()
        trainer.wait()


def _latest_step(run: Path) -> int:
    return max(int(p.name[5:-6]) for p in (run / "checkpoints").glob("ckpt-*.index"))


def test_predict_into_a_closed_pipe_ends_quietly(trained_run, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("体育比赛\n" * 5000, encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "predict.py"), "--run-dir",
                             str(trained_run), "--file", str(texts)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline()  # `| head -1`: one line, then the reader is gone
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert "Traceback" not in err and "Error" not in err
