"""`Profiler`: a TensorFlow profiler trace of chosen steps, for TensorBoard's Profile tab.

`Profiler("200-210", logdir)` starts `tf.profiler.experimental` before step 200 and stops it after
step 210, writing `logdir/plugins/profile/<time>/<host>.xplane.pb` (the loop uses `RUN/logs/train`,
where Keras' TensorBoard callback puts its traces too). Its cadence ends a compiled call before the
first step and after every step of the window, so each traced call is one step; the loop wraps
every compiled call, and nothing else, in a step marker (`tf.profiler.experimental.Trace("train",
step_num=step, _r=1)`, free while no profiler runs), so the trace viewer shows one `train` event
per step, its evaluation and checkpoint outside it. Outside the window calls are as long as usual.
Viewing needs `tensorboard-plugin-profile` (`pip install 'looptrain[profile]'`; `make tensorboard`
installs it). On a CPU-only host its overview page reports "No step marker observed" even so
(TensorFlow's own minimal example gets the same); the trace viewer shows the steps
(docs/loop-extras.md).
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from looptrain.engine.callback import Callback


def parse_steps(text: str) -> tuple[int, int]:
    """`"200-210"` -> (200, 210); `"200"` -> (200, 200).

    Raises:
        ValueError: not one or two positive step numbers, or the last before the first.
    """
    first, _, last = text.partition("-")
    try:
        window = int(first), int(last or first)
    except ValueError:
        raise ValueError(f"profile steps must be 'FIRST-LAST' (e.g. '200-210'), got "
                         f"{text!r}") from None
    if window[0] < 1 or window[1] < window[0]:
        raise ValueError(f"profile steps {text!r}: need 1 <= FIRST <= LAST")
    return window


class _Window:
    """The cadence: calls end at `first - 1` and at every step up to `last`."""

    def __init__(self, first: int, last: int):
        self.first, self.last = first, last

    def due(self, step: int, total: int | None = None) -> bool:
        return self.first - 1 <= step <= self.last

    def next_after(self, step: int) -> int | None:
        if step < self.first - 1:
            return self.first - 1
        return step + 1 if step < self.last else None


class Profiler(Callback):
    """Traces steps `first..last` (inclusive) into `logdir`.

    Args:
        steps: "FIRST-LAST" or (first, last).
        logdir: where the trace goes (its `plugins/profile/` subdirectory).
    """

    def __init__(self, steps: str | tuple[int, int], logdir: str | Path):
        self.first, self.last = parse_steps(steps) if isinstance(steps, str) else steps
        self.logdir = Path(logdir)
        self.cadence = _Window(self.first, self.last)
        self.active = False
        self.traced: list[int] = []  # the steps traced, each in its own step marker

    def _start(self, loop) -> None:
        try:
            tf.profiler.experimental.start(str(self.logdir))
        except (tf.errors.AlreadyExistsError, tf.errors.UnavailableError) as exc:
            loop.log(f"warning: profiler not started ({str(exc).splitlines()[0]}); another profile "
                     f"is running in this process")
            return
        self.active = True
        loop.log(f"profiling steps {max(self.first, loop.step + 1)}-{self.last} into {self.logdir}")

    def _stop(self, loop) -> None:
        if self.active:
            tf.profiler.experimental.stop()
            self.active = False
            loop.log(f"profile of steps {self.traced[0]}-{self.traced[-1]} written to "
                     f"{self.logdir / 'plugins' / 'profile'}" if self.traced else "profile stopped")

    def on_fit_begin(self, loop) -> None:
        if self.first - 1 <= loop.step < self.last:
            self._start(loop)

    def on_call_end(self, loop, result) -> None:
        if self.active:
            self.traced.append(loop.step)
        if self.active and (loop.step >= self.last or loop.stopping):
            self._stop(loop)
        elif not self.active and loop.step == self.first - 1 and not loop.stopping:
            self._start(loop)

    def on_stop(self, loop, reason: str) -> None:
        self._stop(loop)

    def on_fit_end(self, loop, result) -> None:
        self._stop(loop)
