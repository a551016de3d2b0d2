"""Regression with early stopping on `val/mse`: a task of your own, in a file of its own.

Everything here is the public API (`import looptrain as lt`): the model, the step, the data and
the metric are this file's; looptrain runs the loop (many steps per compiled call, exact resume,
checkpoints, the best copy, early stopping on `val/mse` with mode "min", TensorBoard).

    python examples/regression.py                        # lt.fit from Python
    looptrain train --task examples/regression.py:Regression --run-dir runs/reg \
        --set task.width=64 --max-steps 2000 --resume=auto   # the same from the command line
    python scripts/evaluate.py --run-dir runs/reg        # its test metrics, in a new process
"""

import keras
import numpy as np
import tensorflow as tf

import looptrain as lt

DIM = 8


class MLP(keras.Model):
    """One hidden layer of `width` ReLU units and a linear output."""

    def __init__(self, width: int):
        super().__init__()
        self.hidden = keras.layers.Dense(width, activation="relu")
        self.output_layer = keras.layers.Dense(1)

    def call(self, x, training=False):
        return self.output_layer(self.hidden(x))


def make_data(num_examples: int, seed: int):
    """GENERATED: `y = sin(x . w) + 0.1 * noise` for 8-dim standard normal `x` (w fixed)."""
    w = np.random.default_rng(0).normal(size=DIM).astype(np.float32)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(num_examples, DIM)).astype(np.float32)
    y = (np.sin(x @ w) + 0.1 * rng.normal(size=num_examples)).astype(np.float32)
    return x, y


class Regression(lt.Task):
    monitor, mode = "val/mse", "min"

    def __init__(self, width: int = 32, learning_rate: float = 1e-3, num_examples: int = 4000):
        super().__init__()
        self.width, self.learning_rate, self.num_examples = width, learning_rate, num_examples

    def build(self):
        self.model = MLP(self.width)
        self.model(tf.zeros([1, DIM]))  # every weight exists before a checkpoint is restored
        self.optimizer = keras.optimizers.Adam(self.learning_rate)

    def train_step(self, batch):
        x, y = batch
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(self.model(x, training=True)[:, 0] - y))
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        return {"loss": loss}

    def eval_step(self, batch):
        x, y = batch
        error = self.model(x, training=False)[:, 0] - y
        return {"mse": tf.square(error), "mae": tf.abs(error)}

    def train_data(self):
        return make_data(self.num_examples, seed=1)

    def val_data(self):
        return make_data(self.num_examples // 4, seed=2)

    def test_data(self):
        return make_data(self.num_examples // 4, seed=3)


if __name__ == "__main__":
    task = Regression(width=64)
    result = lt.fit(task, train=task.train_data(), val=task.val_data(), run_dir="runs/regression",
                    batch_size=64, max_steps=2000, eval_every=100, monitor="val/mse", mode="min",
                    patience=500, resume="auto")
    print(result)
    print(lt.evaluate(Regression(width=64), data=task.test_data(), run_dir="runs/regression"))
