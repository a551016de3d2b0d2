"""TextRNN: stacked LSTM/GRU over character embeddings, padding masked.

embedding (mask_zero) -> `num_layers` recurrent layers of `hidden_dim` units with dropout between them
-> the last layer's final state -> dense `hidden_dim` -> dropout -> ReLU -> dense logits.
The mask is passed explicitly to every recurrent layer: in a subclassed model nothing else guarantees
it arrives, and without it the trailing padding would change the final state.
Each layer is its own attribute rather than an element of a Python list: Keras would still find
list elements, but `tf.train.Checkpoint` does not, and their weights would silently not be saved.
"""

from __future__ import annotations

import keras

from looptrain.models.layers import kernel_regularizer
from looptrain.models.registry import register

_CELLS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}


@register("textrnn")
class TextRNN(keras.Model):
    """Stacked recurrent text classifier returning logits `[batch, num_classes]`."""

    CONFIG_FIELDS = ("embedding_dim", "hidden_dim", "dropout", "rnn_cell", "num_layers", "l1", "l2")
    # train.jit_compile = "auto" leaves XLA off: masked recurrences compile to a slow while loop on
    # CPU, and bucketed batches would recompile for every length.
    jit_compile_default = False

    def __init__(self, *, vocab_size: int, num_classes: int, embedding_dim: int, hidden_dim: int,
                 dropout: float, rnn_cell: str, num_layers: int, l1: float = 0.0, l2: float = 0.0,
                 **kwargs):
        super().__init__(**kwargs)
        regularizer = kernel_regularizer(l1, l2)
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, mask_zero=True,
                                                name="embedding")
        cell = _CELLS[rnn_cell]
        self.num_layers = num_layers
        for i in range(num_layers):
            setattr(self, f"rnn_{i}", cell(hidden_dim, return_sequences=i < num_layers - 1,
                                           kernel_regularizer=regularizer,
                                           recurrent_regularizer=regularizer, name=f"{rnn_cell}_{i}"))
            if i < num_layers - 1:
                setattr(self, f"dropout_{i}", keras.layers.Dropout(dropout, name=f"dropout_{i}"))
        self.hidden = keras.layers.Dense(hidden_dim, kernel_regularizer=regularizer, name="fc")
        self.dropout = keras.layers.Dropout(dropout, name="dropout")
        self.classifier = keras.layers.Dense(num_classes, kernel_regularizer=regularizer, name="logits")

    def call(self, token_ids, training=False):
        mask = keras.ops.not_equal(token_ids, 0)
        h = self.embedding(token_ids)
        for i in range(self.num_layers):
            h = getattr(self, f"rnn_{i}")(h, mask=mask, training=training)
            if i < self.num_layers - 1:
                h = getattr(self, f"dropout_{i}")(h, training=training)
        h = self.dropout(self.hidden(h), training=training)
        return self.classifier(keras.ops.relu(h))
