"""Data sources: what `lt.fit(train=..., val=...)` accepts, and what each guarantees on resume.

Random access (`IndexedSource`): the stream is a pure function of (seed, step) (`pipeline`), so a
resumed run continues at exactly the next batch, mid-epoch, under every strategy, and the
checkpoint holds two integers:
- `ArraySource`: numpy arrays, one or a tuple/dict of them; in memory, or memory-mapped from
  `.npy` files and read from disk a chunk of batches at a time (larger than memory);
- `RecordSource`: ArrayRecord files, records parsed in the graph;
- `FileSource`: one file per example (e.g. images), decoded in the graph.
Each takes a `transform(batch, seeds)` for augmentation that stays exact.

Sequential (`streams`: `DatasetSource`, `TFRecordSource`, `FunctionSource`): a TFRecord stream's
iterator in the checkpoint on one device; otherwise the stream rebuilt and skipped to the position.

`as_source` turns what the user passed into one of these.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import tensorflow as tf

from looptrain.data import pipeline
from looptrain.data.gather import FileGather, NumpyGather, RecordGather, TensorGather
from looptrain.data.streams import DatasetSource, FunctionSource, TFRecordSource
from looptrain.errors import ConfigError, DataError, RunDirError

__all__ = ["ArraySource", "DataPosition", "DatasetSource", "FileSource", "FunctionSource",
           "IndexedSource", "RecordSource", "TFRecordSource", "as_source"]


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


class IndexedSource:
    """Examples read by index (`gather`), batched by looptrain: exact resume at any step under any
    strategy, the data position two integers in the checkpoint.

    Args:
        gather: the reader of examples by index (`data.gather`).
        lengths, bucket_window: length bucketing for padded text (see `pipeline`).
        transform: `transform(batch, seeds) -> batch`: training-time augmentation that stays
            exact, `seeds` one per example from (seed, epoch, example index) for stateless
            random ops (see `pipeline.make_train_dataset`).
    """

    positional = True
    sized = True  # elements can carry the global batch size (`with_sizes`, and distributed)

    def __init__(self, gather, *, lengths: np.ndarray | None = None, bucket_window: int = 0,
                 transform=None):
        self.gather, self.num_examples = gather, gather.num_examples
        if not self.num_examples:
            raise DataError("the data holds no examples")
        self.lengths, self.bucket_window, self.transform = lengths, bucket_window, transform

    def steps_per_epoch(self, batch_size: int) -> int:
        return pipeline.steps_per_epoch(self.num_examples, batch_size)

    def position(self, batch_size: int) -> DataPosition:
        return DataPosition(self.steps_per_epoch(batch_size))

    def train_dataset(self, *, batch_size: int, seed: int, num_epochs: int, start_step: int = 0,
                      replicas=None, with_sizes: bool = False) -> tf.data.Dataset:
        return pipeline.make_train_dataset(
            self.gather, batch_size=batch_size, seed=seed, num_epochs=num_epochs,
            start_step=start_step, lengths=self.lengths, bucket_window=self.bucket_window,
            replicas=replicas, transform=self.transform, with_sizes=with_sizes)

    def eval_dataset(self, batch_size: int) -> tf.data.Dataset:
        return pipeline.make_eval_dataset(
            self.gather, batch_size=batch_size, lengths=self.lengths if self.bucket_window else None)

    def first_batch(self, batch_size: int):
        """The first `batch_size` examples in file order (the histogram probe's fixed batch)."""
        return self.gather(tf.range(min(batch_size, self.num_examples), dtype=tf.int64))

    def fingerprint(self) -> dict:
        return {"num_examples": self.num_examples}


class ArraySource(IndexedSource):
    """Numpy arrays (one, or a tuple/dict of them with the same first dimension). Arrays in
    memory become tensors once; memory-mapped ones (`np.load(path, mmap_mode="r")`, larger than
    memory) stay on disk and are read a chunk of batches at a time."""

    def __init__(self, arrays, *, lengths: np.ndarray | None = None, bucket_window: int = 0,
                 transform=None):
        leaves = tf.nest.flatten(arrays)
        if not leaves or any(not hasattr(a, "shape") or not a.shape for a in leaves):
            raise DataError("array data must be numpy arrays with a first (example) axis")
        counts = {len(a) for a in leaves}
        if len(counts) != 1:
            raise DataError(f"the arrays hold different numbers of examples: {sorted(counts)}")
        self.arrays = arrays
        on_disk = any(isinstance(a, np.memmap) for a in leaves)
        super().__init__(NumpyGather(arrays) if on_disk else TensorGather(arrays), lengths=lengths,
                         bucket_window=bucket_window, transform=transform)

    def first_batch(self, batch_size: int):
        return tf.nest.map_structure(lambda a: tf.convert_to_tensor(a[:batch_size]), self.arrays)

    def fingerprint(self) -> dict:
        """Example count and a SHA-256 of in-memory arrays, or the files (name, size, modification
        time) of memory-mapped ones (hashing those would read them all at every start)."""
        digest, files = hashlib.sha256(), []
        for leaf in tf.nest.flatten(self.arrays):
            digest.update(f"{leaf.dtype}{leaf.shape}".encode())
            if isinstance(leaf, np.memmap):
                stat = os.stat(leaf.filename)
                files.append([str(leaf.filename), stat.st_size, stat.st_mtime_ns])
                continue
            for start in range(0, len(leaf), 65536):
                digest.update(np.ascontiguousarray(leaf[start:start + 65536]).tobytes())
        return {"num_examples": self.num_examples, "sha256": digest.hexdigest(),
                **({"files": files} if files else {})}


class RecordSource(IndexedSource):
    """ArrayRecord files (`array_record` package; what TensorFlow Datasets writes): records read by
    index, `parse(records) -> batch` turning a `tf.string [k]` batch of records into examples."""

    def __init__(self, paths, parse, *, transform=None):
        self.paths = [os.fspath(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
        missing = [p for p in self.paths if not os.path.isfile(p)]
        if missing:
            raise DataError(f"no ArrayRecord file {missing[0]}")
        super().__init__(RecordGather(self.paths, parse), transform=transform)

    def fingerprint(self) -> dict:
        return {"num_examples": self.num_examples, "files": _file_stamps(self.paths)}


class FileSource(IndexedSource):
    """One file per example: `decode(contents) -> example` (e.g. `tf.io.decode_png`), with
    optional `labels` beside them (batches are then `(examples, labels)`)."""

    def __init__(self, paths, decode, *, labels=None, transform=None):
        self.paths = [os.fspath(p) for p in paths]
        if labels is not None and len(labels) != len(self.paths):
            raise DataError(f"{len(self.paths)} files but {len(labels)} labels")
        super().__init__(FileGather(self.paths, decode, labels), transform=transform)

    def fingerprint(self) -> dict:
        return {"num_examples": self.num_examples, "files": _file_stamps(self.paths)}


def _file_stamps(paths) -> str:
    """A digest of the files' names, sizes and modification times."""
    digest = hashlib.sha256()
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def as_source(data, *, what: str = "train"):
    """A data source for `data`: a source as it is, a `tf.data.Dataset`, a function of the start
    step, or arrays (one numpy array or a tuple/dict of them).

    Raises:
        ConfigError: `data` is none of these.
    """
    if data is None:
        return None
    if hasattr(data, "train_dataset"):
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
