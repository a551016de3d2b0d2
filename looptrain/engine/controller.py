"""`Loop`: the outer training loop. It takes built objects, as Orbit's `Controller` does.

The loop owns cadence and stopping only, all in steps: it runs the compiled calls (`TrainCall`),
each ending at the next event (a log step, a callback's due step, the end, or after at most
`steps_per_loop` steps), so every cadence stays exact whatever the call length; it hands each
call's result to the callbacks, which evaluate, checkpoint, keep the best copy, stop early, write
summaries and show progress; and it honours stop signals (agreed across workers) and lost peers.
It knows nothing of models, data formats, configuration or the command line.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import tensorflow as tf

from looptrain.engine.callback import CallbackList
from looptrain.engine.signals import StopSignals
from looptrain.errors import Stopped, WorkerLost


@dataclass(frozen=True)
class LoopResult:
    """What `Loop.run` did."""

    step: int  # global step reached
    steps_run: int  # steps run by this call (less than `step` after a resume)
    stop_reason: str  # "epochs", "max_steps", "early_stopping", "already_done", or a callback's
    train_seconds: float  # time inside the compiled training calls (steps and their logging)
    examples: int  # training examples in the steps run


class Loop:
    """The state of one training session between set-up and the result.

    Args:
        task: the built (and restored) task.
        call: the compiled call (`engine.call.TrainCall`).
        iterator: the training iterator, positioned at the restored step.
        total_steps: where training ends (epochs and `max_steps` resolved).
        end_reason: the stop reason when it gets there ("epochs" or "max_steps").
        steps_per_epoch: batches per epoch, or None when the data does not say.
        log_every: steps between log steps (the call's means are read and written there).
        steps_per_loop: most steps per compiled call.
        callbacks: the callbacks, in the order they are called.
        run_path: the run directory (for messages; callbacks write into it).
        writer: the summary writer callbacks share.
        signals: the active `StopSignals`.
        agreement: `distribute.Agreement` (stop signals and values shared by all workers).
        log: where messages go (the display's log).
        resume_hint: the command that continues the run, for messages.
    """

    def __init__(self, *, task, call, iterator, total_steps: int, end_reason: str,
                 steps_per_epoch: int | None,
                 log_every: int, steps_per_loop: int, callbacks: CallbackList, run_path: Path,
                 writer, signals: StopSignals, agreement, log: Callable[[str], None],
                 resume_hint: str = "--resume"):
        self.task, self.call, self.iterator = task, call, iterator
        self.total_steps, self.end_reason = total_steps, end_reason
        self.steps_per_epoch = steps_per_epoch
        self.log_every, self.steps_per_loop = log_every, steps_per_loop
        self.callbacks, self.run_path, self.writer = callbacks, Path(run_path), writer
        self.signals, self.agreement, self.log = signals, agreement, log
        self.resume_hint = resume_hint
        self.step = int(call.step.numpy())
        self.start_step = self.step
        self.stop_reason: str | None = None
        self.last_checkpoint: str | None = None  # set by the checkpointing callback
        self.saved_step: int | None = None
        self.train_logs: dict[str, float] = {}  # the last log step's `train/...` values

    @property
    def stopping(self) -> bool:
        """True once the run ends at the current step (callbacks finish their work then)."""
        return self.stop_reason is not None

    def request_stop(self, reason: str) -> None:
        """Ends the run after the current call's callbacks (the first reason wins)."""
        self.stop_reason = self.stop_reason or reason

    def epoch_of(self, step: int) -> int | None:
        """The 1-based epoch of the step just run (of the next one before any step)."""
        if not self.steps_per_epoch:
            return None
        return max(step - 1, 0) // self.steps_per_epoch + 1

    def run(self) -> LoopResult:
        """Trains until the end, a stop request, a signal (raises `Stopped`) or a lost worker;
        the callbacks' `on_fit_end` runs whatever ended it."""
        result = None
        try:
            result = self._run()
        finally:
            self.callbacks.dispatch("on_fit_end", self, result)
        return result

    def _run(self) -> LoopResult:
        self.callbacks.dispatch("on_fit_begin", self)
        if self.step >= self.total_steps or self.stopping:
            self.stop_reason = "already_done"
            return self._result(0.0, 0)
        train_seconds, examples = 0.0, 0
        try:
            while not self.stopping:
                # Any worker's signal stops every worker, at the same step.
                signum = self.agreement.signal(self.signals.requested, StopSignals.STOP_ORDER)
                if signum:
                    self._stop_on_signal(signum)
                end = self.step + self._steps_to_next_event()
                began = time.perf_counter()
                # A step marker around the compiled call alone (nothing is recorded unless a
                # profiler runs): the Profile tab's steps; a call is one step in a profile window.
                with tf.profiler.experimental.Trace("train", step_num=end, _r=1):
                    result = self.call(self.iterator, end - self.step,
                                       log=end % self.log_every == 0 or end == self.total_steps,
                                       due=[hook.due(end, self.total_steps)
                                            for hook in self.call.hooks])
                train_seconds += time.perf_counter() - began
                examples += result.examples
                self.step = result.step
                if result.logs is not None:
                    self.train_logs = result.logs
                if self.step >= self.total_steps:
                    self.request_stop(self.end_reason)
                self.callbacks.dispatch("on_call_end", self, result)
        except (tf.errors.UnavailableError, tf.errors.CancelledError,
                tf.errors.DeadlineExceededError) as exc:
            if self.agreement.strategy is None:
                raise
            self._worker_lost(exc)
        return self._result(train_seconds, examples)

    def _steps_to_next_event(self) -> int:
        """Steps until the next log step, callback event or the end, at most `steps_per_loop`:
        one compiled call runs up to an event, never past it, so every cadence stays exact."""
        step = self.step
        following = [(step // self.log_every + 1) * self.log_every, self.total_steps,
                     step + self.steps_per_loop]
        event = self.callbacks.next_event(step)
        if event is not None:
            following.append(event)
        return min(following) - step

    def _stop_on_signal(self, signum: int) -> None:
        """Lets the callbacks save the state after the last finished step, raises `Stopped`."""
        self.request_stop("signal")
        self.callbacks.dispatch("on_stop", self, "signal")
        name = signal.Signals(signum).name
        if signum != self.signals.requested:
            name = f"{name} (sent to another worker)"
        message = (f"stopped by {name} at step {self.step}; checkpoint {self.last_checkpoint} "
                   f"written; continue with: {self.resume_hint}")
        self.log(message)
        raise Stopped(message, signum, logged=True)

    def _worker_lost(self, exc: tf.errors.OpError) -> None:
        """A collective failed because a peer died: stop with one line saying how to go on."""
        reason = next((line.strip() for line in str(exc).splitlines()
                       if "aborted" in line or "reset" in line), type(exc).__name__)
        message = (f"lost contact with another worker ({reason}); stopped without saving; the last "
                   f"checkpoint is step {self.saved_step}; start all workers again with --resume")
        self.log(message)
        raise WorkerLost(message) from None

    def _result(self, seconds: float, examples: int) -> LoopResult:
        return LoopResult(step=self.step, steps_run=self.step - self.start_step,
                          stop_reason=self.stop_reason, train_seconds=seconds, examples=examples)
