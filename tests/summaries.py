"""Summaries read back from TensorBoard event files, for the tests of several packages."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf


def read_scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    """All scalar summaries under `logdir`, read back from the event files, keyed
    `<subdirectory>/<tag>` (`val/accuracy`: the tag `accuracy` in `logdir/val`)."""
    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(logdir.rglob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name != "scalars":
                    continue  # config text, hparams, histograms
                scalars.setdefault(f"{path.parent.name}/{value.tag}", []).append(
                    (event.step, float(tf.make_ndarray(value.tensor))))
    return scalars


def tensorboard_scalars(logdir) -> set[tuple[str, int, float]]:
    """(`<subdirectory>/<tag>`, step, value) of every scalar in the event files under `logdir`
    (TensorBoard's tag is the name, the split its directory; metrics.jsonl keys hold both)."""
    out = set()
    for path in sorted(logdir.rglob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    out.add((f"{path.parent.name}/{value.tag}", event.step,
                             float(tf.make_ndarray(value.tensor))))
    return out
