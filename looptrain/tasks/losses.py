"""The training objective's per-example loss: cross-entropy with label smoothing and class weights.

`make_loss_fn` returns `loss_fn(labels, logits) -> [batch]`, each example's loss already multiplied
by the weight of its class. The step takes the mean over the batch (the sum divided by the number of
examples, as Keras' default "sum over batch size" reduction does with sample weights), so a batch
split into micro-batches sums to exactly the same objective. Validation and test losses stay the
plain cross-entropy (`cross_entropy`): they measure the model, not the training recipe, and remain
comparable between runs with different smoothing or weights.
"""

from __future__ import annotations

from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from looptrain.errors import ConfigError

LossFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


def cross_entropy(labels, logits):
    """Per-example sparse softmax cross-entropy `[batch]` of int labels and float logits."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)


def class_weights(spec: str, train_labels: np.ndarray, num_classes: int) -> np.ndarray | None:
    """Per-class loss weights from the `train.class_weights` setting.

    Args:
        spec: `""` (none), `"balanced"` (`n / (num_classes * count_c)`, so every class contributes
            as much to the objective as if the classes were equally frequent), or one
            comma-separated weight per class in `labels.txt` order.
        train_labels: the training split's class ids.
        num_classes: the number of classes.

    Returns:
        float32 `[num_classes]`, or None for no weighting.

    Raises:
        ConfigError: an explicit list has the wrong number of values.
    """
    if not spec:
        return None
    if spec == "balanced":
        counts = np.bincount(train_labels, minlength=num_classes).astype(np.float64)
        # A class absent from training never weighs a training example; 1.0 keeps it harmless.
        weights = np.where(counts > 0, len(train_labels) / (num_classes * np.maximum(counts, 1)), 1.0)
        return weights.astype(np.float32)
    weights = np.array([float(w) for w in spec.split(",")], np.float32)
    if len(weights) != num_classes:
        raise ConfigError(f"'train.class_weights' has {len(weights)} values but the data has "
                          f"{num_classes} classes; give one weight per class in labels.txt order")
    return weights


def make_loss_fn(*, label_smoothing: float = 0.0, weights: np.ndarray | None = None) -> LossFn:
    """The per-example training loss.

    Args:
        label_smoothing: `s` in [0, 1): the target puts `1 - s + s/C` on the true class and `s/C` on
            each other class (Keras' `categorical_crossentropy(label_smoothing=s)`).
        weights: per-class weights from `class_weights`, or None.
    """
    class_weight = None if weights is None else tf.constant(weights, tf.float32)

    def loss_fn(labels, logits):
        if label_smoothing:
            targets = tf.one_hot(labels, tf.shape(logits)[-1], dtype=logits.dtype)
            per_example = keras.losses.categorical_crossentropy(
                targets, logits, from_logits=True, label_smoothing=label_smoothing)
        else:
            per_example = cross_entropy(labels, logits)
        if class_weight is not None:
            per_example = per_example * tf.gather(class_weight, labels)
        return per_example

    return loss_fn
