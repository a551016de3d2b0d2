"""EMA of the weights (`train.ema_decay`): the average by hand, evaluation and the best copy on it,
training on the raw weights, and a bit-identical resume, with a task defined outside the package."""

import json

import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_same_variables
from user_tasks import quiet, regression_class

import looptrain as lt
from looptrain.engine.writers import read_jsonl
from looptrain.errors import RunDirError

DECAY = 0.9
SETTINGS = dict(batch_size=32, log_every=10, eval_every=30, checkpoint_every=10, ema_decay=DECAY)


class Recorder(lt.Callback):
    """The raw weights before the first step and after every call."""

    def __init__(self):
        self.weights = {}

    def _record(self, loop):
        self.weights[loop.step] = [v.numpy().copy() for v in loop.task.model.trainable_variables]

    def on_fit_begin(self, loop):
        self._record(loop)

    def on_call_end(self, loop, result):
        self._record(loop)


def _mse(weights, data):
    """The validation MSE of the regression MLP with `weights`, in numpy."""
    (w1, b1, w2, b2), (x, y) = weights, data
    return float(np.mean(((np.maximum(x @ w1 + b1, 0.0) @ w2 + b2)[:, 0] - y) ** 2))


def test_evaluation_and_the_best_copy_use_the_average_computed_by_hand(tmp_path):
    Regression = regression_class(tmp_path / "mine")
    task, recorder = Regression(width=8), Recorder()
    run = tmp_path / "run"
    result = lt.fit(task, train=task.train_data(), val=task.val_data(), run_dir=run, max_steps=30,
                    steps_per_loop=1, callbacks=[recorder], display=quiet(), **SETTINGS)
    assert sorted(recorder.weights) == list(range(31))  # one step per call: every step seen
    average = [w.copy() for w in recorder.weights[0]]  # the shadows start as the initial weights
    for t in range(1, 31):
        decay = np.minimum(np.float32(DECAY), np.float32(1 + t) / np.float32(10 + t))
        for a, w in zip(average, recorder.weights[t]):
            a -= (np.float32(1) - decay) * (a - w)
    latest = tf.train.latest_checkpoint(str(run / "checkpoints"))
    for i, a in enumerate(average):  # the checkpointed shadows are the hand-made average
        np.testing.assert_allclose(tf.train.load_variable(
            latest, f"averaged_weights/values/{i}/.ATTRIBUTES/VARIABLE_VALUE"), a, rtol=1e-6, atol=1e-7)
    # Training went on with the raw weights, put back bit for bit after each swap.
    for variable, raw in zip(task.model.trainable_variables, recorder.weights[30]):
        np.testing.assert_array_equal(variable.numpy(), raw)
    val = task.val_data()
    logged = next(r for r in read_jsonl(run / "metrics.jsonl") if "val/mse" in r)
    assert logged["step"] == 30
    assert logged["val/mse"] == pytest.approx(_mse(average, val), rel=1e-5)
    assert abs(_mse(recorder.weights[30], val) - logged["val/mse"]) > 1e-3  # not the raw weights'
    assert result.best_value == pytest.approx(logged["val/mse"])
    # The best copy holds the average: evaluate (best) and evaluate (latest, from its shadows).
    for which in ("best", "latest"):
        metrics = lt.evaluate(Regression(width=8), data=val, run_dir=run, checkpoint=which)
        assert metrics["mse"] == pytest.approx(logged["val/mse"], rel=1e-6), which


def test_a_resumed_run_continues_the_average_bit_identically(tmp_path):
    Regression = regression_class(tmp_path / "mine")
    task = Regression(width=8)
    data = dict(train=task.train_data(), val=task.val_data())
    lt.fit(Regression(width=8), run_dir=tmp_path / "straight", max_steps=60, display=quiet(),
           **data, **SETTINGS)
    lt.fit(Regression(width=8), run_dir=tmp_path / "split", max_steps=30, display=quiet(),
           **data, **SETTINGS)
    lt.fit(Regression(width=8), run_dir=tmp_path / "split", max_steps=60, resume=True,
           display=quiet(), **data, **SETTINGS)
    final = tf.train.latest_checkpoint(str(tmp_path / "split" / "checkpoints"))
    names = assert_same_variables(final, tf.train.latest_checkpoint(
        str(tmp_path / "straight" / "checkpoints")))
    assert final.endswith("ckpt-60") and sum(n.startswith("averaged_weights/") for n in names) == 4
    # The decay decides what the best copy holds: fixed for the run's life.
    with pytest.raises(RunDirError, match="cannot change settings 'ema_decay'"):
        lt.fit(Regression(width=8), run_dir=tmp_path / "split", max_steps=90, resume=True,
               display=quiet(), **data, **{**SETTINGS, "ema_decay": 0.99})
    best = json.loads((tmp_path / "split" / "best" / "best.json").read_text())
    assert best["monitor"] == "val/mse"


def test_ema_passed_as_a_user_callback_is_checkpointed(tmp_path):
    Regression = regression_class(tmp_path / "mine")
    task = Regression(width=8)
    ema = lt.callbacks.EMA(0.5)
    lt.fit(task, train=task.train_data(), val=task.val_data(), run_dir=tmp_path / "run",
           max_steps=20, batch_size=32, eval_every=10, display=quiet(), callbacks=[ema])
    latest = tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints"))
    saved = tf.train.load_variable(latest, "averaged_weights/values/0/.ATTRIBUTES/VARIABLE_VALUE")
    np.testing.assert_array_equal(saved, ema.averages.values[0].numpy())
    assert not np.array_equal(saved, task.model.trainable_variables[0].numpy())


@pytest.mark.slow
def test_the_average_under_a_mirrored_strategy_is_the_one_device_average(corpus_dir, tmp_path):
    import os
    import subprocess
    import sys

    from conftest import ROOT

    def train(name, *extra):
        command = [sys.executable, str(ROOT / "scripts" / "train.py"), "--config",
                   str(ROOT / "configs" / "tiny.toml"), "--data-dir", str(corpus_dir), "--run-dir",
                   str(tmp_path / name), "--max-steps", "30", "--eval-every", "10",
                   "--set", "train.ema_decay=0.9", "--set", "model.dropout=0.0", *extra]
        done = subprocess.run(command, env={**os.environ, "PYTHONPATH": str(ROOT)},
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return tf.train.latest_checkpoint(str(tmp_path / name / "checkpoints"))

    one, mirrored = train("one"), train("mirrored", "--strategy", "mirrored", "--num-devices", "2")
    names = [n for n, _ in tf.train.list_variables(one)
             if n.startswith("averaged_weights/") and n.endswith("VARIABLE_VALUE")]
    assert names
    for name in names:  # the replicas' summed update is the one-device update (to float rounding)
        np.testing.assert_allclose(tf.train.load_variable(mirrored, name),
                                   tf.train.load_variable(one, name), atol=1e-5)
