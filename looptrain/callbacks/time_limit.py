"""`TimeLimit`: stop cleanly, with a checkpoint, before a scheduler's wall-clock limit.

A batch scheduler kills a job at its time limit; a run stopped that way loses the steps since its
last checkpoint. With a limit a little below the scheduler's, the run stops itself at a call
boundary, writes a checkpoint there, and ends with `stop_reason = "time_limit"` (`lt.fit`) or exit
status 75 (the command line; `errors.TimeLimitReached`), so a job script can tell "requeue me"
from success (0) and failure. Run again with `--resume=auto`, the same command continues the run
exactly where it stopped.

When: the clock starts when the loop starts (`on_fit_begin`: after start-up and restore, so
leave a margin for them). After each compiled call the callback stops if the next interval as long
as the longest seen so far (a call, its evaluation and checkpoint) could end past the limit.
"""

from __future__ import annotations

import re
import time

from looptrain.engine.callback import Callback


def parse_duration(text: str) -> float:
    """Seconds of "3h50m", "90m", "45s", "1h30m15s" or "3600".

    Raises:
        ValueError: anything else.
    """
    if re.fullmatch(r"[0-9]+", text):
        return float(text)
    match = re.fullmatch(r"(?=[0-9])(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?", text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (e.g. '3h50m', '90m', '45s', '3600')")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


def format_duration(seconds: float) -> str:
    """`1h02m03s` / `2m03s` / `3s`."""
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class TimeLimit(Callback):
    """Requests the stop (`"time_limit"`) before `limit` has passed since the loop started.

    Args:
        limit: seconds, or a duration string ("3h50m").
        clock: the time source (tests pass a fake one).
    """

    def __init__(self, limit: float | str, *, clock=time.monotonic):
        self.limit = parse_duration(limit) if isinstance(limit, str) else float(limit)
        self.clock = clock
        self.started = self.last = 0.0
        self.longest = 0.0  # the longest interval between two call ends so far

    def on_fit_begin(self, loop) -> None:
        self.started = self.last = self.clock()

    def on_call_end(self, loop, result) -> None:
        now = self.clock()
        self.longest = max(self.longest, now - self.last)
        self.last = now
        if loop.stopping or now + self.longest < self.started + self.limit:
            return
        loop.request_stop("time_limit")
        loop.log(f"time limit {format_duration(self.limit)}: stopping at step {loop.step} after "
                 f"{format_duration(now - self.started)} (the next call could take "
                 f"{self.longest:.1f}s); continue with: {loop.resume_hint}")
