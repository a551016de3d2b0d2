"""Data sources: what `lt.fit(train=..., val=...)` accepts, and what each guarantees on resume.

- `ArraySource` (numpy arrays, memory-mapped ones too; one array or a tuple/dict of them): the
  stream is a pure function of (seed, step) (`pipeline`), so a resumed run continues at exactly
  the next batch, mid-epoch, under every strategy; the checkpoint holds two integers.
- `DatasetSource` (a `tf.data.Dataset` that yields batches, as Keras `fit` takes it): on one device
  the iterator's state goes into the checkpoint (exact, for as many bytes as its buffers hold);
  under a strategy, where iterators cannot be checkpointed, a resumed run skips the batches
  already read (exact when the dataset is deterministic, at the cost of reading them again).
- `FunctionSource` (a function from the start step to a dataset of batches from that step on):
  the function decides; exact when it is pure.

`as_source` turns what the user passed into one of these.
"""

from __future__ import annotations

import hashlib
from typing import Callable

import numpy as np
import tensorflow as tf

from looptrain.data import pipeline
from looptrain.errors import ConfigError, DataError, RunDirError


class DataPosition(tf.Module):
    """Where a positional stream stands: the epoch and the next batch within it.

    Recorded with every checkpoint, so the checkpoint says where training is in the data, and
    checked on restore against the step and the current data size.
    """

    def __init__(self, steps_per_epoch: int):
        super().__init__(name="data_position")
        self.steps_per_epoch = steps_per_epoch
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.batch = tf.Variable(0, dtype=tf.int64, trainable=False)

    def record(self, step: int) -> None:
        epoch, batch = divmod(step, self.steps_per_epoch)
        self.epoch.assign(epoch)
        self.batch.assign(batch)

    def check(self, step: int) -> None:
        """Raises RunDirError if the recorded position does not follow from `step`."""
        recorded = (int(self.epoch.numpy()), int(self.batch.numpy()))
        if recorded != divmod(step, self.steps_per_epoch):
            raise RunDirError(
                f"checkpoint at step {step} is at epoch {recorded[0]} batch {recorded[1]}, but the "
                f"data now has {self.steps_per_epoch} batches per epoch: the training data changed")


class ArraySource:
    """Arrays batched by looptrain: exact resume at any step under any strategy.

    Args:
        arrays: one array or a tuple/dict of arrays with the same first dimension.
        lengths, bucket_window: length bucketing for padded text (see `pipeline`).
    """

    positional = True
    sized = True  # distributed elements carry the global batch size

    def __init__(self, arrays, *, lengths: np.ndarray | None = None, bucket_window: int = 0):
        leaves = tf.nest.flatten(arrays)
        if not leaves or any(not hasattr(a, "shape") or not a.shape for a in leaves):
            raise DataError("array data must be numpy arrays with a first (example) axis")
        counts = {len(a) for a in leaves}
        if len(counts) != 1:
            raise DataError(f"the arrays hold different numbers of examples: {sorted(counts)}")
        self.num_examples = counts.pop()
        if not self.num_examples:
            raise DataError("the array data holds no examples")
        self.arrays, self.lengths, self.bucket_window = arrays, lengths, bucket_window
        self._tensors = None

    @property
    def tensors(self):
        """The arrays as tensors, converted once (a dataset per start step shares them)."""
        if self._tensors is None:
            self._tensors = tf.nest.map_structure(tf.convert_to_tensor, self.arrays)
        return self._tensors

    def steps_per_epoch(self, batch_size: int) -> int:
        return pipeline.steps_per_epoch(self.num_examples, batch_size)

    def position(self, batch_size: int) -> DataPosition:
        return DataPosition(self.steps_per_epoch(batch_size))

    def train_dataset(self, *, batch_size: int, seed: int, num_epochs: int, start_step: int = 0,
                      replicas=None) -> tf.data.Dataset:
        return pipeline.make_train_dataset(
            self.tensors, batch_size=batch_size, seed=seed, num_epochs=num_epochs,
            start_step=start_step, lengths=self.lengths, bucket_window=self.bucket_window,
            replicas=replicas)

    def eval_dataset(self, batch_size: int) -> tf.data.Dataset:
        return pipeline.make_eval_dataset(
            self.tensors, batch_size=batch_size,
            lengths=self.lengths if self.bucket_window else None)

    def first_batch(self, batch_size: int):
        """The first `batch_size` examples in file order (the histogram probe's fixed batch)."""
        return tf.nest.map_structure(lambda a: tf.convert_to_tensor(a[:batch_size]), self.arrays)

    def fingerprint(self) -> dict:
        """Example count and a SHA-256 of the arrays: a resume on other data is refused."""
        digest = hashlib.sha256()
        for leaf in tf.nest.flatten(self.arrays):
            array = np.asarray(leaf)
            digest.update(f"{array.dtype}{array.shape}".encode())
            for start in range(0, len(array), 65536):  # bounded memory for memory-mapped arrays
                digest.update(np.ascontiguousarray(array[start:start + 65536]).tobytes())
        return {"num_examples": self.num_examples, "sha256": digest.hexdigest()}


class DatasetSource:
    """A `tf.data.Dataset` of batches, taken as it is (an epoch is one pass over it)."""

    positional = False
    sized = False

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


def as_source(data, *, what: str = "train"):
    """A data source for `data`: a source as it is, a `tf.data.Dataset`, a function of the start
    step, or arrays (one numpy array or a tuple/dict of them).

    Raises:
        ConfigError: `data` is none of these.
    """
    if data is None:
        return None
    if isinstance(data, (ArraySource, DatasetSource, FunctionSource)) or hasattr(data, "train_dataset"):
        return data
    if isinstance(data, tf.data.Dataset):
        return DatasetSource(data)
    if callable(data):
        return FunctionSource(data)
    leaves = tf.nest.flatten(data)
    if leaves and all(isinstance(a, np.ndarray) for a in leaves):
        return ArraySource(data)
    raise ConfigError(f"{what} data must be numpy arrays (one, or a tuple/dict of them), a "
                      f"tf.data.Dataset of batches, or a function of the start step; got "
                      f"{type(data).__name__}")
