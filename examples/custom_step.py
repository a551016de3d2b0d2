"""A custom step that reads top to bottom: mixup, label smoothing, clipping, several metrics.

Everything a training step does is here, in the order it happens; looptrain only runs it (many
steps per compiled call), checkpoints everything it touches (the mixup generator included) and
keeps the best copy by `val/accuracy`. The helpers make the same step exact under
`--strategy mirrored` and let `--on-nan skip` hold back a bad update.

    looptrain train --task examples/custom_step.py:Mixup --run-dir runs/mixup --resume=auto
"""

import keras
import numpy as np
import tensorflow as tf

import looptrain as lt

DIM, CLASSES = 32, 10


def make_clusters(num_examples: int, seed: int):
    """GENERATED: 10 Gaussian clusters in 32 dimensions, overlapping (noise 1.5)."""
    centres = np.random.default_rng(0).normal(size=(CLASSES, DIM)).astype(np.float32)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, size=num_examples).astype(np.int32)
    x = centres[y] + rng.normal(scale=1.5, size=(num_examples, DIM)).astype(np.float32)
    return x, y


class Mixup(lt.Task):
    monitor, mode = "val/accuracy", "max"

    def __init__(self, width: int = 64, learning_rate: float = 2e-3, alpha: float = 0.2,
                 label_smoothing: float = 0.1, clip_norm: float = 1.0, seed: int = 0):
        super().__init__()
        self.width, self.learning_rate, self.alpha = width, learning_rate, alpha
        self.label_smoothing, self.clip_norm, self.seed = label_smoothing, clip_norm, seed

    def build(self):
        self.model = keras.Sequential([
            keras.layers.Dense(self.width, activation="relu"), keras.layers.Dropout(0.2),
            keras.layers.Dense(self.width, activation="relu"), keras.layers.Dense(CLASSES)])
        self.model(tf.zeros([1, DIM]))
        self.optimizer = keras.optimizers.Adam(self.learning_rate)
        self.mix = tf.random.Generator.from_seed(self.seed)  # in the checkpoint: exact resume

    def train_step(self, batch):
        x, y = batch
        # 1. Targets: one-hot, smoothed towards the uniform distribution.
        targets = tf.one_hot(y, CLASSES)
        targets = targets * (1 - self.label_smoothing) + self.label_smoothing / CLASSES
        # 2. Mixup: each example blended with a random partner of the batch by a weight drawn
        #    from [0, alpha]; the targets blended alike. The draws come from the task's generator.
        size = tf.shape(x)[0]
        weight = self.mix.uniform([size, 1], 0.0, self.alpha)
        partner = tf.random.experimental.stateless_shuffle(
            tf.range(size), seed=self.mix.uniform_full_int([2], tf.int32))
        mixed_x = (1 - weight) * x + weight * tf.gather(x, partner)
        mixed_targets = (1 - weight) * targets + weight * tf.gather(targets, partner)
        # 3. The objective: soft-target cross-entropy over the global batch, plus the penalties.
        with tf.GradientTape() as tape:
            logits = self.model(mixed_x, training=True)
            per_example = keras.losses.categorical_crossentropy(mixed_targets, logits,
                                                                from_logits=True)
            loss = lt.batch_mean(per_example) + lt.model_losses(self.model)
        # 4. One update: gradients averaged across replicas once, clipped by their global norm.
        variables = self.model.trainable_variables
        grad_norm = lt.apply_gradients(self.optimizer, tape.gradient(loss, variables), variables,
                                       clip_norm=self.clip_norm)
        # 5. What to log: averaged over the steps between log steps, written as train/<name>.
        clean_hits = tf.cast(tf.argmax(self.model(x, training=False), -1, tf.int32) == y, tf.float32)
        return {"loss": loss, "clean_accuracy": lt.batch_mean(clean_hits),
                "mix_weight": tf.reduce_mean(weight), "grad_norm": grad_norm}

    def eval_step(self, batch):
        x, y = batch
        logits = self.model(x, training=False)
        loss = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
        hits = tf.cast(tf.argmax(logits, -1, tf.int32) == y, tf.float32)
        return {"loss": loss, "accuracy": hits}

    def train_data(self):
        return make_clusters(6000, seed=1)

    def val_data(self):
        return make_clusters(1000, seed=2)

    def test_data(self):
        return make_clusters(1000, seed=3)


if __name__ == "__main__":
    task = Mixup()
    print(lt.fit(task, train=task.train_data(), val=task.val_data(), run_dir="runs/mixup",
                 max_steps=2000, eval_every=100, resume="auto"))
