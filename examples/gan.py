"""A small GAN: two models, two optimizers, one step that updates both.

The generator maps noise to 2-D points, the discriminator tells them from samples of a ring of 8
Gaussians (GENERATED). The noise comes from a `tf.random.Generator` the task holds, so it is in
the checkpoint with both models and both optimizers: a killed run resumes bit-identically.

    looptrain train --task examples/gan.py:GAN --run-dir runs/gan --resume=auto
"""

import keras
import numpy as np
import tensorflow as tf

import looptrain as lt

NOISE = 8


def make_ring(num_examples: int, seed: int) -> np.ndarray:
    """GENERATED: points of 8 Gaussians (std 0.05) on the unit circle."""
    rng = np.random.default_rng(seed)
    angles = 2 * np.pi * rng.integers(0, 8, size=num_examples) / 8
    centres = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return (centres + 0.05 * rng.normal(size=centres.shape)).astype(np.float32)


def mlp(width: int, outputs: int) -> keras.Model:
    return keras.Sequential([keras.layers.Dense(width, activation="relu"),
                             keras.layers.Dense(width, activation="relu"),
                             keras.layers.Dense(outputs)])


class GAN(lt.Task):
    monitor, mode = "val/radius_error", "min"

    def __init__(self, width: int = 64, learning_rate: float = 1e-3, seed: int = 0):
        super().__init__()
        self.width, self.learning_rate, self.seed = width, learning_rate, seed

    def build(self):
        self.generator, self.discriminator = mlp(self.width, 2), mlp(self.width, 1)
        self.generator(tf.zeros([1, NOISE]))
        self.discriminator(tf.zeros([1, 2]))
        self.g_optimizer = keras.optimizers.Adam(self.learning_rate, beta_1=0.5)
        self.d_optimizer = keras.optimizers.Adam(self.learning_rate, beta_1=0.5)
        self.noise = tf.random.Generator.from_seed(self.seed)  # checkpointed state

    def train_step(self, real):
        bce = keras.losses.BinaryCrossentropy(from_logits=True)
        batch = tf.shape(real)[0]
        with tf.GradientTape() as tape:
            fake = self.generator(self.noise.normal([batch, NOISE]), training=True)
            real_logits = self.discriminator(real, training=True)
            fake_logits = self.discriminator(fake, training=True)
            d_loss = (bce(tf.ones_like(real_logits), real_logits)
                      + bce(tf.zeros_like(fake_logits), fake_logits))
        d_vars = self.discriminator.trainable_variables
        self.d_optimizer.apply_gradients(zip(tape.gradient(d_loss, d_vars), d_vars))
        with tf.GradientTape() as tape:
            fake = self.generator(self.noise.normal([batch, NOISE]), training=True)
            g_loss = bce(tf.ones_like(real_logits), self.discriminator(fake, training=True))
        g_vars = self.generator.trainable_variables
        self.g_optimizer.apply_gradients(zip(tape.gradient(g_loss, g_vars), g_vars))
        return {"d_loss": d_loss, "g_loss": g_loss}

    def eval_step(self, real):
        """How far generated points lie from the unit circle (fixed noise: the same every time)."""
        noise = tf.random.stateless_normal([tf.shape(real)[0], NOISE], seed=[1, 2])
        fake = self.generator(noise, training=False)
        return {"radius_error": tf.abs(tf.norm(fake, axis=-1) - 1.0)}

    def train_data(self):
        return make_ring(4096, seed=1)

    def val_data(self):
        return make_ring(512, seed=2)


if __name__ == "__main__":
    task = GAN()
    print(lt.fit(task, train=task.train_data(), val=task.val_data(), run_dir="runs/gan",
                 max_steps=3000, eval_every=200, resume="auto"))
