"""Graceful stop: SIGINT/SIGTERM ask the loop to finish its step, checkpoint and exit.

The first signal is only recorded; the loop polls `requested` between steps, writes a checkpoint
and raises `looptrain.errors.Stopped` (exit status 130 or 143). A second SIGINT means "now": it
raises KeyboardInterrupt at once, as Python's default handler would. A second SIGTERM is ignored,
because schedulers send SIGTERM again while waiting and the checkpoint is already on its way.
"""

from __future__ import annotations

import signal
import threading


class StopSignals:
    """Context manager that turns SIGINT/SIGTERM into a stop request while it is active.

    Handlers can only be installed from the main thread; elsewhere (e.g. a notebook's worker thread)
    this is a no-op and signals keep their usual meaning.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)
    STOP_ORDER = (signal.SIGTERM, signal.SIGINT)  # the one reported when workers got different ones

    def __init__(self):
        self.requested: int | None = None  # the first signal received
        self._previous = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum, frame) -> None:
        if self.requested is None:
            self.requested = signum
        elif signum == signal.SIGINT:
            raise KeyboardInterrupt

    @property
    def name(self) -> str:
        return signal.Signals(self.requested).name if self.requested else ""
