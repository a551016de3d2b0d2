"""Export a run as a self-contained SavedModel that classifies raw UTF-8 strings (a run of the
built-in classifier on text; runs of user tasks and on arrays: `export_task`), and its model as
`model.keras` beside it.

The `serving_default` signature takes `texts: tf.string [None]` and returns `label: tf.string
[None]` and `probabilities: tf.float32 [None, num_classes]` (in labels.txt order). The training
encoding happens inside the graph: split into Unicode characters, look each up in a table built
from the vocabulary (unknown -> -1), drop the unknown ones, keep the first `seq_length` and pad
with 0 at the end, exactly as `data.text.encode_texts` does. The vocabulary and labels are
constants in the SavedModel, so serving needs neither looptrain nor the run directory.

Strings are texts, not file lines: no line-ending or whitespace processing happens (a `\\r` is a
character like any other, dropped unless the vocabulary has it). Invalid UTF-8 bytes decode to
U+FFFD, which is dropped like any unknown character.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import keras
import tensorflow as tf

from looptrain.app.export_task import export_task_run, save_keras
from looptrain.app.trained import load_trained
from looptrain.errors import UserError
from looptrain.files import remove_stale_temps, temp_dir
from looptrain.run import RunDir


def make_vocab_table(vocab: list[str]) -> tf.lookup.StaticHashTable:
    """Character -> id for `vocab[1:]` (id 0 is padding); anything else looks up as -1."""
    keys = tf.constant(vocab[1:], tf.string)
    ids = tf.range(1, len(vocab), dtype=tf.int32)
    return tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, ids), default_value=-1)


def encode_strings(texts: tf.Tensor, table: tf.lookup.StaticHashTable, seq_length: int) -> tf.Tensor:
    """In-graph `encode_texts`: `tf.string [batch]` -> `int32 [batch, seq_length]` token ids."""
    characters = tf.strings.unicode_split(texts, "UTF-8")  # ragged [batch, (characters)]
    ids = tf.ragged.map_flat_values(table.lookup, characters)
    known = tf.ragged.boolean_mask(ids, ids >= 0)  # unknown characters are dropped, not padded
    return known[:, :seq_length].to_tensor(default_value=0, shape=[None, seq_length])


class TextClassifier(tf.Module):
    """The model with its vocabulary table and labels, serving raw strings."""

    def __init__(self, model: keras.Model, vocab: list[str], labels: list[str], seq_length: int):
        super().__init__(name="text_classifier")
        self.model = model
        self.table = make_vocab_table(vocab)
        self.labels = tf.constant(labels, tf.string)
        self.num_classes = len(labels)
        self.seq_length = seq_length

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
    def serve(self, texts):
        """`{"label": string [batch], "probabilities": float32 [batch, num_classes]}`."""
        ids = encode_strings(texts, self.table, self.seq_length)
        # TensorFlow's convolution mishandles an empty batch (it returns its input's shape), so an
        # empty request is answered without running the model.
        probabilities = tf.cond(
            tf.size(texts) > 0,
            lambda: tf.nn.softmax(self.model(ids, training=False), axis=-1),
            lambda: tf.zeros([0, self.num_classes], tf.float32))
        return {"label": tf.gather(self.labels, tf.argmax(probabilities, axis=-1)),
                "probabilities": probabilities}


def export_run(run_dir: str | Path, out_dir: str | Path, *, checkpoint: str = "best") -> Path:
    """Writes the SavedModel of a run's checkpoint to `out_dir`; returns its path.

    All or nothing: the SavedModel is written into a temporary sibling of `out_dir`, which is
    renamed to `out_dir` once complete, so a kill or a full disk never leaves half a model there
    (and a retry is not refused); what an interrupted export left is removed by the next one.

    Raises:
        UserError: `out_dir` exists and is not an empty directory, or the run/checkpoint is
            missing or damaged.
    """
    out = Path(out_dir)
    _check_out(out)
    run = RunDir(run_dir)
    run.check_exists()
    target = out.resolve() if out.is_symlink() else out  # a link to an empty directory: fill that
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target.parent, target.name)
    if run.load_config().task_path or run.load_vocab() is None:  # a user task, or arrays
        write = lambda tmp: export_task_run(run_dir, tmp, checkpoint=checkpoint)  # noqa: E731
    else:
        trained = load_trained(run_dir, checkpoint=checkpoint)  # before a directory is made
        write = lambda tmp: _export_text(trained, tmp)  # noqa: E731
    tmp = temp_dir(target.parent, target.name)
    try:
        write(tmp)
        try:
            os.rename(tmp, target)  # replaces an empty directory, never a non-empty one
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            _check_out(out)  # another export finished meanwhile: says so
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _export_text(trained, out: Path) -> None:
    """The raw-string SavedModel of a text run and its `model.keras` (token ids -> logits)."""
    module = TextClassifier(trained.model, trained.vocab, trained.labels,
                            trained.config.data.seq_length)
    tf.saved_model.save(module, str(out), signatures={"serving_default": module.serve})
    spec = tf.TensorSpec([None, trained.config.data.seq_length], tf.int32)
    save_keras(trained.model, out / "model.keras", spec, tf.zeros([1, *spec.shape[1:]], tf.int32))


def _check_out(out: Path) -> None:
    if out.is_symlink() and not out.exists():
        raise UserError(f"--out {out} is a symlink to a missing directory; fix the link or choose "
                        f"another directory")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a directory; choose another directory")
    if out.is_dir() and any(out.iterdir()):
        raise UserError(f"--out {out} already exists and is not empty; choose another directory or "
                        f"delete it")
