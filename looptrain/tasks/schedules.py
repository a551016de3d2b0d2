"""Learning-rate schedules: `train.lr_schedule` and its keys -> a Keras schedule (or a constant).

- `constant`: `learning_rate` throughout.
- `exponential`: `learning_rate * lr_decay_rate ** (step / lr_decay_steps)` (smooth, not stepped).
- `cosine`: a linear warm-up from 0 to `learning_rate` over `warmup_steps`, then a cosine decay
  to 0 over `lr_decay_steps` (and 0 after that).

The schedule is a function of the optimizer's iteration count, which the checkpoint holds, so a
resumed run continues the same curve. The loop logs `optimizer.learning_rate`, which Keras
evaluates at the current iteration: the rate of the next update.
"""

from __future__ import annotations

import keras

from looptrain.errors import ConfigError

_DECAY_STEPS_MEANING = {"exponential": "steps per decay by lr_decay_rate",
                        "cosine": "steps of the cosine decay after the warm-up"}


def make_learning_rate(config) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The optimizer's `learning_rate` argument for `config` (anything with the `[train]` keys'
    names as attributes: learning_rate, lr_schedule, lr_decay_steps, lr_decay_rate, warmup_steps).

    Raises:
        ConfigError: a decaying schedule without `lr_decay_steps`, or warm-up without cosine.
    """
    lr, schedule = config.learning_rate, config.lr_schedule
    if config.warmup_steps and schedule != "cosine":
        raise ConfigError(f"'train.warmup_steps' is {config.warmup_steps}, but warm-up comes with "
                          f"'train.lr_schedule' = 'cosine' (it is {schedule!r})")
    if schedule == "constant":
        return lr
    if not config.lr_decay_steps:
        raise ConfigError(f"'train.lr_schedule' is {schedule!r}, which needs 'train.lr_decay_steps' > 0 "
                          f"({_DECAY_STEPS_MEANING[schedule]})")
    if schedule == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(
            lr, decay_steps=config.lr_decay_steps, decay_rate=config.lr_decay_rate)
    if config.warmup_steps:
        return keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=config.lr_decay_steps, warmup_target=lr, warmup_steps=config.warmup_steps)
    return keras.optimizers.schedules.CosineDecay(lr, decay_steps=config.lr_decay_steps)
