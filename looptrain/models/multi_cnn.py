"""MultiCNN: the multi-width text CNN (Kim, 2014) over character embeddings.

embedding -> one Conv1D (`num_filters`, ReLU) per width in `kernel_sizes` (default 3, 4, 5) ->
global max pool over time of each -> concatenated -> dropout -> dense logits.
Parameters: V*E + sum over widths of (k*E*F + F) + (len(widths)*F*C + C).
"""

from __future__ import annotations

import keras

from looptrain.errors import ConfigError
from looptrain.models.layers import kernel_regularizer
from looptrain.models.registry import register


def parse_widths(kernel_sizes: str) -> tuple[int, ...]:
    """`"3,4,5"` -> `(3, 4, 5)` (the config has already checked the syntax)."""
    return tuple(int(w) for w in kernel_sizes.split(","))


@register("multicnn")
class MultiCNN(keras.Model):
    """Multi-width character CNN returning logits `[batch, num_classes]`."""

    CONFIG_FIELDS = ("embedding_dim", "num_filters", "kernel_sizes", "dropout", "l1", "l2")

    def __init__(self, *, vocab_size: int, num_classes: int, embedding_dim: int, num_filters: int,
                 kernel_sizes: str, dropout: float, l1: float, l2: float, **kwargs):
        super().__init__(**kwargs)
        regularizer = kernel_regularizer(l1, l2)
        self.widths = parse_widths(kernel_sizes)
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")
        for i, width in enumerate(self.widths):  # one attribute per layer (see mlp.py)
            setattr(self, f"conv_{i}", keras.layers.Conv1D(
                num_filters, width, activation="relu", kernel_regularizer=regularizer,
                name=f"conv_{i}_width_{width}"))
        self.pool = keras.layers.GlobalMaxPooling1D(name="max_pool")
        self.concat = keras.layers.Concatenate(name="concat")
        self.dropout = keras.layers.Dropout(dropout, name="dropout")
        self.classifier = keras.layers.Dense(num_classes, kernel_regularizer=regularizer, name="logits")

    def check_input_shape(self, shape: tuple[int, ...]) -> None:
        """Refuses sequences shorter than the widest convolution."""
        if shape[0] < max(self.widths):
            raise ConfigError(f"'data.seq_length' is {shape[0]}, shorter than the widest convolution "
                              f"('model.kernel_sizes' {max(self.widths)}); raise it or narrow the widths")

    def call(self, token_ids, training=False):
        h = self.embedding(token_ids)
        pooled = [self.pool(getattr(self, f"conv_{i}")(h)) for i in range(len(self.widths))]
        h = self.concat(pooled) if len(pooled) > 1 else pooled[0]
        return self.classifier(self.dropout(h, training=training))
