"""Histograms fall on their own cadence, not only where a log step happens to meet it."""

import tensorflow as tf

import looptrain as lt
from user_tasks import quiet, regression_class


def test_histograms_are_written_every_n_steps_whatever_the_log_cadence(tmp_path):
    # 250 is no multiple of log_every = 100: calls must end at 250 and 750 for them as well.
    Regression = regression_class(tmp_path / "mine")
    task = Regression(width=8)
    lt.fit(Regression(width=8), run_dir=tmp_path / "run", train=task.train_data(),
           val=task.val_data(), max_steps=1000, log_every=100, histogram_every=250,
           eval_every=1000, eval_per_epoch=False, checkpoint_every=1000, batch_size=16, display=quiet())
    steps = {}
    for path in (tmp_path / "run" / "logs" / "train").glob("events.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "histograms":
                    steps.setdefault(value.tag, []).append(event.step)
    assert steps and all(sorted(s) == [250, 500, 750, 1000] for s in steps.values()), steps
