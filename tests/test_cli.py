"""The scripts' user-error contract: one line on stderr, exit status 2, nothing lost."""

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, snapshot, write_data
from looptrain.cli import evaluate_main, run_main, train_main


def _script(*args, cwd=ROOT):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / args[0]), *args[1:]], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def _tiny_args(corpus_dir, run, *extra):
    return ["--config", str(ROOT / "configs" / "tiny.toml"), "--data-dir", str(corpus_dir),
            "--run-dir", str(run), *extra]


def test_script_reports_an_unknown_key_in_one_line(tmp_path):
    proc = _script("train.py", "--run-dir", str(tmp_path / "r"), "--set", "train.bogus=1")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: --set train.bogus=1: unknown config key 'train.bogus'")
    assert not (tmp_path / "r").exists()


def test_script_reports_a_malformed_data_line_and_creates_no_run(tmp_path):
    data = write_data(tmp_path / "d", "体育\t比赛\n财经股票\n")
    proc = _script("train.py", *_tiny_args(data, tmp_path / "r"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last == f"error: {data / 'train.txt'}:2: line has no tab; every line must be label<TAB>text"
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("argv, message", [
    (["--config", "nope.toml"], "config file nope.toml does not exist"),
    (["--batch-size", "-5"], "--batch-size: 'train.batch_size' must be >= 1, got -5"),
    (["--set", "model.dropout=2"], "--set: 'model.dropout' must be <= 0.99, got 2.0"),
    (["--resume"], "--resume: run directory"),
    (["--model", "bert"], "'model.name' is 'bert', which is not a registered model"),
])
def test_train_user_errors_exit_2_with_one_line(tmp_path, capsys, argv, message):
    assert run_main(train_main, ["--run-dir", str(tmp_path / "r"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_bad_flag_value_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        train_main(["--batch-size", "abc"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --batch-size: invalid int value: 'abc'" in err and err.count("\n") == 1


def test_existing_run_and_architecture_change_on_resume_lose_nothing(corpus_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert run_main(train_main, _tiny_args(corpus_dir, run, "--max-steps", "20")) == 0
    before = snapshot(run)
    capsys.readouterr()

    assert run_main(train_main, _tiny_args(corpus_dir, run)) == 2
    assert "already holds a run with checkpoints" in capsys.readouterr().err

    argv = ["--run-dir", str(run), "--resume", "--set", "model.embedding_dim=77"]
    assert run_main(train_main, argv) == 2
    err = capsys.readouterr().err
    assert "cannot change 'model.embedding_dim' of a resumed run (saved 8, given 77)" in err
    assert snapshot(run) == before

    assert run_main(train_main, ["--run-dir", str(run), "--resume", "--max-steps", "30"]) == 0
    assert "step 30" in capsys.readouterr().out


def test_the_starting_command_plus_resume_continues_and_only_a_real_change_is_refused(
        corpus_dir, tmp_path, capsys):
    run = tmp_path / "run"
    command = _tiny_args(corpus_dir, run, "--max-steps", "10", "--set", "model.dropout=0.3")
    for resume in ("--resume=auto", "--resume=auto"):  # starts the run, then continues it
        assert run_main(train_main, [*command, resume]) == 0
    assert "nothing left to do at step 10" in capsys.readouterr().out
    before = snapshot(run)
    # The same --config and flags again, with --resume: accepted; a longer run: allowed.
    assert run_main(train_main, [*_tiny_args(corpus_dir, run, "--max-steps", "15", "--set",
                                             "model.dropout=0.3"), "--resume"]) == 0
    assert "step 15" in capsys.readouterr().out
    # Another dropout is a real change of what the run is: refused, naming the key.
    assert run_main(train_main, [*_tiny_args(corpus_dir, run, "--set", "model.dropout=0.1"),
                                 "--resume"]) == 2
    err = capsys.readouterr().err
    assert "cannot change 'model.dropout' of a resumed run (saved 0.3, given 0.1)" in err
    assert snapshot(run)[Path("config.json")] != before[Path("config.json")]  # max_steps 15 saved


def test_evaluate_prints_test_metrics_and_errors_on_missing_runs(corpus_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert run_main(train_main, _tiny_args(corpus_dir, run, "--max-steps", "20")) == 0
    capsys.readouterr()
    assert run_main(evaluate_main, ["--run-dir", str(run)]) == 0
    out = capsys.readouterr().out
    assert "test loss" in out and "accuracy" in out and "best-20" in out and "time used" in out

    assert run_main(evaluate_main, ["--run-dir", str(tmp_path / "missing")]) == 2
    assert "is not a looptrain run directory" in capsys.readouterr().err
    assert run_main(evaluate_main, ["--run-dir", str(run), "--checkpoint", str(run / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_the_commands_import_tensorflow_without_scikit_learn():
    # Keras imports scikit-learn (installed with the dev extra) for wrappers no command uses:
    # ~0.7 s of every start. It stays importable for whoever wants it afterwards.
    pytest.importorskip("sklearn")
    code = ("import sys; from looptrain.quiet import import_tensorflow; import_tensorflow(); "
            "print('sklearn' in sys.modules); import sklearn; print(sklearn.__name__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "sklearn"]


def test_a_run_prints_no_tensorflow_start_up_lines(corpus_dir, tmp_path):
    done = _script("train.py", *_tiny_args(corpus_dir, tmp_path / "run", "--max-steps", "5",
                                           "--eval-every", "5"))
    assert done.returncode == 0, done.stderr[-2000:]
    for noise in ("absl::InitializeLog", "oneDNN", "node_def_util", "cpu_feature_guard"):
        assert noise not in done.stderr + done.stdout, noise
