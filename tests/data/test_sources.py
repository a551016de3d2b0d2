"""What each data source guarantees on resume, tested: arrays (a tuple or a dict), a
`tf.data.Dataset` of batches and a function of the start step continue exactly where a run
stopped (one device here; under a strategy in `test_distribute_dataset`)."""

from pathlib import Path
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT, assert_same_variables

import looptrain as lt
from looptrain.errors import ConfigError


def _quiet():
    from rich.console import Console

    return lt.callbacks.Display(Console(file=open(os.devnull, "w")))


def _data():
    from examples.custom_step import make_clusters

    return make_clusters(600, seed=1)


def _dataset():
    """Batches of a shuffled dataset (seeded: a fresh pass reshuffles, the same each run)."""
    x, y = _data()
    tf.random.set_seed(3)  # with the op seed below, the same order whatever ran before
    return tf.data.Dataset.from_tensor_slices((x, y)).shuffle(600, seed=3).batch(32)


SOURCES = {
    "arrays": lambda: _data(),
    "dict": lambda: dict(zip(("x", "y"), _data())),
    "dataset": _dataset,
    "function": lambda: (lambda start: _dataset().repeat().skip(start)),
}


def _task(source_name):
    from examples.custom_step import Mixup

    class Keyed(Mixup):  # the same step, on dict batches
        def train_step(self, batch):
            return super().train_step((batch["x"], batch["y"]))

    return Keyed() if source_name == "dict" else Mixup()


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_source_resumes_where_the_run_stopped(name, tmp_path):
    # The first run stops mid-epoch (19 batches of 32 per epoch) at a log step: a run that ends
    # by max_steps logs and evaluates there, which an uninterrupted one does only on its cadence.
    # The function source has no epochs of its own (max_steps ends it).
    settings = dict(batch_size=32, checkpoint_every=10, log_every=10, monitor="train/loss",
                    num_epochs=10, display=_quiet())
    straight = lt.fit(_task(name), train=SOURCES[name](), run_dir=tmp_path / "straight",
                      max_steps=70, **settings)
    first = lt.fit(_task(name), train=SOURCES[name](), run_dir=tmp_path / "split", max_steps=30,
                   **settings)
    resumed = lt.fit(_task(name), train=SOURCES[name](), run_dir=tmp_path / "split", max_steps=70,
                     resume=True, **settings)
    assert (straight.step, first.step, resumed.steps_run) == (70, 30, 40)
    names = assert_same_variables(tf.train.latest_checkpoint(str(tmp_path / "split" / "checkpoints")),
                                  tf.train.latest_checkpoint(str(tmp_path / "straight" / "checkpoints")))
    if name == "dataset":  # replayed up to the step: no iterator state (see below)
        final = tf.train.latest_checkpoint(str(tmp_path / "split" / "checkpoints"))
        assert not any(n.startswith("iterator/") for n, _ in tf.train.list_variables(final))
    if name in ("arrays", "dict"):  # two integers are
        assert {"data_position/epoch/.ATTRIBUTES/VARIABLE_VALUE",
                "data_position/batch/.ATTRIBUTES/VARIABLE_VALUE"} <= set(names)


def test_a_reshuffling_dataset_resumes_exactly_from_the_end_of_an_epoch(tmp_path):
    # TensorFlow keeps a reshuffling shuffle's epoch seeds outside the iterator state once the
    # epoch's shuffle iterator is used up (tensorflow#48178): a checkpointed iterator restored
    # there replays another epoch's order. Here the checkpoint is at the end of epoch 2 (19
    # batches an epoch), with tf.data's injected prefetch off so the loss is not left to timing.
    def dataset():
        options = tf.data.Options()
        options.experimental_optimization.inject_prefetch = False
        return _dataset().with_options(options)

    settings = dict(batch_size=32, checkpoint_every=19, log_every=19, monitor="train/loss",
                    num_epochs=4, display=_quiet())
    lt.fit(_task("dataset"), train=dataset(), run_dir=tmp_path / "straight", max_steps=57,
           **settings)
    lt.fit(_task("dataset"), train=dataset(), run_dir=tmp_path / "split", max_steps=38, **settings)
    lt.fit(_task("dataset"), train=dataset(), run_dir=tmp_path / "split", max_steps=57, resume=True,
           **settings)
    assert_same_variables(tf.train.latest_checkpoint(str(tmp_path / "split" / "checkpoints")),
                          tf.train.latest_checkpoint(str(tmp_path / "straight" / "checkpoints")))


def test_resume_refuses_other_arrays_and_auto_starts_or_continues(tmp_path):
    x, y = _data()
    settings = dict(batch_size=32, monitor="train/loss", display=_quiet())
    result = lt.fit(_task("arrays"), train=(x, y), run_dir=tmp_path / "run", max_steps=10,
                    resume="auto", **settings)  # nothing there: a new run
    assert result.steps_run == 10
    result = lt.fit(_task("arrays"), train=(x, y), run_dir=tmp_path / "run", max_steps=20,
                    resume="auto", **settings)  # a run there: continued
    assert (result.step, result.steps_run) == (20, 10)
    from looptrain.errors import RunDirError

    with pytest.raises(RunDirError, match="the training data differs from the data this run "
                                          "started with"):
        lt.fit(_task("arrays"), train=(x[::-1].copy(), y[::-1].copy()), run_dir=tmp_path / "run",
               max_steps=30, resume=True, **settings)
    with pytest.raises(RunDirError, match="cannot change settings 'batch_size' of the run"):
        lt.fit(_task("arrays"), train=(x, y), run_dir=tmp_path / "run", max_steps=30, resume=True,
               **{**settings, "batch_size": 16})


def test_unusable_data_and_settings_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="train data must be numpy arrays"):
        lt.fit(_task("arrays"), train=[[1, 2], [3, 4]], run_dir=tmp_path / "a", display=_quiet())
    with pytest.raises(ConfigError, match="unknown setting 'patients'; did you mean 'patience'\\?$"):
        lt.fit(_task("arrays"), train=_data(), run_dir=tmp_path / "b", patients=3)
    with pytest.raises(ConfigError, match="'patience' must be >= 1, got 0"):
        lt.fit(_task("arrays"), train=_data(), run_dir=tmp_path / "c", patience=0)
    with pytest.raises(ConfigError, match="does not say how many batches an epoch has"):
        lt.fit(_task("arrays"), train=_dataset().repeat(), run_dir=tmp_path / "d",
               monitor="train/loss", display=_quiet())
    assert not any((tmp_path / d).exists() for d in "abcd")


@pytest.mark.slow
def test_a_dataset_resumes_exactly_under_mirrored_by_skipping(tmp_path):
    """Distributed iterators cannot be checkpointed: the resumed run skips the batches read."""
    script = f"""
import os, sys
sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / 'tests')!r}); sys.path.insert(0, {str(Path(__file__).parent)!r})
from looptrain.engine.distribute import local_devices
local_devices(2)  # two logical CPUs, before the datasets below start TensorFlow
from test_sources import _task, _dataset, _quiet
from conftest import assert_same_variables
import looptrain as lt, tensorflow as tf
s = dict(batch_size=32, checkpoint_every=10, monitor="train/loss", strategy="mirrored",
         num_devices=2, display=_quiet())
lt.fit(_task("dataset"), train=_dataset(), run_dir="{tmp_path}/straight", max_steps=50, **s)
lt.fit(_task("dataset"), train=_dataset(), run_dir="{tmp_path}/split", max_steps=30, **s)
lt.fit(_task("dataset"), train=_dataset(), run_dir="{tmp_path}/split", max_steps=50, resume=True, **s)
assert_same_variables(tf.train.latest_checkpoint("{tmp_path}/split/checkpoints"),
                      tf.train.latest_checkpoint("{tmp_path}/straight/checkpoints"))
print("same")
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("same")


__all__ = ["np"]
