"""AutoGraph converts the user's code (Python control flow on tensors works in every hook) and
leaves the engine's own graph code alone (each conversion costs the start of every run)."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

from conftest import ROOT

# Python `if` and `for` on tensors in the step, the evaluation step and an in-call hook: without
# AutoGraph each raises OperatorNotAllowedInGraphError.
USER_FILE = '''
import keras
import numpy as np
import tensorflow as tf

import looptrain as lt


class Branchy(lt.Task):
    def build(self):
        self.model = keras.Sequential([keras.layers.Dense(1)])
        self.model(tf.zeros([1, 4]))
        self.optimizer = keras.optimizers.SGD(0.01)

    def train_step(self, batch):
        x, y = batch
        with tf.GradientTape() as tape:
            error = self.model(x, training=True)[:, 0] - y
            loss = tf.reduce_mean(tf.square(error))
            if loss > 1e6:  # a tensor condition: AutoGraph makes it a tf.cond
                loss = loss / 2.0
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        return {"loss": loss}

    def eval_step(self, batch):
        x, y = batch
        error = tf.abs(self.model(x)[:, 0] - y)
        total = tf.zeros_like(error)
        for i in tf.range(3):  # a tensor loop: AutoGraph makes it a tf.while_loop
            total += error
        return {"mae": total / 3.0}


class Counter(lt.Callback, lt.InCallHook):
    def setup(self, task):
        self.large = tf.Variable(0, dtype=tf.int64)

    def due(self, step, total):
        return True

    def in_call(self, step, logs):
        if logs["train/loss"] > 0.0:
            self.large.assign_add(1)
'''


# Run in a new process: AutoGraph caches each function's conversion for the life of a process,
# so in a test process that trained before, the engine's functions would not show up here even if
# they were converted.
DRIVER = '''
import json, os, sys

import numpy as np
from rich.console import Console
from tensorflow.python.autograph.impl import api

import looptrain as lt
from looptrain.user_code import import_attr

converted = []
convert = api._convert_actual


def recording(entity, program_ctx):
    converted.append(f"{getattr(entity, '__module__', '?')}.{getattr(entity, '__qualname__', '?')}")
    return convert(entity, program_ctx)


api._convert_actual = recording


def data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    return x, (x @ np.array([1.0, -2.0, 0.5, 3.0], np.float32)).astype(np.float32)


Branchy = import_attr(sys.argv[1] + ":Branchy", "test")
counter = import_attr(sys.argv[1] + ":Counter", "test")()
result = lt.fit(Branchy(), train=data(256, 0), val=data(64, 1), run_dir=sys.argv[2], batch_size=32,
                max_steps=40, log_every=10, eval_every=20, checkpoint_every=40, monitor="val/mae",
                mode="min", histogram_every=0, callbacks=[counter],
                display=lt.callbacks.Display(Console(file=open(os.devnull, "w"))))
print(json.dumps({"step": result.step, "best": result.best_value,
                  "large": int(counter.large.numpy()), "converted": converted}))
'''


def test_user_code_is_converted_and_the_engine_is_not(tmp_path):
    (tmp_path / "branchy.py").write_text(textwrap.dedent(USER_FILE), encoding="utf-8")
    (tmp_path / "driver.py").write_text(DRIVER, encoding="utf-8")
    done = subprocess.run([sys.executable, str(tmp_path / "driver.py"), str(tmp_path / "branchy.py"),
                           str(tmp_path / "run")], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["step"] == 40 and np.isfinite(out["best"])
    assert out["large"] == 4  # one per log step: the hook's `if` ran in the graph
    converted = out["converted"]
    ours = sorted({name for name in converted if name.startswith("looptrain.")})
    assert ours == ["looptrain.engine.autograph._call"], ours
    users = {name.partition(".")[2] for name in converted if "branchy" in name.partition(".")[0]}
    assert users == {"Branchy.train_step", "Branchy.eval_step", "Counter.in_call"}, converted
