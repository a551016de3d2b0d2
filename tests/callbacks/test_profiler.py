"""train.profile_steps: a TensorFlow profiler trace of those steps, one step marker per step, in
RUN/logs/train where TensorBoard's profile plugin lists it."""

import argparse
import importlib.util

import pytest
from user_tasks import quiet, regression_class

import looptrain as lt
from looptrain.engine.writers import read_jsonl
from looptrain.errors import ConfigError


def step_markers(xplane) -> list[int]:
    """The step numbers of the "train" step markers in an XSpace file."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    space.ParseFromString(xplane.read_bytes())
    steps = []
    for plane in space.planes:
        names = {k: v.name for k, v in plane.event_metadata.items()}
        stats = {k: v.name for k, v in plane.stat_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                if names.get(event.metadata_id) == "train":
                    steps += [s.int64_value for s in event.stats
                              if stats.get(s.metadata_id) == "step_num"]
    return sorted(steps)


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("profile")
    Regression = regression_class(tmp / "mine")
    task, run = Regression(width=8), tmp / "run"
    lt.fit(task, train=task.train_data(), val=task.val_data(), run_dir=run, batch_size=32,
           max_steps=40, eval_every=20, log_every=10, profile_steps="13-16", display=quiet())
    return run


def test_the_chosen_steps_are_traced_each_in_a_step_marker(profiled):
    (xplane,) = (profiled / "logs" / "train" / "plugins" / "profile").glob("*/*.xplane.pb")
    assert step_markers(xplane) == [13, 14, 15, 16]
    log = (profiled / "train.log").read_text()
    assert "profiling steps 13-16" in log and "profile of steps 13-16 written to" in log
    # The cadence outside the window is untouched: log steps as without a profile.
    assert sorted({r["step"] for r in read_jsonl(profiled / "metrics.jsonl")}) == [10, 20, 30, 40]


@pytest.mark.skipif(importlib.util.find_spec("xprof") is None,
                    reason="tensorboard-plugin-profile is not installed (pip install "
                           "'looptrain[profile]', or make tensorboard)")
def test_tensorboards_profile_plugin_lists_the_trace_and_its_tools(profiled):
    from tensorboard.plugins import base_plugin
    from xprof.profile_plugin import ProfilePlugin

    context = base_plugin.TBContext(logdir=str(profiled.parent),
                                    flags=argparse.Namespace(master_tpu_unsecure_channel=""))
    plugin = ProfilePlugin(context)
    (run,) = plugin.runs_imp()
    assert run.startswith("run/logs/train/")
    assert {"overview_page", "trace_viewer@"} <= set(plugin.run_tools_imp(run))


def test_a_bad_window_is_a_one_line_error(tmp_path):
    Regression = regression_class(tmp_path / "mine")
    task = Regression(width=8)
    with pytest.raises(ConfigError, match=r"'train.profile_steps': profile steps '5-3': need 1 <= "):
        lt.fit(task, train=task.train_data(), run_dir=tmp_path / "run", profile_steps="5-3",
               monitor="train/loss", display=quiet())
    assert not (tmp_path / "run").exists()
