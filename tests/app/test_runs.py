"""`make runs`: the table of runs, with the state of each read from the files a run writes."""

import io
import json
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from looptrain.app.runs import find_runs, main, runs_table
from looptrain.lock import RunLock

ROOT = Path(__file__).resolve().parents[2]


def _run(path: Path, *, monitor="val/accuracy", mode="max", values=(0.5, 0.7, 0.6), model="textcnn",
         task=None, log="step     20 | val loss 1.0", checkpoint=30) -> Path:
    path.mkdir(parents=True)
    (path / "fit.json").write_text(json.dumps(
        {"task": "Classification", "settings": {"monitor": monitor, "mode": mode}}))
    (path / "config.json").write_text(json.dumps(
        {"model": {"name": model}, "task": {"path": task} if task else {}}))
    with open(path / "metrics.jsonl", "w") as f:
        for i, value in enumerate(values):
            f.write(json.dumps({"step": 10 * (i + 1), monitor: value, "val/loss": 1.0}) + "\n")
        f.write('{"step": 40, "train/lo')  # a line torn by a kill
    (path / "train.log").write_text(f"2026-01-01 00:00:00 {log}\n")
    (path / "checkpoints").mkdir()
    (path / "checkpoints" / "checkpoint").write_text(f'model_checkpoint_path: "ckpt-{checkpoint}"\n')
    return path


def test_each_state_and_the_values_come_from_the_run_files(tmp_path):
    runs = tmp_path / "runs"
    finished = _run(runs / "finished")
    (finished / "finished.json").write_text('{"step": 30}')
    (finished / "eval").mkdir()
    (finished / "eval" / "report.json").write_text('{"accuracy": 0.6812}')
    _run(runs / "stopped", checkpoint=50)
    _run(runs / "diverged", log="step 31: non-finite loss or gradient (loss nan); training stopped")
    running = _run(runs / "group" / "running", monitor="val/mse", mode="min", values=(3.0, 1.5, 2.0),
                   task="examples/regression.py:Regression")
    (runs / "not-a-run").mkdir()
    with RunLock(running):
        rows = {row.name: row for row in find_runs(runs)}
    assert {name: row.state for name, row in rows.items()} == {
        "finished": "finished", "stopped": "stopped", "diverged": "diverged",
        "group/running": "running"}
    assert rows["finished"].best == 0.7 and rows["finished"].best_step == 20
    assert rows["finished"].test == 0.6812 and rows["stopped"].test is None
    assert rows["stopped"].step == 50 and rows["finished"].step == 30  # checkpoint or metrics
    user = rows["group/running"]  # a user task: its own monitor, minimised
    assert (user.model, user.monitor, user.best, user.best_step) == (
        "regression.py:Regression", "val/mse", 1.5, 20)
    assert find_runs(runs)[-1].state == "stopped"  # the lock is released with its holder

    out = io.StringIO()
    Console(file=out, width=80).print(runs_table(list(rows.values())))
    lines = out.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert lines[0].split() == ["run", "model", "step", "state", "monitor", "best", "test"]
    assert lines[2].split() == ["finished", "textcnn", "30", "finished", "val/accuracy", "0.7000",
                                "@20", "0.6812"]


def test_the_script_answers_without_tensorflow(tmp_path, capsys):
    _run(tmp_path / "runs" / "a")
    assert main([str(tmp_path / "runs")]) == 0
    assert "stopped" in capsys.readouterr().out
    assert main([str(tmp_path / "none")]) == 0
    assert "no runs under" in capsys.readouterr().out
    code = ("import runpy, sys; sys.argv = ['scripts/runs.py', sys.argv[1]]; "
            "runpy.run_path('scripts/runs.py', run_name='__main__')")
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code, str(tmp_path / "runs")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and "a " in done.stdout
    assert "tensorflow" not in done.stderr  # the import-time log names every module imported
