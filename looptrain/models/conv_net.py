"""ConvNet: a small image classifier.

`num_layers` blocks of conv (`num_filters`, doubled per block, `kernel_size` square, same padding,
no bias: the batch norm's offset replaces it) -> batch norm -> ReLU -> 2x2 max pool; then flatten ->
dropout -> dense `hidden_dim` + ReLU -> dropout -> dense logits.
Per block: k*k*C_in*F conv weights and 4*F batch-norm values (gamma, beta trainable; moving mean and
variance updated only by training calls).
"""

from __future__ import annotations

import keras

from looptrain.errors import ConfigError
from looptrain.models.layers import kernel_regularizer
from looptrain.models.registry import register


# The last block's filters at most: its 3x3 weights then hold 9 * 2048 * 4096 (75 million) floats.
MAX_FILTERS = 4096


@register("convnet")
class ConvNet(keras.Model):
    """Convolutional classifier over float images `[batch, height, width, channels]`."""

    DATA_KIND = "arrays"
    INPUT_RANK = 3
    INPUT_LAYOUT = "[height, width, channels]"
    CONFIG_FIELDS = ("num_filters", "kernel_size", "num_layers", "hidden_dim", "dropout", "l1", "l2")
    # train.jit_compile = "auto" leaves XLA off: XLA has no deterministic MaxPool gradient, and
    # TensorFlow refuses it under op determinism (train.deterministic, on by default).
    jit_compile_default = False

    def __init__(self, *, num_classes: int, num_filters: int, kernel_size: int, num_layers: int,
                 hidden_dim: int, dropout: float, l1: float, l2: float, **kwargs):
        super().__init__(**kwargs)
        regularizer = kernel_regularizer(l1, l2)
        self.num_layers = num_layers
        for i in range(num_layers):  # one attribute per layer (see mlp.py)
            setattr(self, f"conv_{i}", keras.layers.Conv2D(
                num_filters * 2**i, kernel_size, padding="same", use_bias=False,
                kernel_regularizer=regularizer, name=f"conv_{i}"))
            setattr(self, f"norm_{i}", keras.layers.BatchNormalization(name=f"norm_{i}"))
            # "same" pooling: an odd or tiny image never shrinks to nothing.
            setattr(self, f"pool_{i}", keras.layers.MaxPooling2D(2, padding="same", name=f"pool_{i}"))
        self.flatten = keras.layers.Flatten(name="flatten")
        self.dropout_features = keras.layers.Dropout(dropout, name="dropout_features")
        self.hidden = keras.layers.Dense(hidden_dim, activation="relu", kernel_regularizer=regularizer,
                                         name="fc")
        self.dropout = keras.layers.Dropout(dropout, name="dropout")
        self.classifier = keras.layers.Dense(num_classes, kernel_regularizer=regularizer, name="logits")

    def check_input_shape(self, shape: tuple[int, ...]) -> None:
        """Refuses blocks wider than `MAX_FILTERS` (the filters double per block: 40 blocks of 16
        would ask for 16 * 2**39 filters, and the allocation fails after minutes)."""
        widest = self.conv_0.filters * 2 ** (self.num_layers - 1)
        if widest > MAX_FILTERS:
            raise ConfigError(f"model.num_layers = {self.num_layers} with model.num_filters = "
                              f"{self.conv_0.filters} gives the last block {widest:,} filters (they "
                              f"double per block); at most {MAX_FILTERS:,}: use fewer layers or filters")

    def call(self, images, training=False):
        h = images
        for i in range(self.num_layers):
            h = getattr(self, f"conv_{i}")(h)
            # training= decides the statistics: the batch's (and a moving-average update) when
            # training, the moving averages when evaluating.
            h = keras.ops.relu(getattr(self, f"norm_{i}")(h, training=training))
            h = getattr(self, f"pool_{i}")(h)
        h = self.dropout_features(self.flatten(h), training=training)
        h = self.dropout(self.hidden(h), training=training)
        return self.classifier(h)
