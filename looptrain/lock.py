"""An exclusive, crash-proof lock on a run directory: one trainer per run.

The lock is an `fcntl.flock` on `RUN/.lock`. The kernel drops it when the holding process exits for any
reason (SIGKILL and out-of-memory kills included), so a dead trainer never leaves a run locked; the
file itself stays and only records who holds it now, for the error message.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from looptrain.errors import RunDirError


class RunLock:
    """Context manager holding the lock on `directory` (created if missing).

    Raises:
        RunDirError: another process holds the lock; names its pid and host.
    """

    def __init__(self, directory: str | Path):
        self.path = Path(directory) / ".lock"
        self._file = None

    def __enter__(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # "a+": never truncate the holder's record before we know we hold the lock.
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunDirError(f"{self.path.parent} is in use by another trainer ({holder}); wait for "
                              f"it to finish or stop it, or choose another --run-dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        handle.flush()
        self._file = handle
        return self

    def __exit__(self, *exc_info) -> None:
        if self._file is not None:
            self._file.close()  # closing the descriptor releases the flock
            self._file = None
