"""Multi-label classification: several independent yes/no labels per example (sigmoid outputs),
with per-label precision, recall and F1 derived at the end of each evaluation.

The step uses looptrain's helpers (`lt.batch_mean`, `lt.apply_gradients`), so the same task also
runs under `--strategy mirrored` with the update of one device, and `--on-nan skip` works.

    looptrain train --task examples/multilabel.py:MultiLabel --run-dir runs/ml --resume=auto
"""

import keras
import numpy as np
import tensorflow as tf

import looptrain as lt

DIM, LABELS = 16, 5


def make_data(num_examples: int, seed: int):
    """GENERATED: label j is on when `x . w_j > t_j` (w, t fixed), with 5 % of the labels flipped."""
    rng0 = np.random.default_rng(0)
    w = rng0.normal(size=(DIM, LABELS)).astype(np.float32)
    thresholds = rng0.normal(scale=0.5, size=LABELS).astype(np.float32)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(num_examples, DIM)).astype(np.float32)
    y = (x @ w > thresholds).astype(np.float32)
    flip = rng.random(y.shape) < 0.05
    return {"features": x, "labels": np.where(flip, 1 - y, y).astype(np.float32)}


class MultiLabel(lt.Task):
    monitor, mode = "val/micro_f1", "max"

    def __init__(self, width: int = 32, learning_rate: float = 3e-3, num_examples: int = 3000):
        super().__init__()
        self.width, self.learning_rate, self.num_examples = width, learning_rate, num_examples

    def build(self):
        self.model = keras.Sequential([keras.layers.Dense(self.width, activation="relu"),
                                       keras.layers.Dense(LABELS)])
        self.model(tf.zeros([1, DIM]))
        self.optimizer = keras.optimizers.Adam(self.learning_rate)

    def train_step(self, batch):
        x, y = batch["features"], batch["labels"]
        with tf.GradientTape() as tape:
            logits = self.model(x, training=True)
            per_example = tf.reduce_mean(
                tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits), axis=-1)
            loss = lt.batch_mean(per_example) + lt.model_losses(self.model)
        grad_norm = lt.apply_gradients(self.optimizer, tape.gradient(loss, self.model.trainable_variables),
                                       self.model.trainable_variables)
        return {"loss": loss, "grad_norm": grad_norm}

    def eval_step(self, batch):
        """Per example and label: true positive, false positive, false negative (averaged by the
        loop over the split; the ratios below do not depend on the count)."""
        y = batch["labels"]
        predicted = tf.cast(self.model(batch["features"], training=False) > 0, tf.float32)
        return {"tp": predicted * y, "fp": predicted * (1 - y), "fn": (1 - predicted) * y}

    def eval_end(self, means):
        tp, fp, fn = means.pop("tp"), means.pop("fp"), means.pop("fn")
        precision = tp / np.maximum(tp + fp, 1e-12)
        recall = tp / np.maximum(tp + fn, 1e-12)
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        micro = 2 * tp.sum() / max(2 * tp.sum() + fp.sum() + fn.sum(), 1e-12)
        return {"micro_f1": float(micro), "macro_f1": float(f1.mean()), "precision": precision,
                "recall": recall, "f1": f1}

    def train_data(self):
        return make_data(self.num_examples, seed=1)

    def val_data(self):
        return make_data(self.num_examples // 3, seed=2)

    def test_data(self):
        return make_data(self.num_examples // 3, seed=3)


if __name__ == "__main__":
    task = MultiLabel()
    print(lt.fit(task, train=task.train_data(), val=task.val_data(), run_dir="runs/multilabel",
                 max_steps=1500, eval_every=100, resume="auto"))
