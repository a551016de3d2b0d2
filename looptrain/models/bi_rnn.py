"""BiRNN: bidirectional LSTM/GRU text classifier with padding masked.

embedding (`mask_zero`) -> optional SpatialDropout1D (drops whole embedding channels for the whole
text, the usual dropout for embeddings) -> `num_layers` bidirectional recurrent layers of
`hidden_dim` units per direction, dropout between them -> max over the text's time steps (padding
excluded) of the last layer's outputs -> dense `hidden_dim` -> dropout -> ReLU -> dense logits.
Pooling over time rather than taking the final states lets a keyword anywhere in a long text reach
the classifier directly: on the embedded corpus it reached 0.56 validation accuracy after 300 steps
where the final states had 0.21.

The embedding's own mask (`compute_mask`) is passed explicitly to every `Bidirectional` layer.
Keras 3 also attaches it to the embedding's output and mask-aware layers (dropout, the RNNs) carry
it on, but any plain op in between (an activation, a reshape) drops it silently; without the mask
the backward direction would start its pass on the trailing padding. A test checks that the output
does not depend on how much padding follows the text.
"""

from __future__ import annotations

import keras

from looptrain.models.layers import kernel_regularizer, masked_max_over_time
from looptrain.models.registry import register

_CELLS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}


@register("birnn")
class BiRNN(keras.Model):
    """Stacked bidirectional recurrent classifier returning logits `[batch, num_classes]`."""

    CONFIG_FIELDS = ("embedding_dim", "hidden_dim", "dropout", "rnn_cell", "num_layers",
                     "spatial_dropout", "l1", "l2")

    def __init__(self, *, vocab_size: int, num_classes: int, embedding_dim: int, hidden_dim: int,
                 dropout: float, rnn_cell: str, num_layers: int, spatial_dropout: float, l1: float,
                 l2: float, **kwargs):
        super().__init__(**kwargs)
        regularizer = kernel_regularizer(l1, l2)
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, mask_zero=True,
                                                name="embedding")
        self.spatial_dropout = (keras.layers.SpatialDropout1D(spatial_dropout, name="spatial_dropout")
                                if spatial_dropout > 0 else None)
        self.num_layers = num_layers
        for i in range(num_layers):  # one attribute per layer (see text_rnn.py)
            cell = _CELLS[rnn_cell](hidden_dim, return_sequences=True,
                                    kernel_regularizer=regularizer, recurrent_regularizer=regularizer,
                                    name=f"{rnn_cell}_{i}")
            setattr(self, f"rnn_{i}", keras.layers.Bidirectional(cell, name=f"bi_{rnn_cell}_{i}"))
            if i < num_layers - 1:
                setattr(self, f"dropout_{i}", keras.layers.Dropout(dropout, name=f"dropout_{i}"))
        self.hidden = keras.layers.Dense(hidden_dim, kernel_regularizer=regularizer, name="fc")
        self.dropout = keras.layers.Dropout(dropout, name="dropout")
        self.classifier = keras.layers.Dense(num_classes, kernel_regularizer=regularizer, name="logits")

    def call(self, token_ids, training=False):
        mask = self.embedding.compute_mask(token_ids)
        h = self.embedding(token_ids)
        if self.spatial_dropout is not None:
            h = self.spatial_dropout(h, training=training)
        for i in range(self.num_layers):
            h = getattr(self, f"rnn_{i}")(h, mask=mask, training=training)
            if i < self.num_layers - 1:
                h = getattr(self, f"dropout_{i}")(h, training=training)
        h = masked_max_over_time(h, mask)
        h = self.dropout(self.hidden(h), training=training)
        return self.classifier(keras.ops.relu(h))
