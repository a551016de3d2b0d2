"""The local launcher: TF_CONFIG per worker, prefixed output, stopping the group, signals, errors.

Workers here are small Python programs, not train.py, so no test trains or imports TensorFlow.
"""

import importlib.util
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import ROOT
from looptrain import launch as launch_module
from looptrain.launch import LaunchError, free_ports, launch, worker_command

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
LINE = re.compile(r"\[worker (\d+)\] (.*)")
# Prelude of every fake worker: its index from TF_CONFIG, as train.py would read it.
INDEX = "import json, os, signal, sys, time\ni = json.loads(os.environ['TF_CONFIG'])['task']['index']\n"


def _worker(body: str, *args) -> list[str]:
    return [sys.executable, "-c", INDEX + textwrap.dedent(body), *map(str, args)]


def _lines(text: str) -> list[tuple[int, str]]:
    """(worker index, line) for every prefixed line; the summary line is left out."""
    return [(int(m[1]), m[2]) for m in map(LINE.fullmatch, text.splitlines()) if m]


def _launcher(num_workers: int, command: list[str], grace_seconds: float, **popen) -> subprocess.Popen:
    """`launch` in a process of its own, so that the test can signal or kill it."""
    code = ("import sys; from looptrain.launch import launch\n"
            f"sys.exit(launch({num_workers}, {command!r}, grace_seconds={grace_seconds}))")
    return subprocess.Popen([sys.executable, "-c", code], env=ENV, text=True, **popen)


def test_free_ports_are_distinct_and_free():
    ports = free_ports(5)
    assert len(set(ports)) == 5
    for port in ports:  # each can be bound right away
        with socket.create_server(("127.0.0.1", port)):
            pass


def test_each_worker_gets_its_own_tf_config(monkeypatch):
    monkeypatch.setenv("LOOPTRAIN_TEST_INHERITED", "yes")
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)
    out = io.StringIO()
    command = _worker("print(os.environ['TF_CONFIG'], os.environ['PYTHONUNBUFFERED'], "
                      "os.environ['LOOPTRAIN_TEST_INHERITED'])")
    assert launch(3, command, out=out) == 0
    seen = {}
    for index, line in _lines(out.getvalue()):
        config, unbuffered, inherited = line.rsplit(" ", 2)
        seen[index] = json.loads(config)
        assert (unbuffered, inherited) == ("1", "yes")
    assert sorted(seen) == [0, 1, 2]
    cluster = seen[0]["cluster"]["worker"]
    assert len(cluster) == 3 and all(host.startswith("localhost:") for host in cluster)
    assert len({host.split(":")[1] for host in cluster}) == 3
    for index, config in seen.items():
        assert config == {"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}}
    assert out.getvalue().splitlines()[-1] == "launch: all 3 workers finished"


class _HalvingSink:
    """A text sink that gives up the GIL in the middle of every write, as a slow terminal would."""

    def __init__(self):
        self.parts: list[str] = []

    def write(self, text: str) -> None:
        self.parts.append(text[:len(text) // 2])
        time.sleep(0.0002)
        self.parts.append(text[len(text) // 2:])

    def flush(self) -> None:
        pass


def test_output_lines_are_prefixed_and_never_interleaved():
    sink = _HalvingSink()
    command = _worker("""
        for n in range(100):
            print(i, n, 'x' * 200, file=sys.stderr if n % 2 else sys.stdout)
        print('no newline at the end', end='')
    """)
    assert launch(3, command, out=sink) == 0
    lines = _lines("".join(sink.parts))
    for index in range(3):
        own = [line for i, line in lines if i == index]
        assert own == [f"{index} {n} {'x' * 200}" for n in range(100)] + ["no newline at the end"]
    assert len(lines) == 3 * 101


@pytest.mark.parametrize("train_args, added", [
    (["--config", "c.toml"], ["--strategy", "multiworker"]),
    (["--config", "c.toml", "--strategy", "mirrored"], []),
    (["--strategy=default", "--config", "c.toml"], []),
    (["--set", "train.strategy_note=1"], ["--strategy", "multiworker"]),
])
def test_worker_command_adds_multiworker_only_without_a_strategy(train_args, added):
    # The installed entry point, with this interpreter: no repository path an installed wheel lacks.
    assert worker_command(train_args) == [sys.executable, "-m", "looptrain", "train", *train_args,
                                          *added]


def test_a_failing_worker_stops_the_others_and_its_status_is_returned():
    out = io.StringIO()
    command = _worker("sys.exit(3) if i == 1 else time.sleep(60)")
    start = time.monotonic()
    assert launch(2, command, grace_seconds=30, out=out) == 3
    assert time.monotonic() - start < 10  # far below the sleeper's 60 s and the 30 s grace
    assert out.getvalue().splitlines()[-1] == (
        "launch: worker 1 exited with 3; stopped the others (exit statuses by worker: 143, 3)")


def test_a_worker_ignoring_sigterm_is_killed_after_the_grace(tmp_path):
    flag = tmp_path / "ignoring"
    command = _worker("""
        flag = sys.argv[1]
        if i == 0:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            open(flag, 'w').close()
            time.sleep(60)
        while not os.path.exists(flag):  # fail only once worker 0 ignores SIGTERM
            time.sleep(0.01)
        sys.exit(3)
    """, flag)
    out = io.StringIO()
    start = time.monotonic()
    assert launch(2, command, grace_seconds=1, out=out) == 3
    assert 1 <= time.monotonic() - start < 10
    assert out.getvalue().splitlines()[-1] == (
        "launch: worker 1 exited with 3; stopped the others (exit statuses by worker: 137, 3; "
        "SIGKILL after the 1 s grace)")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_launcher_reaches_every_worker_once(signum):
    # Like train.py, a worker stops at the first signal; it waits a little to count duplicates.
    command = _worker("""
        got = []
        def record(signum, frame):
            print('got', signal.Signals(signum).name, flush=True)
            got.append(signum)
        signal.signal(signal.SIGTERM, record)
        signal.signal(signal.SIGINT, record)
        print('ready', flush=True)
        while not got:
            time.sleep(0.01)
        time.sleep(0.3)
        sys.exit(128 + got[0])
    """)
    # The launcher leads a process group, as in a terminal; signalling the group is what Ctrl-C does.
    proc = _launcher(2, command, grace_seconds=30, stdout=subprocess.PIPE, start_new_session=True)
    try:
        ready = set()
        while len(ready) < 2 and (line := proc.stdout.readline()):
            ready |= {i for i, text in _lines(line) if text == "ready"}
        os.killpg(proc.pid, signum)
        out = proc.communicate(timeout=20)[0]
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum
    assert sorted(_lines(out)) == [(0, f"got {signum.name}"), (1, f"got {signum.name}")]
    assert out.splitlines()[-1] == (f"launch: got {signum.name}; forwarded it to the workers "
                                    f"(exit statuses by worker: {128 + signum}, {128 + signum})")


def _alive(pid: int) -> bool:
    """Whether `pid` runs; a zombie counts as dead (a container's init may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_workers_die_with_a_sigkilled_launcher(tmp_path):
    command = _worker("""
        path = os.path.join(sys.argv[1], f'{i}.pid')
        with open(path + '.tmp', 'w') as f:
            f.write(str(os.getpid()))
        os.replace(path + '.tmp', path)
        time.sleep(60)
    """, tmp_path)
    proc = _launcher(2, command, grace_seconds=30, stdout=subprocess.DEVNULL)
    pids = []
    try:
        deadline = time.monotonic() + 10
        while len(list(tmp_path.glob("*.pid"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = [int(p.read_text()) for p in tmp_path.glob("*.pid")]
        assert len(pids) == 2 and all(map(_alive, pids))
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 5
        while any(map(_alive, pids)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(map(_alive, pids))
    finally:
        proc.kill()
        for pid in filter(_alive, pids):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("argv, message", [
    (["--num-workers", "0", "--", "--config", "c.toml"], "error: --num-workers must be at least 1, got 0"),
    (["--num-workers", "100000", "--", "x"], "error: --num-workers must be at most 16, got 100000 (each"),
    (["--num-workers", "2"], "error: give the train arguments after --, e.g. launch_local.py"),
    (["--num-workers", "2", "--"], "error: give the train arguments after --, e.g. launch_local.py"),
    (["--num-workers", "2", "--config", "c.toml"], "error: unknown arguments --config c.toml; give the"),
    (["--num-workers", "2", "--grace-seconds", "-1", "--", "x"], "error: --grace-seconds must be at least 0"),
    (["--num-workers", "two", "--", "x"], "argument --num-workers: invalid int value: 'two'"),
    (["--", "--config", "c.toml"], "the following arguments are required: --num-workers"),
])
def test_script_errors_are_one_line_with_status_2(argv, message):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "launch_local.py"), *argv], env=ENV,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert message in proc.stderr and proc.stderr.count("\n") == 1
    assert proc.stdout == ""  # no worker started


def test_script_runs_train_py_on_the_arguments_after_the_separator(monkeypatch):
    spec = importlib.util.spec_from_file_location("launch_local", ROOT / "scripts" / "launch_local.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    calls = []
    monkeypatch.setattr(launch_module, "launch", lambda *args, **kwargs: calls.append((args, kwargs)) or 7)
    argv = ["--num-workers", "3", "--grace-seconds", "5", "--", "--run-dir", "r", "--", "x"]
    assert script.main(argv) == 7
    assert calls == [((3, worker_command(["--run-dir", "r", "--", "x"])), {"grace_seconds": 5.0})]


def test_a_worker_that_cannot_start_is_a_one_line_error(tmp_path):
    with pytest.raises(LaunchError, match=r"cannot start worker 0 \(.*/missing\): .*No such file"):
        launch(2, [str(tmp_path / "missing")], out=io.StringIO())
