"""`NonFinite`: its messages from the call's record of the last non-finite step (no TF graph)."""

import types

import pytest

from looptrain.callbacks.nonfinite import NonFinite
from looptrain.errors import TrainingDiverged


class _Value:
    def __init__(self, value):
        self.value = value

    def numpy(self):
        return self.value


def _call(step: int, values: dict):
    return types.SimpleNamespace(nonfinite_steps=_Value(0), last_nonfinite={"step": _Value(step)},
                                 last_nonfinite_values=lambda: values)


def _loop(logged: list):
    return types.SimpleNamespace(saved_step=20, last_checkpoint="RUN/checkpoints/ckpt-20",
                                 resume_hint="--resume", log=logged.append)


@pytest.mark.parametrize("values, what", [
    ({"loss": float("nan")}, "non-finite loss or gradient (loss nan)"),
    ({}, "non-finite gradient (the step's returned values were finite)"),
])
def test_a_stop_names_what_was_not_finite(values, what):
    callback, logged = NonFinite("stop", _call(33, values)), []
    callback.on_fit_begin(None)
    result = types.SimpleNamespace(nonfinite_steps=1, step=33, steps=3)
    with pytest.raises(TrainingDiverged) as raised:
        callback.on_call_end(_loop(logged), result)
    assert str(raised.value).startswith(f"step 33: {what}; training stopped and nothing was saved "
                                        f"after step 20")
    assert logged == [str(raised.value)]


def test_skipped_steps_are_logged_and_the_run_goes_on():
    callback, logged = NonFinite("skip", _call(34, {"loss": float("inf")})), []
    callback.on_fit_begin(None)
    callback.on_call_end(_loop(logged), types.SimpleNamespace(nonfinite_steps=2, step=35, steps=5))
    assert logged == ["steps 31-35: 2 batches skipped, the last at step 34 with non-finite loss or "
                      "gradient (loss inf) (2 so far)"]
