"""fastText: a linear classifier over the mean embedding of characters and hashed n-grams.

`CharNgramBag` (layers.py: the mean of the character embeddings and of the embeddings of hashed
character n-grams of orders 2..`ngram_max`) -> dropout -> dense logits. As in fastText (Joulin et
al., 2016), the only nonlinearity is the softmax; the n-grams give it local word order. It trains
fast and does well where texts are short and few, the regime of TF-IDF + logistic regression.
Parameters: V*E + B*E + (E*C + C), with B = `ngram_buckets` (B = 0 when `ngram_max` is 1).
"""

from __future__ import annotations

import keras

from looptrain.models.layers import CharNgramBag, kernel_regularizer
from looptrain.models.registry import register


@register("fasttext")
class FastText(keras.Model):
    """fastText-style text classifier returning logits `[batch, num_classes]`."""

    CONFIG_FIELDS = ("embedding_dim", "ngram_max", "ngram_buckets", "dropout", "l1", "l2")

    def __init__(self, *, vocab_size: int, num_classes: int, embedding_dim: int, ngram_max: int,
                 ngram_buckets: int, dropout: float, l1: float, l2: float, **kwargs):
        super().__init__(**kwargs)
        # The tables are most of this linear model's weights, so the L1/L2 penalty covers them too
        # (as it covers all weights of a logistic regression).
        regularizer = kernel_regularizer(l1, l2)
        self.bag = CharNgramBag(vocab_size, ngram_buckets, embedding_dim, ngram_max,
                                regularizer=regularizer, name="bag")
        self.dropout = keras.layers.Dropout(dropout, name="dropout")
        self.classifier = keras.layers.Dense(num_classes, kernel_regularizer=regularizer, name="logits")

    def call(self, token_ids, training=False):
        return self.classifier(self.dropout(self.bag(token_ids), training=training))
