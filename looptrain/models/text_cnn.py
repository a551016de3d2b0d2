"""TextCNN: the reference character-level news classifier.

embedding -> Conv1D (no activation, as in the reference) -> global max pool over time ->
dense `hidden_dim` -> dropout -> ReLU -> dense to `num_classes` logits.
Parameters: V*E + (k*E*F + F) + (F*H + H) + (H*C + C).
"""

from __future__ import annotations

import keras

from looptrain.errors import ConfigError
from looptrain.models.layers import kernel_regularizer
from looptrain.models.registry import register


@register("textcnn")
class TextCNN(keras.Model):
    """Character TextCNN returning unnormalised logits `[batch, num_classes]`."""

    CONFIG_FIELDS = ("embedding_dim", "num_filters", "kernel_size", "hidden_dim", "dropout", "l1", "l2")

    def __init__(self, *, vocab_size: int, num_classes: int, embedding_dim: int, num_filters: int,
                 kernel_size: int, hidden_dim: int, dropout: float, l1: float = 0.0, l2: float = 0.0,
                 **kwargs):
        super().__init__(**kwargs)
        regularizer = kernel_regularizer(l1, l2)
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")
        self.conv = keras.layers.Conv1D(num_filters, kernel_size, kernel_regularizer=regularizer,
                                        name="conv")
        self.pool = keras.layers.GlobalMaxPooling1D(name="max_pool")
        self.hidden = keras.layers.Dense(hidden_dim, kernel_regularizer=regularizer, name="fc")
        self.dropout = keras.layers.Dropout(dropout, name="dropout")
        self.classifier = keras.layers.Dense(num_classes, kernel_regularizer=regularizer, name="logits")

    def check_input_shape(self, shape: tuple[int, ...]) -> None:
        """Refuses sequences shorter than the convolution (it would have no position to slide to)."""
        if shape[0] < self.conv.kernel_size[0]:
            raise ConfigError(f"'model.kernel_size' is {self.conv.kernel_size[0]}, wider than "
                              f"'data.seq_length' {shape[0]}: the convolution has no position to "
                              f"slide to; lower model.kernel_size or raise data.seq_length")

    def call(self, token_ids, training=False):
        h = self.pool(self.conv(self.embedding(token_ids)))
        h = self.dropout(self.hidden(h), training=training)
        return self.classifier(keras.ops.relu(h))
