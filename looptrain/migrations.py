"""What a run saved by an earlier looptrain reads as: the keys added since, at the values that
reproduce how those runs behaved (`config.load_json` fills them in; any other missing key is an
error, never a silent default)."""

from __future__ import annotations

from typing import Any, Mapping

from looptrain.errors import ConfigError

# Keys added after runs were first saved: the value that reproduces the behaviour of a run saved
# without them (used by `load_json` only).
MIGRATIONS: dict[str, Any] = {
    "train.monitor": "",  # looptrain 0.1 followed val accuracy: the classifier's own choice
    "train.mode": "auto",
    "task.path": "",  # looptrain 0.1 trained the built-in classifier only
    "train.ema_decay": 0.0,  # the loop extras: all off in runs saved before them
    "train.profile_steps": "",
    "train.time_limit": "",
    "train.mlflow": False,
    "model.norm_per_kind": False,  # tfidf runs before these keys: one vector, no NB scaling
    "model.nb_ratio": False,
    "train.histogram_slices": 0,  # histograms every histogram_every steps, however long the run
}


def complete(sections: Mapping[str, Any], keys: list[str], source: str) -> dict[str, Any]:
    """`sections` with every one of `keys` (`section.name`) present: migrated keys filled in.

    Raises:
        ConfigError: naming the first missing key that has no migration.
    """
    out = {name: dict(values) if isinstance(values, Mapping) else values
           for name, values in sections.items()}
    for key in keys:
        section, name = key.split(".")
        values = out.setdefault(section, {})
        if not isinstance(values, Mapping) or name in values:
            continue
        if key not in MIGRATIONS:
            raise ConfigError(
                f"{source}: no '{key}'; a run's saved config must hold every key (was it edited "
                f"by hand or written by another looptrain version?); add '{key}' with the value "
                f"the run was started with, or start a new --run-dir")
        values[name] = MIGRATIONS[key]
    return out
