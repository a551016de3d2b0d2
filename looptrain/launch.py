"""Starting N training workers on this machine the way a cluster launcher would (`looptrain launch`).

`looptrain train --strategy multiworker` trains with tf.distribute's MultiWorkerMirroredStrategy,
which learns its cluster from the `TF_CONFIG` environment variable: every worker gets the same list
of `host:port` addresses and its own index in that list, and worker 0 is the chief. `launch` picks a
free port on localhost for each worker, prefixes each worker's output with `[worker i]`, and stops
the whole group when one worker fails or the launcher is interrupted, so that no worker waits forever
in a collective op for a peer that is gone.

On real hosts the same is done by hand or by the cluster's scheduler. On each host set

    TF_CONFIG='{"cluster": {"worker": ["host0:2222", "host1:2222"]},
                "task": {"type": "worker", "index": I}}'

with the same `cluster.worker` list everywhere and that host's own index `I`, then run
`looptrain train --strategy multiworker ...` with the same arguments on every host. The run
directory must be on storage every host can read (a shared file system or a bucket): the chief
writes it, and `--resume` on every worker reads the chief's checkpoints.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import IO, Callable

from looptrain.errors import UserError

# Workers re-run the installed entry point with this interpreter, never a repository path: an
# installed wheel has no scripts/ (and `-m` works where the `looptrain` script is not on PATH).
TRAIN_COMMAND = ("-m", "looptrain", "train")
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
# Every local worker is a whole TensorFlow process (0.5 to 1 GB of memory, two ports, threads):
# more than this on one machine exhausts it long before it could help (100000 ran out of file
# descriptors before the first worker started).
MAX_LOCAL_WORKERS = 16
POLL_SECONDS = 0.05


class LaunchError(UserError):
    """A worker command that could not be started (missing or not executable)."""


def free_ports(n: int) -> list[int]:
    """Returns `n` distinct TCP ports that were free on 127.0.0.1 a moment ago.

    Every socket stays bound until all `n` are chosen, so the kernel cannot hand out one port twice.
    Another process may still take a port before a worker binds it; a cluster launcher has the same
    race, and the worker then fails to start, which stops the group.
    """
    sockets: list[socket.socket] = []
    try:
        for _ in range(n):
            sockets.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sockets[-1].bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(hosts: list[str], index: int) -> str:
    """The `TF_CONFIG` JSON for worker `index` of a cluster of workers at `hosts` ("host:port")."""
    if not 0 <= index < len(hosts):
        raise ValueError(f"worker index {index} is outside the cluster of {len(hosts)} workers")
    return json.dumps({"cluster": {"worker": list(hosts)}, "task": {"type": "worker", "index": index}})


def worker_command(train_args: list[str]) -> list[str]:
    """The argv of one worker: `python -m looptrain train` with `train_args`, plus
    `--strategy multiworker` if absent."""
    has_strategy = any(arg == "--strategy" or arg.startswith("--strategy=") for arg in train_args)
    return [sys.executable, *TRAIN_COMMAND, *train_args,
            *([] if has_strategy else ["--strategy", "multiworker"])]


def launch(num_workers: int, command: list[str], *, grace_seconds: float = 60,
           out: IO[str] | None = None) -> int:
    """Runs `num_workers` copies of `command`, each with its own `TF_CONFIG`, until all have exited.

    Each worker's stdout and stderr go to `out` (default: `sys.stdout` at call time), line by line,
    prefixed `[worker i] `. When a worker exits non-zero, the others get SIGTERM (training checkpoints
    and stops on it); SIGINT and SIGTERM sent to the launcher are forwarded to every worker. Workers
    still running `grace_seconds` after the first such signal get SIGKILL. On Linux the workers also
    die when the launcher is killed outright. Must be called from the main thread to forward signals.

    Args:
        num_workers: how many workers (at least 1); worker 0 is the chief.
        command: the full argv of a worker, e.g. `worker_command(train_args)`.
        grace_seconds: how long stopped workers may take to checkpoint before SIGKILL.
        out: where the prefixed lines and the final summary line go.

    Returns:
        0 when every worker exited 0, else the status of the first worker seen to fail (a worker
        ended by a signal counts as 128 + the signal number, as in a shell).

    Raises:
        LaunchError: a worker could not be started; the ones already started are killed.
    """
    if num_workers < 1:
        raise ValueError(f"num_workers must be at least 1, got {num_workers}")
    out = sys.stdout if out is None else out
    hosts = [f"localhost:{port}" for port in free_ports(num_workers)]
    lock, received = threading.Lock(), []
    with _signals_recorded_in(received):
        workers = _Workers(_start(command, hosts), grace_seconds)
        # Readers start only after every fork: a fork while other threads run can inherit a held lock.
        readers = [threading.Thread(target=_copy_lines, args=(p.stdout, f"[worker {i}] ", out, lock),
                                    daemon=True) for i, p in enumerate(workers.procs)]
        for reader in readers:
            reader.start()
        failed, stopped = workers.supervise(received)
    for reader in readers:
        reader.join(timeout=5)  # bounded: a worker's own child could still hold the pipe open
    _write(out, lock, f"launch: {workers.summary(failed, stopped, received)}\n")
    return 0 if failed is None else workers.statuses[failed]


class _Workers:
    """The worker processes, their exit statuses in the order seen, and the stop-then-kill timer."""

    def __init__(self, procs: list[subprocess.Popen], grace_seconds: float):
        self.procs, self.grace_seconds = procs, grace_seconds
        self.statuses: dict[int, int] = {}  # worker index -> exit status, insertion = order of exit
        self.kill_at: float | None = None
        self.killed = False

    def running(self) -> list[int]:
        return [i for i in range(len(self.procs)) if i not in self.statuses]

    def supervise(self, received: list[int]) -> tuple[int | None, bool]:
        """Waits for every worker; returns the first failed worker and whether the others were stopped."""
        failed, stopped, forwarded = None, False, 0
        while True:
            exited = [i for i in self.running() if self.procs[i].poll() is not None]
            self.statuses.update((i, _shell_status(self.procs[i].returncode)) for i in exited)
            if failed is None:
                failed = next((i for i in exited if self.statuses[i] != 0), None)
                stopped = failed is not None and bool(self.running()) and not received
                if stopped:
                    self.signal_all(signal.SIGTERM)
            for signum in received[forwarded:]:  # recorded by the handler, sent from here
                self.signal_all(signum)
            forwarded = len(received)
            if not self.running():
                return failed, stopped
            if self.kill_at is not None and time.monotonic() >= self.kill_at:
                for i in self.running():
                    self.procs[i].kill()
                self.killed = True
            time.sleep(POLL_SECONDS)

    def signal_all(self, signum: int) -> None:
        # Popen.send_signal skips a worker already reaped, so no recycled pid is ever signalled.
        for i in self.running():
            self.procs[i].send_signal(signum)
        if self.kill_at is None:
            self.kill_at = time.monotonic() + self.grace_seconds

    def summary(self, failed: int | None, stopped: bool, received: list[int]) -> str:
        statuses = ", ".join(str(self.statuses[i]) for i in range(len(self.procs)))
        tail = f" (exit statuses by worker: {statuses}"
        tail += f"; SIGKILL after the {self.grace_seconds:g} s grace)" if self.killed else ")"
        if received:
            return f"got {signal.Signals(received[0]).name}; forwarded it to the workers{tail}"
        if failed is None:
            return f"all {len(self.procs)} workers finished"
        stop = "; stopped the others" if stopped else ""
        return f"worker {failed} exited with {self.statuses[failed]}{stop}{tail}"


def _start(command: list[str], hosts: list[str]) -> list[subprocess.Popen]:
    procs: list[subprocess.Popen] = []
    preexec = _die_with_launcher()
    try:
        for index in range(len(hosts)):
            env = {**os.environ, "TF_CONFIG": tf_config(hosts, index), "PYTHONUNBUFFERED": "1"}
            # A session of its own keeps the terminal's Ctrl-C from reaching the workers directly:
            # the launcher forwards it once, as training aborts without a checkpoint on a second one.
            procs.append(subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          start_new_session=True, preexec_fn=preexec))
    except OSError as exc:
        for proc in procs:
            proc.kill()
            proc.wait()
            proc.stdout.close()
        raise LaunchError(f"cannot start worker {len(procs)} ({' '.join(command)}): {exc}") from exc
    return procs


def _die_with_launcher() -> Callable[[], None] | None:
    """A `preexec_fn` asking Linux to SIGKILL the child when the launcher dies, even by SIGKILL."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork, not in the child
    except (OSError, AttributeError):
        return None
    launcher = os.getpid()

    def preexec() -> None:
        # The signal fires when the forking *thread* ends; launch() blocks in it until the workers exit.
        prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
        if os.getppid() != launcher:  # the launcher died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


@contextlib.contextmanager
def _signals_recorded_in(received: list[int]):
    """Within the block, SIGINT and SIGTERM are appended to `received` instead of their usual action."""
    if threading.current_thread() is not threading.main_thread():
        yield  # Python runs handlers in the main thread only; signals keep their usual action
        return
    previous = {s: signal.signal(s, lambda signum, frame: received.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)


def _copy_lines(stream: IO[bytes], prefix: str, out: IO[str], lock: threading.Lock) -> None:
    with stream:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace")
            try:
                _write(out, lock, prefix + (line if line.endswith("\n") else line + "\n"))
            except OSError:
                out = None  # e.g. `| head` closed: keep draining, or the worker blocks on a full pipe


def _write(out: IO[str] | None, lock: threading.Lock, text: str) -> None:
    if out is not None:
        with lock:  # whole lines only, so two workers' lines never interleave mid-line
            out.write(text)
            out.flush()


def _shell_status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode
