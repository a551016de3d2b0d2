"""The extras' config keys: checked like every key, and absent from runs saved before them."""

import json

import pytest

from looptrain import config as config_lib
from looptrain.errors import ConfigError

NEW = {"train.ema_decay": 0.0, "train.profile_steps": "", "train.time_limit": "",
       "train.mlflow": False}


def test_a_run_saved_before_the_extras_loads_with_them_off(tmp_path):
    sections = config_lib.Config().to_dict()
    for key in NEW:
        del sections["train"][key.split(".")[1]]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(sections))
    loaded = config_lib.load_json(path)
    assert {key: getattr(loaded.train, key.split(".")[1]) for key in NEW} == NEW


@pytest.mark.parametrize("assignment, message", [
    ("train.time_limit=3x", "'train.time_limit' must be '' or a duration like '3h50m'"),
    ("train.profile_steps=a-b", "'train.profile_steps' must be '' or 'FIRST-LAST' steps"),
    ("train.ema_decay=1.5", "'train.ema_decay' must be <= 0.999999"),
])
def test_bad_values_name_the_key(assignment, message):
    with pytest.raises(ConfigError, match=message):
        config_lib.Config().replace(config_lib.parse_set([assignment]), source="--set")


def test_the_extras_may_change_on_resume_except_the_average():
    saved = config_lib.Config()
    changed = config_lib.resume_config(saved, {"train.time_limit": "1h", "train.mlflow": True,
                                               "train.profile_steps": "5-9"}, source="--set")
    assert changed.train.time_limit == "1h"
    with pytest.raises(ConfigError, match="cannot change 'train.ema_decay' of a resumed run"):
        config_lib.resume_config(saved, {"train.ema_decay": 0.99}, source="--set")
