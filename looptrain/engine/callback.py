"""`Callback`: the public hook mechanism of the loop, and `Periodic`, the one cadence object.

The loop calls every callback, in list order, at these events:

    setup(task)                   once the task is built (under the strategy's scope), before the
                                  checkpoint is made or restored: create the variables `state()` holds
    on_fit_begin(loop)            after set-up and restore, before the first call
    on_call_end(loop, result)     after each compiled call (`result.logs` at log steps)
    on_eval_end(loop, logs)       after an evaluation (`{"val/<name>": value}`), from `Evaluation`
    on_checkpoint(loop, path)     after a checkpoint was written
    on_stop(loop, reason)         the run is about to stop early (a signal): save what must be saved
    on_fit_end(loop, result)      at the end of `fit`, whatever ended it (`result` None on an error)

`loop` (`engine.controller.Loop`) gives the task, the step, the run directory, the summary
writer and `request_stop(reason)`. A callback with state makes it a `tf.Module` of variables and
returns it from `state()`: the loop checkpoints it, so a resumed run continues it exactly.
A callback whose work must run inside the compiled call (summaries of in-graph values, a weight
average updated after every step) is also an `InCallHook` and says when it is `due`.

`evaluation_weights()` is the one context that is not an event: evaluation and the best copy run
inside every callback's context, so a callback can put other weights in place for them (EMA swaps
its averages in) and training continues on the raw ones afterwards.
"""

from __future__ import annotations

import contextlib
from typing import Any, ContextManager


class Periodic:
    """When something happens: every `every` steps (0: never), optionally also at the last step.

    CLU's `periodic_actions` idea: one object answers "is it due?" and "when next?", instead of
    `if step % n` scattered through the loop.
    """

    def __init__(self, every: int, *, at_end: bool = False):
        self.every, self.at_end = every, at_end

    def due(self, step: int, total: int | None = None) -> bool:
        return bool(self.every and step % self.every == 0) or (self.at_end and step == total)

    def next_after(self, step: int) -> int | None:
        """The first step after `step` at which this is due (None: never)."""
        return (step // self.every + 1) * self.every if self.every else None


class Callback:
    """Base class: override the events you need (all do nothing here)."""

    cadence: Periodic | None = None  # calls end where it is due, so events fall on exact steps
    state_key: str | None = None  # the checkpoint key of `state()` (default: the class name)

    def state(self) -> Any:
        """A trackable (e.g. a `tf.Module` of variables) to checkpoint with the run, or None."""
        return None

    def setup(self, task) -> None:
        pass

    def on_fit_begin(self, loop) -> None:
        pass

    def on_call_end(self, loop, result) -> None:
        pass

    def on_eval_end(self, loop, logs: dict[str, float]) -> None:
        pass

    def on_checkpoint(self, loop, path: str) -> None:
        pass

    def on_stop(self, loop, reason: str) -> None:
        pass

    def on_fit_end(self, loop, result) -> None:
        pass

    def evaluation_weights(self) -> ContextManager:
        """A context in which the task holds the weights to evaluate and save as the best copy
        (default: the trained ones, unchanged). It may be entered again while active."""
        return contextlib.nullcontext()


class CallbackList:
    """Calls an event on every callback in order."""

    def __init__(self, callbacks):
        self.callbacks = list(callbacks)

    def __iter__(self):
        return iter(self.callbacks)

    def dispatch(self, event: str, *args) -> None:
        for callback in self.callbacks:
            getattr(callback, event)(*args)

    @contextlib.contextmanager
    def evaluation_weights(self):
        """Every callback's `evaluation_weights()` context at once."""
        with contextlib.ExitStack() as stack:
            for callback in self.callbacks:
                stack.enter_context(callback.evaluation_weights())
            yield

    def states(self) -> dict[str, Any]:
        """Each stateful callback's state, keyed by its `state_key` or class name (numbered when
        repeated)."""
        out: dict[str, Any] = {}
        for callback in self.callbacks:
            state = callback.state()
            if state is None:
                continue
            name = callback.state_key or type(callback).__name__
            key, n = name, 1
            while key in out:
                n += 1
                key = f"{name}_{n}"
            out[key] = state
        return out

    def next_event(self, step: int) -> int | None:
        """The first step after `step` at which some callback's cadence is due."""
        steps = [c.cadence.next_after(step) for c in self.callbacks if c.cadence is not None]
        steps = [s for s in steps if s is not None]
        return min(steps) if steps else None
