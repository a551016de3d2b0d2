"""TensorBoard writing: one `tf.summary` writer per split under `RUN/logs/<split>`.

The loop hands over flat metric dicts keyed `split/name` (`train/loss`, `val/accuracy`); the split
prefix picks the writer and the rest is the tag (Keras' layout: `loss` in `logs/train` and in
`logs/val`), so TensorBoard draws a run's training and validation curves of one metric in one
chart, one colour per run and split. The loop never touches `tf.summary` itself. Text, images and
histograms follow the same `split/name` convention.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from looptrain.engine.writers import MetricWriter


class SummaryWriter(MetricWriter):
    """Writes `split/name` scalars into `logdir/<split>` event files (the TensorBoard
    `MetricWriter`; also inside compiled calls, see `record`)."""

    def __init__(self, logdir: Path):
        self.logdir = Path(logdir)
        self._writers: dict[str, tf.summary.SummaryWriter] = {}
        self._compiled: dict[tuple, tf.types.experimental.GenericFunction] = {}

    def _writer(self, split: str) -> tf.summary.SummaryWriter:
        if split not in self._writers:
            self._writers[split] = tf.summary.create_file_writer(str(self.logdir / split))
        return self._writers[split]

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """Writes each `split/name: value` at `step`."""
        self._write("scalar", step, values)

    def write_scalars(self, step: int, values: dict[str, float]) -> None:
        self.scalars(step, values)

    def rewind(self, step: int) -> int:
        self.close()
        return drop_events_after(self.logdir, step)

    def _write(self, kind: str, step: int, values: dict) -> None:
        """Writes all `values` of one kind in one compiled call.

        Eager `tf.summary` calls cost ~0.3 ms each; a fast model logging a handful of scalars (or a
        dozen histograms) every 100 steps would lose a tenth of its speed to them. Each distinct set
        of tags is traced once.
        """
        signature = (kind, tuple(values))
        if signature not in self._compiled:
            keys = tuple(values)
            self._compiled[signature] = tf.function(
                lambda step, tensors: self.record(kind, step, dict(zip(keys, tensors))),
                autograph=False)
        # Tensors, not Python numbers: a Python float argument would retrace on every value.
        self._compiled[signature](tf.constant(step, tf.int64),
                                  [tf.convert_to_tensor(v, tf.float32) for v in values.values()])

    def record(self, kind: str, step, values: dict) -> None:
        """Writes `split/name: tensor` summaries of `kind` ("scalar" or "histogram") at `step`
        inside the tf.function being traced: the writes become part of the caller's compiled call
        (the training loop's, see `train.call`)."""
        summary = {"scalar": tf.summary.scalar, "histogram": tf.summary.histogram}[kind]
        by_split: dict[str, dict] = {}
        for key, value in values.items():
            by_split.setdefault(key.partition("/")[0], {})[key] = value
        # Tags take the enclosing name scope (a tf.cond branch's is "cond/"): start at the top.
        with tf.name_scope(""):
            for split, items in by_split.items():
                with self._writer(split).as_default():
                    for key, value in items.items():
                        summary(tag_of(key), value, step=step)

    def text(self, step: int, key: str, markdown: str) -> None:
        """Writes Markdown text (TensorBoard's text dashboard) of `key` (`split/name`)."""
        with self._writer(key.partition("/")[0]).as_default():
            tf.summary.text(tag_of(key), markdown, step=step)

    def image(self, step: int, key: str, image: np.ndarray) -> None:
        """Writes one uint8 `[height, width, 3]` image of `key` (`split/name`)."""
        with self._writer(key.partition("/")[0]).as_default():
            tf.summary.image(tag_of(key), image[np.newaxis], step=step)

    def histograms(self, step: int, values: dict[str, np.ndarray]) -> None:
        """Writes a histogram of each `split/name: array` at `step`."""
        self._write("histogram", step, values)

    def as_default(self, split: str):
        """A context in which `logdir/<split>` is the default `tf.summary` writer.

        For summaries written with `tf.summary` or TensorBoard plugin APIs directly (the model
        graph, hparams); `split=""` is `logdir` itself.
        """
        return self._writer(split).as_default()

    def flush(self) -> None:
        for writer in self._writers.values():
            writer.flush()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


def tag_of(key: str) -> str:
    """The TensorBoard tag of a `split/name` key: `name` (the split is the event file's directory)."""
    split, _, name = key.partition("/")
    return name or split


def drop_events_after(logdir: Path, step: int) -> int:
    """Removes the events of steps after `step` from the event files under `logdir`.

    A run resumed from the checkpoint at `step` re-runs the steps after it; their old events (from the
    session that was killed) would otherwise show up twice in TensorBoard, which does not reliably
    purge them itself. Each affected file is rewritten next to itself and swapped in with a rename.

    Returns:
        The number of events removed.
    """
    removed = 0
    for path in sorted(Path(logdir).rglob("events.out.tfevents.*")):
        events = [tf.compat.v1.Event.FromString(record.numpy())
                  for record in tf.data.TFRecordDataset(str(path))]
        kept = [e for e in events if not (e.step > step and e.HasField("summary"))]
        if len(kept) == len(events):
            continue
        tmp = path.with_name(f".{path.name}.tmp")
        with tf.io.TFRecordWriter(str(tmp)) as writer:
            for event in kept:
                writer.write(event.SerializeToString())
        os.replace(tmp, path)
        removed += len(events) - len(kept)
    return removed
