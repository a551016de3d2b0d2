"""AutoGraph converts the user's code (Python control flow on tensors works in every hook) and
leaves the engine's own graph code alone (each conversion costs the start of every run)."""

import textwrap

import numpy as np
import tensorflow as tf
from tensorflow.python.autograph.impl import api as autograph_api

import looptrain as lt
from looptrain.user_code import import_attr
from user_tasks import quiet

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


def data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    return x, (x @ np.array([1.0, -2.0, 0.5, 3.0], np.float32)).astype(np.float32)


def test_user_code_is_converted_and_the_engine_is_not(tmp_path, monkeypatch):
    (tmp_path / "branchy.py").write_text(textwrap.dedent(USER_FILE), encoding="utf-8")
    Branchy = import_attr(f"{tmp_path / 'branchy.py'}:Branchy", "test")
    Counter = import_attr(f"{tmp_path / 'branchy.py'}:Counter", "test")
    converted = []
    convert = autograph_api._convert_actual

    def recording(entity, program_ctx):
        converted.append(f"{getattr(entity, '__module__', '?')}.{getattr(entity, '__qualname__', '?')}")
        return convert(entity, program_ctx)

    monkeypatch.setattr(autograph_api, "_convert_actual", recording)
    counter = Counter()
    result = lt.fit(Branchy(), train=data(256, 0), val=data(64, 1), run_dir=tmp_path / "run",
                    batch_size=32, max_steps=40, log_every=10, eval_every=20, checkpoint_every=40,
                    monitor="val/mae", mode="min", histogram_every=0, callbacks=[counter],
                    display=quiet())
    assert result.step == 40 and np.isfinite(result.best_value)
    assert int(counter.large.numpy()) == 4  # one per log step: the hook's `if` ran in the graph
    ours = sorted({name for name in converted if name.startswith("looptrain.")})
    assert ours == ["looptrain.engine.autograph._call"], ours
    users = {name.partition(".")[2] for name in converted if "branchy" in name.partition(".")[0]}
    assert users == {"Branchy.train_step", "Branchy.eval_step", "Counter.in_call"}, converted
