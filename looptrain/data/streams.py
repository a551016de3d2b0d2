"""Sequential sources: data read in order, not by index, and what each guarantees on resume.

- `DatasetSource`: any `tf.data.Dataset` of batches, taken as it is (an epoch is one pass).
- `TFRecordSource`: TFRecord shards, read in a seeded per-epoch order of the shards with a seeded
  shuffle buffer, parsed and batched by looptrain.
- `FunctionSource`: a function from the start step to a dataset of the batches from there on.

A resumed run rebuilds a `tf.data.Dataset` source's stream and skips the batches already read:
exact when the stream is deterministic (the same seeds give the same order), at the cost of
reading those batches again. Its iterator is not checkpointed, although TensorFlow can save it on
one device: a `shuffle()` that reshuffles each epoch keeps its epoch seeds outside the iterator
state once an epoch's shuffle iterator is used up (tensorflow#48178), so a checkpoint taken at the
end of an epoch (or at any step, once tf.data's injected prefetch has read ahead to it) resumed
with another epoch's order. `TFRecordSource` builds its own stream, one shuffle buffer over all
epochs that never runs out mid-run: on one device its iterator goes into the checkpoint (buffers
included; the run log says how many bytes), so a resumed run continues exactly without reading
again. Under a `tf.distribute` strategy iterators cannot be checkpointed (tensorflow#56372): a
TFRecord stream is rebuilt and skipped too.
"""

from __future__ import annotations

import os
from typing import Callable

import tensorflow as tf

from looptrain.errors import ConfigError, DataError


class DatasetSource:
    """A `tf.data.Dataset` of batches, taken as it is (an epoch is one pass over it)."""

    positional = False
    sized = False
    # Whether the iterator is the data position on one device (else the stream is replayed).
    checkpoint_iterator = False

    def __init__(self, dataset: tf.data.Dataset):
        self.dataset = dataset
        cardinality = int(dataset.cardinality())
        self.num_batches = cardinality if cardinality >= 0 else None

    def steps_per_epoch(self, batch_size: int) -> int | None:
        return self.num_batches

    def train_dataset(self, *, batch_size: int, seed: int, num_epochs: int, start_step: int = 0,
                      replicas=None) -> tf.data.Dataset:
        dataset = self.dataset.repeat(num_epochs) if self.num_batches is not None else self.dataset
        return dataset.skip(start_step) if start_step else dataset

    def eval_dataset(self, batch_size: int) -> tf.data.Dataset:
        return self.dataset

    def first_batch(self, batch_size: int):
        return next(iter(self.dataset))

    def fingerprint(self) -> dict:
        return {"num_batches": self.num_batches}


class TFRecordSource(DatasetSource):
    """TFRecord shards: each epoch reads the shards in an order drawn from (seed, epoch); the
    records pass a shuffle buffer of `shuffle_buffer` examples seeded by the run's seed, then
    `parse(record) -> example` and batches of the run's `batch_size` (the stream of epochs is
    batched as one, so a batch may hold the end of one epoch and the start of the next).

    Args:
        files: the shards (paths).
        parse: one serialized record (`tf.string` scalar) to one example (e.g. with
            `tf.io.parse_single_example`).
        num_examples: the examples in all shards, when known (for epochs; else `max_steps` ends
            the run).
        shuffle_buffer: examples in the shuffle buffer (0: no shuffling within shards).
        cycle_length: shards read at the same time.
    """

    checkpoint_iterator = True  # its one shuffle buffer spans the run: never used up mid-run

    def __init__(self, files, parse: Callable, *, num_examples: int | None = None,
                 shuffle_buffer: int = 1024, cycle_length: int = 4):
        self.files = [os.fspath(f) for f in ([files] if isinstance(files, (str, os.PathLike)) else files)]
        missing = [f for f in self.files if not os.path.isfile(f)]
        if not self.files or missing:
            raise DataError(f"no TFRecord file {missing[0] if missing else '(none given)'}")
        self.parse, self.num_examples = parse, num_examples
        self.shuffle_buffer, self.cycle_length = shuffle_buffer, cycle_length
        self.num_batches = None

    def steps_per_epoch(self, batch_size: int) -> int | None:
        return None if self.num_examples is None else -(-self.num_examples // batch_size)

    def _epoch(self, epoch, seed):
        """The records of one epoch: its shards in the order of (seed, epoch), interleaved."""
        files = tf.constant(self.files)
        order = tf.random.experimental.index_shuffle(
            tf.range(len(self.files), dtype=tf.int64), tf.stack([seed, epoch]), len(self.files) - 1)
        return tf.data.Dataset.from_tensor_slices(tf.gather(files, order)).interleave(
            tf.data.TFRecordDataset, cycle_length=self.cycle_length, block_length=1)

    def train_dataset(self, *, batch_size: int, seed: int, num_epochs: int, start_step: int = 0,
                      replicas=None) -> tf.data.Dataset:
        epochs = num_epochs if self.num_examples is not None else 1_000_000
        seed_tensor = tf.constant(seed, tf.int64)
        records = tf.data.Dataset.range(epochs).flat_map(lambda e: self._epoch(e, seed_tensor))
        if self.shuffle_buffer:
            # One buffer over the whole stream, its seed a Python number: an iterator over it can
            # be checkpointed (a per-epoch seed tensor makes the shuffle unserialisable).
            records = records.shuffle(self.shuffle_buffer, seed=seed, reshuffle_each_iteration=False)
        dataset = records.map(self.parse).batch(batch_size)
        return dataset.skip(start_step) if start_step else dataset

    def eval_dataset(self, batch_size: int) -> tf.data.Dataset:
        return tf.data.TFRecordDataset(self.files).map(self.parse).batch(batch_size)

    def first_batch(self, batch_size: int):
        return next(iter(self.eval_dataset(batch_size)))

    def fingerprint(self) -> dict:
        return {"files": [[f, os.stat(f).st_size, os.stat(f).st_mtime_ns] for f in self.files]}


class FunctionSource:
    """`fn(start_step)` returns a dataset of the batches from `start_step` on."""

    positional = True
    sized = False

    def __init__(self, fn: Callable[[int], tf.data.Dataset], *, steps_per_epoch: int | None = None):
        self.fn, self._steps_per_epoch = fn, steps_per_epoch

    def steps_per_epoch(self, batch_size: int) -> int | None:
        return self._steps_per_epoch

    def position(self, batch_size: int):
        return None

    def train_dataset(self, *, batch_size: int, seed: int, num_epochs: int, start_step: int = 0,
                      replicas=None) -> tf.data.Dataset:
        dataset = self.fn(start_step)
        if not isinstance(dataset, tf.data.Dataset):
            raise ConfigError(f"the train data function returned {type(dataset).__name__}; it must "
                              f"return a tf.data.Dataset of batches")
        return dataset

    def eval_dataset(self, batch_size: int) -> tf.data.Dataset:
        return self.fn(0)

    def first_batch(self, batch_size: int):
        return next(iter(self.fn(0)))

    def fingerprint(self) -> dict:
        return {}
