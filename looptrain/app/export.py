"""Export a run as a self-contained SavedModel that classifies raw UTF-8 strings.

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

from pathlib import Path

import keras
import tensorflow as tf

from looptrain.errors import UserError
from looptrain.app.trained import load_trained


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

    Raises:
        UserError: `out_dir` exists and is not empty, or the run/checkpoint is missing or damaged.
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out {out} already exists and is not empty; choose another directory or "
                        f"delete it")
    trained = load_trained(run_dir, checkpoint=checkpoint)
    module = TextClassifier(trained.model, trained.vocab, trained.labels,
                            trained.config.data.seq_length)
    tf.saved_model.save(module, str(out), signatures={"serving_default": module.serve})
    return out
