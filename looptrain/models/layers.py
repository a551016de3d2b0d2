"""Layers and helpers shared by the model families.

`CharNgramBag` is also the worked example of a custom Keras layer: the weights are created in
`build` (when the input shape is known, so the same layer object works for any sequence length),
the computation lives in `call`, and `get_config` returns the constructor arguments, which is all
Keras needs to re-create the layer (`CharNgramBag.from_config(layer.get_config())`) or to save it in
a `.keras` file. fastText (`fasttext.py`) is built on it.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

# A rolling polynomial hash modulo a Mersenne prime: exact in int64 (h < 2^31, h * _BASE < 2^52),
# so an n-gram always lands in the same bucket on every platform.
_BASE = 1_000_003
_MODULUS = 2**31 - 1


def kernel_regularizer(l1: float, l2: float) -> keras.regularizers.Regularizer | None:
    """`L1L2(l1, l2)` for the kernels of a model, or None when both are 0 (no penalty at all).

    Keras adds each regularised weight's penalty to `model.losses`, which the train step adds to
    the objective.
    """
    return keras.regularizers.L1L2(l1=l1, l2=l2) if l1 or l2 else None


def masked_max_over_time(sequences, mask):
    """Max over time `[batch, time, features] -> [batch, features]` of the unmasked steps only.

    Padding steps are excluded rather than zeroed, so the result does not depend on how much
    padding there is (a zero would win over all-negative features); an all-padding sequence gives 0.
    """
    keep = ops.expand_dims(mask, -1)
    lowest = ops.convert_to_tensor(float(np.finfo(np.float32).min), sequences.dtype)
    pooled = ops.max(ops.where(keep, sequences, lowest), axis=1)
    return ops.where(ops.any(keep, axis=1), pooled, ops.zeros_like(pooled))


@keras.saving.register_keras_serializable(package="looptrain")
class CharNgramBag(keras.layers.Layer):
    """Mean embedding of a text's characters and of its hashed character n-grams (fastText input).

    Each character id has a row in `char_embeddings`; each character n-gram of order 2..`ngram_max`
    is hashed from its ids into one of `num_buckets` rows of `ngram_embeddings` (fastText's hashing
    trick: no n-gram vocabulary to build or store, collisions are rare and harmless). The output is
    the average of all those rows, so it does not depend on the text's length or its padding.

    Args:
        vocab_size: rows of the character table; id 0 is padding and never contributes.
        num_buckets: rows of the n-gram table.
        dim: embedding width (the output width).
        ngram_max: the highest n-gram order; 1 means characters only.
        regularizer: an optional penalty on both tables (a Keras regularizer or its config).

    Input: int ids `[batch, length]` with a static `length`, padding (0) at the end.
    Output: float32 `[batch, dim]`; all zeros for a text that is all padding.
    """

    def __init__(self, vocab_size: int, num_buckets: int, dim: int, ngram_max: int = 3,
                 regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.num_buckets = vocab_size, num_buckets
        self.dim, self.ngram_max = dim, ngram_max
        self.regularizer = keras.regularizers.get(regularizer)

    def build(self, input_shape):
        # fastText's initialisation: uniform in +-1/dim, so a mean of many rows starts near zero.
        init = keras.initializers.RandomUniform(-1.0 / self.dim, 1.0 / self.dim)
        self.char_embeddings = self.add_weight(
            shape=(self.vocab_size, self.dim), initializer=init, regularizer=self.regularizer,
            name="char_embeddings")
        self.ngram_embeddings = None
        if self.ngram_max >= 2:  # no table without n-grams: a weight nothing uses gets no gradient
            self.ngram_embeddings = self.add_weight(
                shape=(self.num_buckets, self.dim), initializer=init, regularizer=self.regularizer,
                name="ngram_embeddings")

    def call(self, token_ids):
        ids = ops.cast(token_ids, "int32")
        dtype = self.compute_dtype  # bfloat16 under mixed precision; the counts stay float32
        valid = ops.cast(ops.not_equal(ids, 0), "float32")
        total = ops.sum(ops.take(self.char_embeddings, ids, axis=0)
                        * ops.cast(valid, dtype)[..., None], axis=1)
        count = ops.sum(valid, axis=1)
        for n in range(2, self.ngram_max + 1):
            if ids.shape[1] is not None and ids.shape[1] < n:
                break  # texts this short have no n-gram of this order
            buckets, in_text = self.hash_ngrams(ids, n)
            rows = ops.take(self.ngram_embeddings, buckets, axis=0)
            total = total + ops.sum(rows * ops.cast(in_text, dtype)[..., None], axis=1)
            count = count + ops.sum(in_text, axis=1)
        return total / ops.cast(ops.maximum(count, 1.0), dtype)[:, None]

    def hash_ngrams(self, ids, n: int):
        """Bucket ids `[batch, length - n + 1]` of the order-`n` n-grams starting at each position,
        and a float mask that is 1 where the n-gram lies wholly inside the text (no padding)."""
        length = ids.shape[1]
        windows = [ids[:, j:length - n + 1 + j] for j in range(n)]
        h = ops.full(ops.shape(windows[0]), n, dtype="int64")  # the order seeds the hash
        in_text = ops.ones(ops.shape(windows[0]), dtype="float32")
        for window in windows:
            h = ops.mod(h * _BASE + ops.cast(window, "int64"), _MODULUS)
            in_text = in_text * ops.cast(ops.not_equal(window, 0), "float32")
        return ops.cast(ops.mod(h, self.num_buckets), "int32"), in_text

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.dim)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size,
                "num_buckets": self.num_buckets, "dim": self.dim, "ngram_max": self.ngram_max,
                "regularizer": keras.regularizers.serialize(self.regularizer)}
