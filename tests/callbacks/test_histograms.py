"""Histograms fall on their own cadence, not only where a log step happens to meet it, and a long
run keeps to about `histogram_slices` of them."""

import numpy as np
import pytest
import tensorflow as tf

import looptrain as lt
from user_tasks import quiet, regression_class


def histogram_steps(run_dir) -> dict[str, list[int]]:
    steps = {}
    for path in (run_dir / "logs" / "train").glob("events.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "histograms":
                    steps.setdefault(value.tag, []).append(event.step)
    return steps


def fit_with_histograms(tmp_path, **settings):
    Regression = regression_class(tmp_path / "mine")
    task = Regression(width=8)
    lt.fit(Regression(width=8), run_dir=tmp_path / "run", train=task.train_data(),
           val=task.val_data(), log_every=100, eval_every=1000, eval_per_epoch=False,
           checkpoint_every=1000, batch_size=16, display=quiet(), **settings)
    return histogram_steps(tmp_path / "run")


def test_histograms_are_written_every_n_steps_whatever_the_log_cadence(tmp_path):
    # 250 is no multiple of log_every = 100: calls must end at 250 and 750 for them as well.
    steps = fit_with_histograms(tmp_path, max_steps=1000, histogram_every=250)
    assert steps and all(sorted(s) == [250, 500, 750, 1000] for s in steps.values()), steps


@pytest.mark.parametrize("slices, expected", [(5, [200, 400, 600, 800, 1000]),
                                              (0, list(range(100, 1001, 100)))])
def test_a_long_run_keeps_to_about_histogram_slices_of_them(tmp_path, slices, expected):
    # Every 100 steps would be 10 slices: a cap of 5 stretches it to the multiple 200; 0 = no cap.
    steps = fit_with_histograms(tmp_path, max_steps=1000, histogram_every=100,
                                histogram_slices=slices)
    assert steps and all(sorted(s) == expected for s in steps.values()), steps


def test_a_run_shorter_than_the_cadence_does_not_compile_the_histograms(tmp_path):
    # The gradient probe traces the task's objective: a run with no histogram step must not pay
    # for it (a 200-step TextCNN job, every = 250), one with a histogram step must write it.
    Regression = regression_class(tmp_path / "mine")
    traced = []

    class Probed(Regression):
        def objective(self, batch, training=False):
            traced.append(training)
            x, y = batch
            return tf.reduce_mean(tf.square(self.model(x, training=training)[:, 0] - y))

    def fit(name, max_steps):
        task = Probed(width=8)
        lt.fit(task, run_dir=tmp_path / name, train=task.train_data(), val=task.val_data(),
               log_every=50, eval_every=1000, checkpoint_every=1000, batch_size=16,
               max_steps=max_steps, histogram_every=100, display=quiet())
        return histogram_steps(tmp_path / name)

    assert fit("short", 99) == {} and traced == []
    steps = fit("long", 100)
    assert traced == [False] and steps and all(s == [100] for s in steps.values()), steps


def test_a_run_saved_before_histogram_slices_reads_as_uncapped(tmp_path):
    import json

    from looptrain import config as config_lib

    sections = config_lib.Config().to_dict()
    del sections["train"]["histogram_slices"]
    (tmp_path / "config.json").write_text(json.dumps(sections))
    assert config_lib.load_json(tmp_path / "config.json").train.histogram_slices == 0
    assert config_lib.Config().train.histogram_slices == 10  # a new run: about ten slices


@pytest.mark.parametrize("data", [np.random.default_rng(0).normal(size=[40, 8]),  # spread
                                  np.zeros([16]),  # a bias at its start: one value
                                  np.array([1.0, 2.0]), np.full([3, 3], -2.5),
                                  np.random.default_rng(1).normal(scale=1e-3, size=[5000, 4])])
def test_histograms_read_back_as_tensorboards_own(tmp_path, data):
    # The histograms are computed without tf.summary.histogram's conds (a faster first trace):
    # TensorBoard must read the same buckets and the same plugin as from the public API.
    from looptrain.callbacks.histograms import _histogram

    writers = {name: tf.summary.create_file_writer(str(tmp_path / name)) for name in ("tf", "ours")}

    @tf.function
    def write(data):
        with writers["tf"].as_default():
            tf.summary.histogram("h", data, step=3)
        with writers["ours"].as_default():
            _histogram("h", data, tf.constant(3, tf.int64))

    write(tf.constant(data, tf.float32))
    read = {}
    for name, writer in writers.items():
        writer.flush()
        (path,) = (tmp_path / name).glob("events.*")
        (value,) = [(e.step, v) for e in tf.compat.v1.train.summary_iterator(str(path))
                    for v in e.summary.value]
        read[name] = (value[0], value[1].tag, value[1].metadata.plugin_data.plugin_name,
                      tf.make_ndarray(value[1].tensor))
    assert read["ours"][:3] == read["tf"][:3] == (3, "h", "histograms")
    ours, theirs = read["ours"][3], read["tf"][3]
    np.testing.assert_array_equal(ours[:, 2], theirs[:, 2])  # the counts, exactly
    np.testing.assert_allclose(ours[:, :2], theirs[:, :2], rtol=1e-12)  # edges (float64 ulps)
