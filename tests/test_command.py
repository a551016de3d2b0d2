"""The `looptrain` command: subcommands, --help before TensorFlow, the console script, bench."""

import subprocess
import sys
import tomllib

import pytest

from conftest import ROOT
from looptrain import command, launch as launch_module
from looptrain.cli import run_main


def _looptrain(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "looptrain", *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_help_lists_commands_models_and_tasks_without_starting_tensorflow():
    probe = ("import sys; from looptrain import command; command.main(['--help']); "
             "print('tensorflow loaded:', 'tensorflow' in sys.modules or 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                         timeout=60).stdout
    assert out.rstrip().endswith("tensorflow loaded: False")
    for name in [*command.SUBCOMMANDS, "textcnn", "convnet", "examples/gan.py:GAN"]:
        assert f"\n  {name} " in out


def test_help_lists_exactly_the_registered_models():
    from looptrain.models import registered_names

    assert list(command.registered_models()) == registered_names()


def test_python_m_looptrain_runs_a_subcommand_and_refuses_unknown_ones():
    done = _looptrain("train", "--help")
    assert done.returncode == 0 and done.stdout.startswith("usage: looptrain train")
    assert "--resume" in done.stdout
    done = _looptrain("trian")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "unknown command 'trian'" in done.stderr
    done = _looptrain("evaluate", "--run-dir")
    assert done.returncode == 2 and "looptrain evaluate: error:" in done.stderr


def test_the_console_script_is_the_command():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, attr = scripts["looptrain"].partition(":")
    assert module == "looptrain.command" and getattr(command, attr) is command.entry


def test_launch_runs_the_installed_entry_point_on_the_arguments_after_the_separator(monkeypatch):
    calls = []
    monkeypatch.setattr(launch_module, "launch", lambda *args, **kwargs: calls.append(args) or 0)
    assert command.main(["launch", "--num-workers", "2", "--", "--run-dir", "r"]) == 0
    assert calls == [(2, [sys.executable, "-m", "looptrain", "train", "--run-dir", "r",
                          "--strategy", "multiworker"])]


def test_bench_outside_a_checkout_says_so(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(command, "CHECKOUT", tmp_path)  # as in an installed wheel
    assert command.main(["bench", "--quick"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs a checkout of the looptrain repository" in err
    assert command.main(["bench", "--help"]) == 0
    assert "only from a repository checkout" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["launch", "--num-workers", "0", "--", "x"], ["launch", "--"]])
def test_launch_errors_are_one_line(argv, capsys):
    assert command.main(argv) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_run_main_accepts_a_subcommand_main():
    assert run_main(command.SUBCOMMANDS["launch"].main, ["--num-workers", "1"]) == 2
