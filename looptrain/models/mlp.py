"""MLP: a multi-layer perceptron for vectors (tabular rows) or any fixed-shape array, flattened.

flatten -> `num_layers` x (dense `hidden_dim` + ReLU -> dropout) -> dense to `num_classes` logits.
Parameters: sum over layers of (inputs * hidden + hidden), then (hidden * classes + classes).
"""

from __future__ import annotations

import keras

from looptrain.models.layers import kernel_regularizer
from looptrain.models.registry import register


@register("mlp")
class MLP(keras.Model):
    """Feed-forward classifier over float arrays, returning logits `[batch, num_classes]`."""

    DATA_KIND = "arrays"
    CONFIG_FIELDS = ("hidden_dim", "num_layers", "dropout", "l1", "l2")

    def __init__(self, *, num_classes: int, hidden_dim: int, num_layers: int, dropout: float,
                 l1: float, l2: float, **kwargs):
        super().__init__(**kwargs)
        regularizer = kernel_regularizer(l1, l2)
        self.num_layers = num_layers
        self.flatten = keras.layers.Flatten(name="flatten")
        # One attribute per layer: tf.train.Checkpoint does not see layers held in a Python list.
        for i in range(num_layers):
            setattr(self, f"dense_{i}", keras.layers.Dense(
                hidden_dim, activation="relu", kernel_regularizer=regularizer, name=f"dense_{i}"))
            setattr(self, f"dropout_{i}", keras.layers.Dropout(dropout, name=f"dropout_{i}"))
        self.classifier = keras.layers.Dense(num_classes, kernel_regularizer=regularizer, name="logits")

    def call(self, features, training=False):
        h = self.flatten(features)
        for i in range(self.num_layers):
            h = getattr(self, f"dropout_{i}")(getattr(self, f"dense_{i}")(h), training=training)
        return self.classifier(h)
