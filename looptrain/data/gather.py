"""How a random-access source reads a batch of examples by index: the one thing the position-from-step
pipeline (`pipeline`) needs from it.

- `TensorGather`: arrays held in memory as tensors; `tf.gather` inside the graph (the fast path).
- `NumpyGather`: arrays that stay on disk (`np.load(..., mmap_mode="r")`, larger than memory);
  rows read by numpy in index order (the disk's order), then put back in the stream's order.
- `RecordGather`: ArrayRecord files (the random-access format TensorFlow Datasets writes); the
  records read by index, parsed inside the graph by the source's `parse` function.
- `FileGather`: one file per example (e.g. images), each read and decoded inside the graph.

The host-side readers (numpy, ArrayRecord) run in `tf.numpy_function`, which holds Python's lock,
so the pipeline calls them once per chunk of many batches and on two chunks at a time; their
memory is one chunk, not the data set.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import tensorflow as tf

from looptrain.engine.autograph import user_call


class TensorGather:
    """Rows of a structure of in-memory arrays, converted to tensors once."""

    host = False

    def __init__(self, arrays):
        self.structure = tf.nest.map_structure(tf.convert_to_tensor, arrays)
        self.num_examples = int(tf.nest.flatten(self.structure)[0].shape[0])

    @tf.autograph.experimental.do_not_convert  # graph code as written: a faster start
    def __call__(self, indices):
        return tf.nest.map_structure(lambda t: tf.gather(t, indices), self.structure)


class NumpyGather:
    """Rows of a structure of numpy arrays that stay on disk (memory-mapped) or in memory."""

    host = True

    def __init__(self, arrays):
        self.arrays = arrays
        self.leaves = tf.nest.flatten(arrays)
        self.num_examples = len(self.leaves[0])

    def _read(self, indices: np.ndarray):
        order = np.argsort(indices, kind="stable")  # ascending offsets: the disk reads in order
        out = []
        for leaf in self.leaves:
            rows = np.empty((len(indices), *leaf.shape[1:]), leaf.dtype)
            rows[order] = leaf[indices[order]]
            out.append(rows)
        return out

    @tf.autograph.experimental.do_not_convert  # graph code as written: a faster start
    def __call__(self, indices):
        leaves = tf.numpy_function(self._read, [indices], [tf.as_dtype(a.dtype) for a in self.leaves],
                                   stateful=False)
        for leaf, array in zip(leaves, self.leaves):
            leaf.set_shape([None, *array.shape[1:]])
        return tf.nest.pack_sequence_as(self.arrays, leaves)


class RecordGather:
    """Records of ArrayRecord files by index, parsed in the graph by `parse(records [k]) -> batch`."""

    host = True

    def __init__(self, paths: list[str], parse: Callable):
        from array_record.python.array_record_data_source import ArrayRecordDataSource

        self.paths, self.parse = [str(p) for p in paths], parse
        self.data = ArrayRecordDataSource(self.paths)
        self.num_examples = len(self.data)

    def _read(self, indices: np.ndarray) -> np.ndarray:
        return np.array(self.data.__getitems__([int(i) for i in indices]), dtype=object)

    @tf.autograph.experimental.do_not_convert  # graph code as written: a faster start
    def __call__(self, indices):
        records = tf.numpy_function(self._read, [indices], tf.string, stateful=False)
        records.set_shape([None])
        return user_call(self.parse, records)


class FileGather:
    """One file per example: `paths[i]` read and decoded by `decode(contents) -> example` inside
    the graph; `labels` (optional) go alongside as `(example, label)`."""

    host = False

    def __init__(self, paths: list[str], decode: Callable, labels=None):
        self.paths = tf.constant([str(p) for p in paths])
        self.decode, self.labels = decode, None if labels is None else tf.constant(labels)
        self.num_examples = len(paths)
        self._spec = tf.type_spec_from_value(decode(tf.io.read_file(self.paths[0])))

    @tf.autograph.experimental.do_not_convert  # graph code as written: a faster start
    def __call__(self, indices):
        examples = tf.map_fn(lambda path: user_call(self.decode, tf.io.read_file(path)),
                             tf.gather(self.paths, indices), fn_output_signature=self._spec)
        if self.labels is None:
            return examples
        return examples, tf.gather(self.labels, indices)
