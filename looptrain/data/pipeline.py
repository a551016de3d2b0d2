"""tf.data input pipelines over encoded arrays.

Training order is a pure function of `(seed, epoch)`: every epoch is a fresh pseudo-random permutation
computed by `tf.random.experimental.index_shuffle`, so the stream position is fully determined by the
global step. A resumed run rebuilds the iterator at exactly the next batch (`start_step`) instead of
storing a shuffle buffer in the checkpoint: checkpoints stay the same size whatever the data size, and
the same mechanism works where iterators cannot be saved (distributed input).

The encoded arrays are held once in memory (the cache) and batches are gathered from them; gathering
per batch rather than per example keeps the pipeline far ahead of the model (about 90k examples/s
here against the reference TextCNN's ~500). tf.data's autotuner is therefore switched off in favour
of fixed parallelism and prefetch depth: with it on, destroying an iterator at the end of a run
(or of every in-graph evaluation pass) intermittently blocked for seconds, up to ~20 s after ten
epochs, while its background thread finished sleeping.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

_PARALLEL_CALLS = 2  # batches gathered concurrently
_PREFETCH_BATCHES = 2  # batches ready ahead of the step


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    """Batches per epoch; the last batch of an epoch may be smaller (nothing is dropped)."""
    return math.ceil(num_examples / batch_size)


def make_train_dataset(x: np.ndarray, y: np.ndarray, *, batch_size: int, seed: int, num_epochs: int,
                       start_step: int = 0) -> tf.data.Dataset:
    """Shuffled `(x, y)` batches for `num_epochs` epochs, starting at global step `start_step`.

    Args:
        x: int32 `[n, seq_length]` token ids.
        y: int32 `[n]` label ids.
        batch_size: examples per batch; the last batch of each epoch holds the remainder.
        seed: shuffling seed; epoch `e` uses the permutation of `(seed, e)`.
        num_epochs: total epochs of the run (not the epochs left).
        start_step: batches already consumed; the stream resumes exactly after them.

    Returns:
        A dataset of `(x_batch, y_batch)` whose element spec has an unknown batch dimension, so a
        step function traced on it is traced once for full and partial batches alike.
    """
    n = len(x)
    start_epoch, start_batch = divmod(start_step, steps_per_epoch(n, batch_size))
    features, labels = tf.constant(x), tf.constant(y)
    seed = tf.constant(seed, tf.int64)

    def epoch_indices(epoch):
        # Positions already consumed in the epoch we resume in are skipped arithmetically (O(1)).
        first = tf.where(epoch == start_epoch, tf.constant(start_batch * batch_size, tf.int64), 0)
        positions = tf.data.Dataset.range(first, n).batch(batch_size)
        return positions.map(
            lambda p: tf.random.experimental.index_shuffle(p, tf.stack([seed, epoch]), n - 1))

    dataset = tf.data.Dataset.range(start_epoch, num_epochs).flat_map(epoch_indices)
    dataset = dataset.map(lambda i: (tf.gather(features, i), tf.gather(labels, i)),
                          num_parallel_calls=_PARALLEL_CALLS, deterministic=True)
    return _finish(dataset)


def make_eval_dataset(x: np.ndarray, y: np.ndarray, *, batch_size: int) -> tf.data.Dataset:
    """All examples in file order, batched, cached after the first pass and prefetched."""
    features, labels = tf.constant(x), tf.constant(y)
    dataset = tf.data.Dataset.range(len(x)).batch(batch_size)
    dataset = dataset.map(lambda i: (tf.gather(features, i), tf.gather(labels, i)))
    return _finish(dataset.cache())


def _finish(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Prefetches a fixed number of batches, with the autotuner off (see the module docstring)."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(_PREFETCH_BATCHES).with_options(options)
