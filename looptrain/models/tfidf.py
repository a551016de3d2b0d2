"""TF-IDF n-gram bag: the classic small-text classifier, trained by looptrain's own loop.

Features are the character n-grams (orders 1..`char_ngram_max`) and word n-grams (orders
1..`word_ngram_max`; a word is a run of letters and digits, so this is for languages written with
spaces) of a text, formed in the graph from its character ids: `tf.strings.ngrams` over the ids'
decimal strings, then a 62-bit FarmHash fingerprint per n-gram (`tf.strings.to_hash_bucket_fast`).
`adapt(x_train, vocab)` learns, from the training split only, the n-gram vocabulary (the
`max_features` fingerprints in most training texts, at least `min_df` of them) and its smoothed
IDF, `ln((1 + n) / (1 + df)) + 1`, as scikit-learn does. Both live in non-trainable weights, so the
checkpoint, the `best/` copy, evaluation, prediction and the exported SavedModel carry them, and
export on raw strings works unchanged (the encoding to ids happens before the model).

A text's vector is sublinear tf (1 + ln count) times idf, L2-normalised (`TfidfVectorizer(
sublinear_tf=True)`); n-grams outside the vocabulary are dropped. Then either a linear layer to
the logits (`bag_hidden_dim = 0`: multinomial logistic regression, regularised by `l2` and by
`dropout` on the n-gram weights) or one ReLU hidden layer of `bag_hidden_dim` units, then logits.

`fasttext_ngrams` is fastText (Joulin et al., 2016) on the same features: the mean of the n-grams'
embeddings (width `embedding_dim`, no nonlinearity) under a linear classifier, with word n-grams
for space-separated languages and character n-grams for Chinese.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from looptrain.models.layers import kernel_regularizer
from looptrain.models.registry import register

_KEY_SPACE = 2**62  # fingerprints below this; the int64 maximum marks an unused vocabulary slot
_UNUSED = np.iinfo(np.int64).max


def ngram_fingerprints(ids, separators, *, char_ngram_max: int, word_ngram_max: int):
    """The n-grams of each text as (row [N], fingerprint [N]) int64 pairs, one per occurrence.

    Args:
        ids: int ids `[batch, length]`, padding (0) at the end only.
        separators: float `[vocab_size]`, 1 for characters that end a word (used for word n-grams).
        char_ngram_max, word_ngram_max: the highest orders (0 = none of that kind).
    """
    ragged = tf.RaggedTensor.from_tensor(tf.cast(ids, tf.int32), padding=0)
    tokens = tf.strings.as_string(ragged.flat_values)
    grams = []
    if char_ngram_max:
        grams.append(tf.strings.ngrams(ragged.with_flat_values(tokens),
                                       tuple(range(1, char_ngram_max + 1)), separator=" "))
    if word_ngram_max:
        # "12.5." per word character, " " per separator; splitting on whitespace gives the words.
        is_separator = tf.gather(separators, ragged.flat_values) > 0.5
        marked = tf.where(is_separator, " ", tf.strings.join([tokens, "."]))
        words = tf.strings.split(tf.strings.reduce_join(ragged.with_flat_values(marked), axis=1))
        grams.append(tf.strings.ngrams(words, tuple(range(1, word_ngram_max + 1)), separator=" "))
    grams = grams[0] if len(grams) == 1 else tf.concat(grams, axis=1)
    keys = tf.strings.to_hash_bucket_fast(grams.flat_values, _KEY_SPACE)
    return grams.value_rowids(), keys


@register("tfidf")
class TfidfClassifier(keras.Model):
    """TF-IDF n-gram bag with a linear or one-hidden-layer classifier, logits `[batch, classes]`."""

    CONFIG_FIELDS = ("char_ngram_max", "word_ngram_max", "max_features", "min_df",
                     "bag_hidden_dim", "dropout", "l1", "l2")
    WEIGHTING = "tfidf"
    HIDDEN_ACTIVATION = "relu"
    jit_compile_default = False  # string n-grams and tf.unique have no XLA kernels

    def __init__(self, *, vocab_size: int, num_classes: int, char_ngram_max: int,
                 word_ngram_max: int, max_features: int, min_df: int, bag_hidden_dim: int,
                 dropout: float, l1: float = 0.0, l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if not char_ngram_max and not word_ngram_max:
            raise ValueError("char_ngram_max and word_ngram_max are both 0: no features")
        self.vocab_size, self.num_classes = vocab_size, num_classes
        self.char_ngram_max, self.word_ngram_max = char_ngram_max, word_ngram_max
        self.max_features, self.min_df, self.hidden_dim = max_features, min_df, bag_hidden_dim
        self.regularizer = kernel_regularizer(l1, l2)
        self.feature_dropout = keras.layers.Dropout(dropout, name="feature_dropout")
        self.classifier = (keras.layers.Dense(num_classes, kernel_regularizer=self.regularizer,
                                              name="logits") if bag_hidden_dim else None)

    def build(self, input_shape):
        fixed = dict(trainable=False, initializer="zeros")
        self.separators = self.add_weight(shape=(self.vocab_size,), name="separators", **fixed)
        self.keys = self.add_weight(shape=(self.max_features,), dtype="int64", name="ngram_keys",
                                    initializer=keras.initializers.Constant(_UNUSED), trainable=False)
        self.idf = self.add_weight(shape=(self.max_features,), name="idf", **fixed)
        # A linear model starts at zero (convex: any start converges); a hidden layer needs noise.
        width = self.hidden_dim or self.num_classes
        self.kernel = self.add_weight(
            shape=(self.max_features, width), name="ngram_kernel", regularizer=self.regularizer,
            initializer="glorot_uniform" if self.hidden_dim else "zeros")
        self.bias = self.add_weight(shape=(width,), name="ngram_bias", initializer="zeros")
        if self.classifier is not None:
            self.classifier.build((None, width))

    def adapt(self, x_train: np.ndarray, vocab: list[str] | None = None,
              batch_size: int = 512) -> None:
        """Learns the n-gram vocabulary and IDF from the encoded training split.

        Args:
            x_train: int32 ids `[n, seq_length]`.
            vocab: the run's vocabulary (`vocab[i]` is id i); needed for word n-grams, whose
                separators are the characters that are not letters or digits.
        """
        if self.word_ngram_max:
            if vocab is None:
                raise ValueError("word n-grams need the vocabulary to find the word separators")
            self.separators.assign(np.array([0.0] + [0.0 if ch.isalnum() else 1.0 for ch in vocab[1:]],
                                            np.float32))
        pairs = []
        for start in range(0, len(x_train), batch_size):
            rows, keys = self._fingerprints(tf.constant(x_train[start:start + batch_size]))
            pairs.append(np.unique(np.stack([rows.numpy() + start, keys.numpy()], 1), axis=0))
        keys, df = np.unique(np.concatenate(pairs)[:, 1], return_counts=True)
        order = np.lexsort((keys, -df))  # most frequent first, ties by fingerprint
        chosen = order[df[order] >= self.min_df][: self.max_features]
        chosen = chosen[np.argsort(keys[chosen])]  # sorted fingerprints: searched in the graph
        table = np.full(self.max_features, _UNUSED, np.int64)
        idf = np.zeros(self.max_features, np.float32)
        table[: len(chosen)] = keys[chosen]
        idf[: len(chosen)] = np.log((1 + len(x_train)) / (1 + df[chosen])) + 1
        self.keys.assign(table)
        self.idf.assign(idf)

    def _fingerprints(self, ids):
        return ngram_fingerprints(ids, self.separators, char_ngram_max=self.char_ngram_max,
                                  word_ngram_max=self.word_ngram_max)

    def _bag(self, ids, training):
        """Per text, its vocabulary n-grams: (row, feature index, weight) of the text's vector."""
        rows, keys = self._fingerprints(ids)
        position = tf.minimum(tf.searchsorted(self.keys, keys, out_type=tf.int64),
                              self.max_features - 1)
        known = tf.equal(tf.gather(self.keys, position), keys)
        pair = tf.boolean_mask(rows, known) * self.max_features + tf.boolean_mask(position, known)
        unique, _, counts = tf.unique_with_counts(pair)
        rows, index = unique // self.max_features, unique % self.max_features
        counts = tf.cast(counts, tf.float32)
        batch = tf.shape(ids, out_type=tf.int64)[0]
        if self.WEIGHTING == "tfidf":
            weight = (1.0 + tf.math.log(counts)) * tf.gather(self.idf, index)
            norm = tf.sqrt(tf.math.unsorted_segment_sum(tf.square(weight), rows, batch))
        else:  # mean of the occurrences
            weight = counts
            norm = tf.math.unsorted_segment_sum(weight, rows, batch)
        weight = weight / tf.gather(tf.maximum(norm, 1e-12), rows)
        return rows, index, self.feature_dropout(weight, training=training), batch

    def call(self, token_ids, training=False):
        rows, index, weight, batch = self._bag(token_ids, training)
        rows_of = tf.gather(self.kernel, index) * weight[:, None]
        h = tf.math.unsorted_segment_sum(rows_of, rows, batch) + self.bias
        if self.classifier is None:
            return h
        if self.HIDDEN_ACTIVATION:
            h = keras.activations.get(self.HIDDEN_ACTIVATION)(h)
        return self.classifier(h)


@register("fasttext_ngrams")
class NgramFastText(TfidfClassifier):
    """fastText over the learned n-gram vocabulary: mean embedding -> linear logits."""

    CONFIG_FIELDS = ("char_ngram_max", "word_ngram_max", "max_features", "min_df",
                     "embedding_dim", "dropout", "l1", "l2")
    WEIGHTING = "mean"
    HIDDEN_ACTIVATION = None

    def __init__(self, *, embedding_dim: int, **kwargs):
        super().__init__(bag_hidden_dim=embedding_dim, **kwargs)
