"""train.time_limit: a stop with a checkpoint, a message and exit status 75 before the limit, and
an exact continuation with the same command (--resume=auto)."""

import pytest
import tensorflow as tf
from conftest import assert_same_variables
from user_tasks import quiet, regression_class, regression_file

import looptrain as lt
from looptrain.callbacks.time_limit import TimeLimit, format_duration, parse_duration
from looptrain.cli import run_main, train_main

SETTINGS = dict(batch_size=32, log_every=10, eval_every=20, checkpoint_every=20)


class FakeClock:
    """`tick` seconds per reading."""

    def __init__(self, tick: float = 1.0):
        self.now, self.tick = 0.0, tick

    def __call__(self):
        self.now += self.tick
        return self.now


def test_durations():
    assert [parse_duration(t) for t in ("3h50m", "90m", "45s", "3600", "1h0m5s")] == [
        13800, 5400, 45, 3600, 3605]
    assert format_duration(13805) == "3h50m05s" and format_duration(65) == "1m05s"
    with pytest.raises(ValueError):
        parse_duration("3x")


def test_the_limit_stops_with_a_checkpoint_and_the_resume_is_exact(tmp_path):
    Regression = regression_class(tmp_path / "mine")
    task = Regression(width=8)
    data = dict(train=task.train_data(), val=task.val_data())
    lt.fit(Regression(width=8), run_dir=tmp_path / "straight", max_steps=60, display=quiet(),
           **data, **SETTINGS)
    # Calls end every 10 steps (log_every), the fake clock reads one second later each time: at
    # step 40 (5 s in) the next call, as long as the longest (1 s), could pass the limit.
    result = lt.fit(Regression(width=8), run_dir=tmp_path / "run", max_steps=60, display=quiet(),
                    callbacks=[TimeLimit(4.5, clock=FakeClock())], **data, **SETTINGS)
    assert result.stop_reason == "time_limit" and result.step == 40
    log = (tmp_path / "run" / "train.log").read_text()
    assert "time limit 4s: stopping at step 40" in log and "stopped at step 40 (time limit)" in log
    assert tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints")).endswith("ckpt-40")
    assert not (tmp_path / "run" / "finished.json").exists()  # the run is not over
    result = lt.fit(Regression(width=8), run_dir=tmp_path / "run", max_steps=60, resume="auto",
                    display=quiet(), **data, **SETTINGS)
    assert result.stop_reason == "max_steps" and (tmp_path / "run" / "finished.json").is_file()
    assert_same_variables(tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints")),
                          tf.train.latest_checkpoint(str(tmp_path / "straight" / "checkpoints")))


@pytest.mark.slow  # about ten sessions of a second each, plus their start-up
def test_the_command_line_exits_75_and_the_same_command_continues(tmp_path, capsys, monkeypatch):
    # A quarter second per call, not the real clock: on a fast machine all 100 steps ended
    # inside the second, and the limit was never reached. Three calls (30 steps) per session.
    monkeypatch.setitem(TimeLimit.__init__.__kwdefaults__, "clock", FakeClock(0.25))
    task = f"{regression_file(tmp_path / 'mine')}:Regression"
    straight = ["--task", task, "--run-dir", str(tmp_path / "straight"), "--max-steps", "100",
                "--set", "task.width=8", "--set", "train.log_every=10", "--checkpoint-every", "50"]
    assert run_main(train_main, straight) == 0
    job = ["--task", task, "--run-dir", str(tmp_path / "job"), "--resume=auto", "--max-steps",
           "100", "--set", "task.width=8", "--set", "train.log_every=10", "--checkpoint-every",
           "50", "--set", "train.time_limit=1s"]
    statuses = []
    while not statuses or statuses[-1] == 75:  # what a requeued job script does
        statuses.append(run_main(train_main, job))
        assert len(statuses) < 40
    assert statuses == [75, 75, 75, 0], statuses
    err = capsys.readouterr().err
    assert "time limit 1s reached at step" in err and "exit status 75" in err
    assert_same_variables(tf.train.latest_checkpoint(str(tmp_path / "job" / "checkpoints")),
                          tf.train.latest_checkpoint(str(tmp_path / "straight" / "checkpoints")))

