"""Settings with their checks: dataclass fields that carry bounds and documentation, and the
loop's own settings (`LoopSettings`), which `lt.fit` takes by name and the `[train]` section of a
config file holds.

Every value is checked against its field's type and range, so a typo or a bad value is an error
naming the key, whether it came from a config file, a flag or a keyword argument.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from dataclasses import dataclass, field
from typing import Any

from looptrain.errors import ConfigError


def setting(default, *, low=None, high=None, choices=None, pattern=None, doc=""):
    """A dataclass field carrying its validation bounds and documentation in metadata.

    `pattern` is `(regex, description)` for strings with a syntax, e.g. comma-separated widths.
    """
    return field(default=default, metadata={"low": low, "high": high, "choices": choices,
                                            "pattern": pattern, "doc": doc})


def check_value(fld: dataclasses.Field, value: Any, key: str, source: str) -> Any:
    """Type- and range-checks one value; ints are accepted where floats are expected.

    Raises:
        ConfigError: naming `source` and `key`.
    """
    expected = {"int": int, "float": float, "str": str, "bool": bool}[fld.type]
    ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise ConfigError(
            f"{source}: '{key}' must be {fld.type}, got {type(value).__name__} {value!r}")
    meta = fld.metadata
    if expected is float and not math.isfinite(value):
        raise ConfigError(f"{source}: '{key}' must be a finite number, got {value!r}")
    if meta.get("low") is not None and value < meta["low"]:
        raise ConfigError(f"{source}: '{key}' must be >= {meta['low']}, got {value!r}")
    if meta.get("high") is not None and value > meta["high"]:
        raise ConfigError(f"{source}: '{key}' must be <= {meta['high']}, got {value!r}")
    if meta.get("choices") and value not in meta["choices"]:
        raise ConfigError(f"{source}: '{key}' must be one of {list(meta['choices'])}, got {value!r}")
    if meta.get("pattern") and not re.fullmatch(meta["pattern"][0], value):
        raise ConfigError(f"{source}: '{key}' must be {meta['pattern'][1]}, got {value!r}")
    return value


def did_you_mean(name: str, known: list[str]) -> str:
    """`; did you mean 'x'?` for the known name closest to a misspelt `name`, or "" if none is close."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    return f"; did you mean '{close[0]}'?" if close else ""


def build(cls, values: dict[str, Any], *, source: str, prefix: str = ""):
    """`cls(**values)` with every value checked; an unknown name is an error listing the known ones."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    checked = {}
    for name, value in values.items():
        if name not in fields:
            known = [prefix + n for n in fields]
            hint = did_you_mean(prefix + name, known)  # a typo: the one name, not all of them
            raise ConfigError(f"{source}: unknown setting '{prefix}{name}'"
                              + (hint or f" (known: {', '.join(known)})"))
        checked[name] = check_value(fields[name], value, f"{prefix}{name}", source)
    return cls(**checked)


# A duration: hours, minutes and seconds ("3h50m", "90m", "1h30m15s") or plain seconds ("3600").
DURATION = r"|[0-9]+|(?=[0-9])([0-9]+h)?([0-9]+m)?([0-9]+s)?"


@dataclass(frozen=True)
class LoopSettings:
    """The loop's settings: cadence, stopping, checkpoints, the non-finite policy, distribution.
    All counts and intervals are in steps (optimizer updates)."""

    batch_size: int = setting(64, low=1, doc="examples per training step (array data)")
    num_epochs: int = setting(10, low=1, doc="passes over the training data")
    max_steps: int = setting(0, low=0, doc="stop after this many steps; 0 = no limit")
    eval_every: int = setting(100, low=1, doc="evaluate on the validation split every N steps "
                                              "(and at the end)")
    eval_per_epoch: bool = setting(True, doc="evaluate at least once per epoch (eval_every capped at "
                                             "the steps per epoch: small data sets)")
    checkpoint_every: int = setting(100, low=1, doc="write a checkpoint every N steps (and at the end)")
    log_every: int = setting(10, low=1, doc="write training scalars every N steps")
    patience: int = setting(1000, low=1, doc="stop after N steps without a better monitored value")
    monitor: str = setting("", pattern=(r"|(train|val)/[^/\s]+",
                                        "'' or 'val/<metric>' or 'train/<metric>'"),
                           doc="metric early stopping and the best copy follow; '' = the task's "
                               "choice (val/accuracy for the built-in classifier)")
    mode: str = setting("auto", choices=("auto", "min", "max"),
                        doc="whether a smaller or a larger monitor is better; auto = from its name")
    keep_checkpoints: int = setting(5, low=1, doc="how many recent checkpoints to keep")
    seed: int = setting(42, low=0, high=2**31 - 1, doc="seed for weights, dropout and data shuffling")
    on_nan: str = setting("stop", choices=("stop", "skip"),
                          doc="non-finite loss/gradient: stop (keeping the last good checkpoint) or "
                              "skip the batch")
    deterministic: bool = setting(True, doc="TensorFlow op determinism (bit-identical reruns and "
                                            "resumes)")
    steps_per_loop: int = setting(100, low=1, high=2 ** 24, doc="most steps per compiled call (calls also end at "
                                                  "every log, eval and checkpoint step)")
    jit_compile: str = setting("auto", choices=("auto", "on", "off"),
                               doc="XLA for the train/eval steps; auto = on with a GPU/TPU unless "
                                   "the task opts out (off on CPU: slower there)")
    strategy: str = setting("default", choices=("default", "mirrored", "multiworker"),
                            doc="tf.distribute: one device, the devices of this host, or several "
                                "workers (TF_CONFIG, see looptrain launch)")
    # 64: more GPUs than one host holds; logical CPU devices stop at 8 (`distribute.local_devices`).
    num_devices: int = setting(0, low=0, high=64,
                               doc="devices for mirrored: the first N GPUs (0 = all), or N logical "
                                   "CPU devices (at most 8) on a host without GPUs")
    # 250: five slices in a default 1250-step run (with 1000 the Histograms tab showed one and
    # looked empty); at every 100 steps the probe cost the tiny MLP of `make bench` ~12 % of its
    # speed, so not more often (Keras' TensorBoard callback writes none by default).
    histogram_every: int = setting(250, low=0, doc="write weight and gradient histograms every N "
                                                    "steps; 0 = off")
    # Each slice costs a fast model a call boundary and the probe (40 slices were 11-15 % of the
    # bench's 10,000-step MLP runs); a run shows its weights' drift as well with about ten.
    histogram_slices: int = setting(10, low=0, doc="at most about N histogram slices per run: a long "
                                                   "run writes them every multiple of "
                                                   "histogram_every that keeps to N; 0 = no cap")
    ema_decay: float = setting(0.0, low=0.0, high=0.999999,
                               doc="exponential moving average of the weights with this decay per "
                                   "step, used by evaluation, the best copy and export; 0 = off")
    profile_steps: str = setting("", pattern=(r"|[1-9][0-9]*(-[1-9][0-9]*)?", "'' or 'FIRST-LAST' "
                                              "steps, e.g. '200-210'"),
                                 doc="trace these steps with the TensorFlow profiler into "
                                     "RUN/logs/train (TensorBoard's Profile tab); '' = off")
    time_limit: str = setting("", pattern=(DURATION, "'' or a duration like '3h50m', '90m', "
                                                     "'45s' or seconds '3600'"),
                              doc="stop with a checkpoint before this much time has passed since "
                                  "training started (exit status 75); '' = none")
    mlflow: bool = setting(False, doc="also log every scalar to MLflow (pip install "
                                      "'looptrain[mlflow]'; $MLFLOW_TRACKING_URI or RUN/mlruns)")


# Settings a resumed run may change: cadence and stopping, and how it runs. Everything else
# (batch size, seed, monitor) decides what the run computes and is fixed for its life.
RESUMABLE = frozenset({
    "num_epochs", "max_steps", "eval_every", "eval_per_epoch", "checkpoint_every", "log_every",
    "patience",
    "keep_checkpoints", "on_nan", "deterministic", "steps_per_loop", "jit_compile",
    "histogram_every", "histogram_slices", "strategy", "num_devices", "profile_steps", "time_limit", "mlflow",
})
