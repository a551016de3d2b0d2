"""`NonFinite`: what the run does after a step whose values or gradients were not finite."""

from __future__ import annotations

from looptrain.engine.callback import Callback
from looptrain.errors import TrainingDiverged


class NonFinite(Callback):
    """Stops the run (`on_nan = "stop"`: exit 3, nothing saved after the last good checkpoint)
    or reports the skipped steps (`"skip"`), from the call's non-finite count."""

    def __init__(self, on_nan: str, call, *, skip_hint: str = "--resume --on-nan skip",
                 advice: str = "a lower learning rate or gradient clipping"):
        """`skip_hint` is the command that continues the run skipping such batches, in the form
        the user runs it (CLI flags, `make ... ARGS=`, or `lt.fit(..., on_nan="skip")`)."""
        self.on_nan, self.call, self.advice, self.skip_hint = on_nan, call, advice, skip_hint
        self._seen = None

    def on_fit_begin(self, loop) -> None:
        self._seen = int(self.call.nonfinite_steps.numpy())

    def on_call_end(self, loop, result) -> None:
        if result.nonfinite_steps == self._seen:
            return
        count, self._seen = result.nonfinite_steps - self._seen, result.nonfinite_steps
        step = int(self.call.last_nonfinite["step"].numpy())
        what = _describe(self.call.last_nonfinite_values())
        if self.on_nan == "skip":
            first = result.step - result.steps + 1
            where = (f"step {step}: {what}; batch skipped" if count == 1 else
                     f"steps {first}-{result.step}: {count} batches skipped, the last at step "
                     f"{step} with {what}")
            loop.log(f"{where} ({result.nonfinite_steps} so far)")
            return
        message = (f"step {step}: {what}; training stopped and nothing was saved after step "
                   f"{loop.saved_step}; the last good checkpoint is {loop.last_checkpoint}. Start "
                   f"a new run with {self.advice}, or continue this one with {self.skip_hint}")
        loop.log(message)
        raise TrainingDiverged(message)


def _describe(values: dict[str, float]) -> str:
    """What was not finite: the step's non-finite values (`loss nan`), or a gradient alone."""
    if not values:
        return "non-finite gradient (the step's returned values were finite)"
    return f"non-finite loss or gradient ({', '.join(f'{n} {v:g}' for n, v in values.items())})"
