"""tf.data input pipelines over encoded arrays.

Training order is a pure function of `(seed, epoch)`: every epoch is a fresh pseudo-random permutation
computed by `tf.random.experimental.index_shuffle`, so the stream position is fully determined by the
global step. A resumed run rebuilds the iterator at exactly the next batch (`start_step`) instead of
storing a shuffle buffer in the checkpoint: checkpoints stay the same size whatever the data size, and
the same mechanism works where iterators cannot be saved (distributed input).

The encoded arrays are held once in memory (the cache) and batches are sliced from chunks gathered
64 batches at a time, which keeps the pipeline far ahead of the model (`make bench`: ~500k
examples/s for the reference TextCNN's ~500, ~450k for the tiny MLP's ~120k; gathering every
batch on its own took 1.7x as long per batch). tf.data's autotuner is therefore switched off in favour
of fixed parallelism and prefetch depth: with it on, destroying an iterator at the end of a run
(or of every in-graph evaluation pass) intermittently blocked for seconds, up to ~20 s after ten
epochs, while its background thread finished sleeping.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import tensorflow as tf

from looptrain.data.gather import TensorGather
from looptrain.engine import determinism
from looptrain.engine.autograph import user_call

_PARALLEL_CALLS = 2  # bucketed batches gathered concurrently
_CHUNK_BATCHES = 64  # batches gathered at once (see `_chunked_batches`)
plain = tf.autograph.experimental.do_not_convert  # graph code as written (see make_train_dataset)
_PREFETCH_BATCHES = 2  # batches ready ahead of the step


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    """Batches per epoch; the last batch of an epoch may be smaller (nothing is dropped)."""
    return math.ceil(num_examples / batch_size)


def make_train_dataset(data, *, batch_size: int, seed: int, num_epochs: int,
                       start_step: int = 0, lengths: np.ndarray | None = None,
                       bucket_window: int = 0, replicas=None,
                       transform: Callable | None = None, with_sizes: bool = False) -> tf.data.Dataset:
    """Shuffled batches of `data` for `num_epochs` epochs, starting at global step `start_step`.

    Args:
        data: one array or a tuple/dict (any `tf.nest` structure) of arrays with the same
            number of examples along their first axis, e.g. `(x, y)` (held in memory as
            tensors); or a reader of examples by index (`gather`: memory-mapped arrays,
            ArrayRecord files, one file per example). Batches have its structure.
        batch_size: examples per batch; the last batch of each epoch holds the remainder.
        seed: shuffling seed; epoch `e` uses the permutation of `(seed, e)`.
        num_epochs: total epochs of the run (not the epochs left).
        start_step: batches already consumed; the stream resumes exactly after them.
        lengths: with `bucket_window`, each example's text length: length bucketing for padded
            sequences (see `_bucketed_batches`): batches of similar lengths, and the first array
            of the structure trimmed to the batch's longest text.
        bucket_window: 0 (off), or the window of batches sorted by length.
        replicas: None, or the `distribute.Replicas` this pipeline feeds: each global batch then
            becomes `replicas.local` elements `(batch_slice, batch_size_of_the_global_batch)`,
            the slices of replicas `first, first + 1, ...` of a cut into `replicas.total` nearly
            equal parts (a partial last batch too; a replica may get an empty slice).
        with_sizes: (without `replicas`) elements `(batch, batch_size_of_it)`: the training step
            then counts its examples without shape ops of its own, which cost a fast model
            several per cent (docs/performance-bench.md).
        transform: `transform(batch, seeds) -> batch`, random augmentation kept exact: `seeds`
            is int64 `[batch, 2]`, one seed per example, a function of (seed, epoch, example
            index), for stateless random ops (`tf.image.stateless_random_crop`, ...).

    Returns:
        A dataset of batches whose element spec has an unknown batch dimension (and an unknown
        length when bucketing), so a step function traced on it is traced once for full and
        partial batches alike.
    """
    gather = data if callable(data) and hasattr(data, "num_examples") else TensorGather(data)
    n = gather.num_examples
    per_epoch = steps_per_epoch(n, batch_size)
    start_epoch, start_batch = divmod(start_step, per_epoch)
    seed = tf.constant(seed, tf.int64)
    length_of = tf.constant(lengths) if bucket_window else None

    def epoch_plan(epoch):
        # Positions already consumed in the epoch we resume in are skipped arithmetically (O(1)).
        first = tf.where(epoch == start_epoch, tf.constant(start_batch, tf.int64), 0)
        if bucket_window:  # the indices of each batch
            permutation = tf.random.experimental.index_shuffle(
                tf.range(n, dtype=tf.int64), tf.stack([seed, epoch]), n - 1)
            batches = _bucketed_batches(permutation, length_of, batch_size, bucket_window,
                                        tf.stack([seed, -1 - epoch]), first)  # a seed no epoch uses
        else:  # the indices of `_CHUNK_BATCHES` batches at a time
            batches = tf.data.Dataset.range(first, per_epoch, _CHUNK_BATCHES).map(
                plain(lambda b: _chunk_indices(b, n, batch_size, seed, epoch)))
        return batches.map(plain(lambda indices: (indices, epoch)))

    # The pipeline's own functions (and readers, `data.gather`) are graph code as written:
    # AutoGraph converts only the user's (an augmentation, a parse), through `user_call`
    # (engine/autograph.py: a faster start).
    dataset = tf.data.Dataset.range(start_epoch, num_epochs).flat_map(plain(epoch_plan))
    parallel = _parallel(gather.host or bucket_window)
    dataset = dataset.map(plain(lambda indices, epoch: (gather(indices), indices, epoch)),
                          **parallel)
    if bucket_window:
        dataset = dataset.map(plain(lambda batch, indices, epoch: (
            _trimmed(batch, tf.gather(length_of, indices)), indices, epoch,
            tf.size(indices, out_type=tf.int64))))
    else:
        dataset = dataset.flat_map(plain(lambda batch, indices, epoch: _batches_of_chunk(
            batch, indices, epoch, batch_size)))
    if transform is not None:
        dataset = dataset.map(plain(lambda batch, indices, epoch, size: (
            user_call(transform, batch, example_seeds(seed, epoch, indices)), indices, epoch,
            size)))
    if with_sizes and replicas is None:
        dataset = dataset.map(plain(lambda batch, indices, epoch, size: (batch, size)))
    else:
        dataset = dataset.map(plain(lambda batch, indices, epoch, size: batch))
    if replicas is not None:
        structure = dataset.element_spec  # a tuple batch arrives unpacked: put it back together
        dataset = dataset.flat_map(plain(lambda *batch: _replica_slices(
            tf.nest.pack_sequence_as(structure, tf.nest.flatten(batch)), replicas)))
    return _finish(dataset)


def _parallel(parallel: bool) -> dict:
    """`map` arguments: two calls at a time, in order, for readers worth it; else one.

    Under op determinism tf.data runs such a map one call at a time anyway (and its rewrite
    prints an error line about an attribute, at every start): then it asks for one call.
    """
    if not parallel or determinism.enabled():
        return {}
    return {"num_parallel_calls": _PARALLEL_CALLS, "deterministic": True}


def example_seeds(seed, epoch, indices) -> tf.Tensor:
    """One stateless-op seed `[2]` per example, a function of (seed, epoch, example index): the same
    augmentation of an example in its epoch, whether the run was resumed or not."""
    first = tf.fill(tf.shape(indices), seed * 1_000_003 + epoch)
    return tf.stack([first, tf.cast(indices, tf.int64)], axis=1)


def _chunk_indices(first_batch, n, batch_size, seed, epoch):
    """The example indices of batches `first_batch ...` (at most `_CHUNK_BATCHES` of them): their
    positions in the epoch's permutation of `(seed, epoch)`, computed per position (O(chunk), the
    whole permutation never materialised)."""
    start = first_batch * batch_size
    end = tf.minimum((first_batch + _CHUNK_BATCHES) * batch_size, n)
    return tf.random.experimental.index_shuffle(
        tf.range(start, end, dtype=tf.int64), tf.stack([seed, epoch]), n - 1)


def _batches_of_chunk(rows, indices, epoch, batch_size):
    """The batches of one gathered chunk: its whole batches as slices of one reshape (a per-batch
    gather costs each batch a pass through more dataset stages, about twice the pipeline's time),
    then the epoch's partial last batch, if it is in this chunk. Elements `(batch, indices,
    epoch, examples)`: the examples ride along as a sliced component (computing them in a later
    map took that map from a projection to a function call per batch, 3x the pipeline's time)."""
    size = tf.shape(indices, out_type=tf.int64)[0]
    full = size // batch_size

    def whole(t):
        t = t[:full * batch_size]
        return tf.reshape(t, tf.concat([[-1, batch_size], tf.shape(t)[1:]], axis=0))

    epochs = tf.fill([full], epoch)
    sizes = tf.fill([full], tf.constant(batch_size, tf.int64))
    batches = tf.data.Dataset.from_tensor_slices(
        (tf.nest.map_structure(whole, rows), whole(indices), epochs, sizes))
    tail = tf.data.Dataset.from_tensors(
        (tf.nest.map_structure(lambda t: t[full * batch_size:], rows), indices[full * batch_size:],
         epoch, size - full * batch_size)).take(tf.cast(size > full * batch_size, tf.int64))
    return batches.concatenate(tail)


def _replica_slices(batch, replicas):
    """This pipeline's replicas' slices of one global batch, with the global batch size."""
    size = tf.shape(tf.nest.flatten(batch)[0], out_type=tf.int64)[0]
    index = tf.range(replicas.first, replicas.first + replicas.local, dtype=tf.int64)
    starts, ends = index * size // replicas.total, (index + 1) * size // replicas.total
    return tf.data.Dataset.from_tensor_slices((starts, ends)).map(
        plain(lambda start, end: (tf.nest.map_structure(lambda t: t[start:end], batch), size)))


def text_lengths(x: np.ndarray) -> np.ndarray:
    """Text length of each post-padded row: one past its last non-zero id."""
    nonzero = x != 0
    return np.where(nonzero.any(axis=1), x.shape[1] - np.argmax(nonzero[:, ::-1], axis=1), 0).astype(
        np.int32)


def _bucketed_batches(permutation, lengths, batch_size, window, seed, first):
    """Length bucketing that keeps the stream a pure function of (seed, epoch, batch).

    The epoch's permutation is cut into windows of `window` batches; inside a window the examples
    are sorted by length and cut into batches, and the order of all the epoch's batches is then
    shuffled with a second seed. Windows are whole batches, so the batch count per epoch, the
    partial last batch and resuming at any step are exactly as without bucketing.
    """
    n = tf.size(permutation, out_type=tf.int64)
    window_of = tf.range(n) // (batch_size * window)
    key = window_of * (tf.cast(tf.reduce_max(lengths), tf.int64) + 1) + tf.cast(
        tf.gather(lengths, permutation), tf.int64)
    ordered = tf.gather(permutation, tf.argsort(key, stable=True))
    num_batches = (n + batch_size - 1) // batch_size
    batch_order = tf.random.experimental.index_shuffle(tf.range(num_batches), seed, num_batches - 1)
    return tf.data.Dataset.range(first, num_batches).map(
        plain(lambda b: ordered[batch_order[b] * batch_size:(batch_order[b] + 1) * batch_size]))


def _trimmed(batch, lengths):
    """`batch` with its first array cut after its longest text (at least one position, for
    all-padding texts)."""
    longest = tf.maximum(tf.reduce_max(lengths), 1)
    leaves = tf.nest.flatten(batch)
    return tf.nest.pack_sequence_as(batch, [leaves[0][:, :longest], *leaves[1:]])


def make_eval_dataset(data, *, batch_size: int,
                      lengths: np.ndarray | None = None) -> tf.data.Dataset:
    """All examples of `data` (as in `make_train_dataset`), batched and prefetched; cached after
    the first pass when held in memory.

    In file order; with `lengths`, sorted by text length and the first array of each batch
    trimmed to its longest text (for models whose cost grows with the length, such as RNNs:
    metrics do not depend on order).
    """
    gather = data if callable(data) and hasattr(data, "num_examples") else TensorGather(data)
    n = gather.num_examples
    order = np.argsort(lengths, kind="stable") if lengths is not None else np.arange(n)
    dataset = tf.data.Dataset.from_tensor_slices(order.astype(np.int64)).batch(batch_size)
    parallel = _parallel(gather.host)
    if lengths is not None:
        length_of = tf.constant(lengths)
        dataset = dataset.map(plain(lambda i: _trimmed(gather(i), tf.gather(length_of, i))),
                              **parallel)
    else:
        dataset = dataset.map(plain(lambda i: gather(i)), **parallel)
    # A split held in memory is cached after its first pass; one on disk is read again.
    return _finish(dataset if gather.host else dataset.cache())


def _finish(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Prefetches a fixed number of batches, with the autotuner off (see the module docstring)."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(_PREFETCH_BATCHES).with_options(options)
