"""The run directory's guards: where a run may start, and what a saved config must hold."""

import json
from pathlib import Path

import pytest

from looptrain import config as config_lib
from looptrain.errors import ConfigError, RunDirError
from looptrain.run import RunDir


def test_a_new_run_may_take_over_only_an_unfinished_start_of_its_own(tmp_path):
    RunDir(tmp_path / "missing").check_new()
    (tmp_path / "empty").mkdir()
    RunDir(tmp_path / "empty").check_new()
    started = tmp_path / "started"  # killed after the lock and vocabulary, before config.json
    started.mkdir()
    for name in (".lock", "vocab.txt", "labels.txt"):
        (started / name).write_text("x\n")
    RunDir(started).check_new()
    (started / ".lock").unlink()  # without looptrain's lock, a labels.txt is the user's
    with pytest.raises(RunDirError, match="is not empty and is not a looptrain run"):
        RunDir(started).check_new()


@pytest.mark.parametrize("where, message", [
    (lambda t: Path("/"), "is the root directory"),
    (lambda t: Path.home(), "is your home directory"),
    (lambda t: Path(""), "'.' is the current directory"),
])
def test_a_run_never_goes_into_a_shared_directory(tmp_path, where, message):
    for check in (RunDir(where(tmp_path)).check_new, RunDir(where(tmp_path)).check_resumable):
        with pytest.raises(RunDirError, match=message):
            check()


def test_a_dangling_symlink_is_named(tmp_path):
    (tmp_path / "link").symlink_to(tmp_path / "gone")
    with pytest.raises(RunDirError, match="link is a symlink to a missing directory"):
        RunDir(tmp_path / "link").check_new()
    assert not (tmp_path / "gone").exists()


def test_a_saved_config_with_an_unknown_or_missing_key_is_refused(tmp_path):
    saved = config_lib.Config().to_dict()
    saved["train"]["warp"] = 9
    (tmp_path / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ConfigError, match="unknown config key 'train.warp'"):
        config_lib.load_json(tmp_path / "config.json")
    del saved["train"]["warp"], saved["model"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ConfigError, match="no 'model.name'; a run's saved config must hold every key"):
        config_lib.load_json(tmp_path / "config.json")
