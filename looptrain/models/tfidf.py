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
sublinear_tf=True)`); n-grams outside the vocabulary are dropped. With `norm_per_kind` the
character and the word n-grams are normalised apart, two unit vectors side by side (scikit-learn's
`FeatureUnion` of two vectorizers). Then either a linear layer to the logits (`bag_hidden_dim = 0`:
multinomial logistic regression, regularised by `l2` and by `dropout` on the n-gram weights) or
one ReLU hidden layer of `bag_hidden_dim` units, then logits.

`nb_ratio` (linear only) is NB-SVM (Wang & Manning, 2012) for any number of classes: `adapt`
also learns, from the training labels, each n-gram's one-vs-rest log-count ratio per class
(`log_count_ratios`), and class c's logit weighs the n-gram by `kernel[j, c] * ratio[j, c]`. The
trainable kernel keeps the L2 penalty and Adam's step size, so an n-gram that Naive Bayes finds
uninformative (ratio near 0) moves little and costs as much as one that it finds telling: the
Naive Bayes estimate acts as a prior on the logistic regression, which helps most on few texts.

`fasttext_ngrams` is fastText (Joulin et al., 2016) on the same features: the mean of the n-grams'
embeddings (width `embedding_dim`, no nonlinearity) under a linear classifier, with word n-grams
for space-separated languages and character n-grams for Chinese.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from looptrain.errors import ConfigError
from looptrain.models.layers import kernel_regularizer
from looptrain.models.registry import register

_KEY_SPACE = 2**62  # fingerprints below this; the int64 maximum marks an unused vocabulary slot
_UNUSED = np.iinfo(np.int64).max


def ngram_fingerprints(ids, separators, *, char_ngram_max: int, word_ngram_max: int):
    """The n-grams of each text as (row, fingerprint, kind) int64 triples `[N]`, one per
    occurrence; kind is 0 for a character n-gram, 1 for a word n-gram.

    Args:
        ids: int ids `[batch, length]`, padding (0) at the end only.
        separators: float `[vocab_size]`, 1 for characters that end a word (used for word n-grams).
        char_ngram_max, word_ngram_max: the highest orders (0 = none of that kind).
    """
    ragged = tf.RaggedTensor.from_tensor(tf.cast(ids, tf.int32), padding=0)
    tokens = tf.strings.as_string(ragged.flat_values)
    grams, kinds = [], []
    if char_ngram_max:
        grams.append(tf.strings.ngrams(ragged.with_flat_values(tokens),
                                       tuple(range(1, char_ngram_max + 1)), separator=" "))
        kinds.append(0)
    if word_ngram_max:
        # "12.5." per word character, " " per separator; splitting on whitespace gives the words.
        is_separator = tf.gather(separators, ragged.flat_values) > 0.5
        marked = tf.where(is_separator, " ", tf.strings.join([tokens, "."]))
        words = tf.strings.split(tf.strings.reduce_join(ragged.with_flat_values(marked), axis=1))
        grams.append(tf.strings.ngrams(words, tuple(range(1, word_ngram_max + 1)), separator=" "))
        kinds.append(1)
    kinds = [g.with_flat_values(tf.fill(tf.shape(g.flat_values, out_type=tf.int64),
                                        tf.constant(kind, tf.int64))) for g, kind in zip(grams, kinds)]
    if len(grams) > 1:
        grams, kinds = [tf.concat(grams, axis=1)], [tf.concat(kinds, axis=1)]
    keys = tf.strings.to_hash_bucket_fast(grams[0].flat_values, _KEY_SPACE)
    return grams[0].value_rowids(), keys, kinds[0].flat_values


@register("tfidf")
class TfidfClassifier(keras.Model):
    """TF-IDF n-gram bag with a linear or one-hidden-layer classifier, logits `[batch, classes]`."""

    CONFIG_FIELDS = ("char_ngram_max", "word_ngram_max", "max_features", "min_df",
                     "bag_hidden_dim", "dropout", "l1", "l2", "norm_per_kind", "nb_ratio")
    WEIGHTING = "tfidf"
    HIDDEN_ACTIVATION = "relu"
    jit_compile_default = False  # string n-grams and tf.unique have no XLA kernels

    def __init__(self, *, vocab_size: int, num_classes: int, char_ngram_max: int,
                 word_ngram_max: int, max_features: int, min_df: int, bag_hidden_dim: int,
                 dropout: float, l1: float = 0.0, l2: float = 0.0, norm_per_kind: bool = False,
                 nb_ratio: bool = False, **kwargs):
        super().__init__(**kwargs)
        if not char_ngram_max and not word_ngram_max:
            raise ValueError("char_ngram_max and word_ngram_max are both 0: no features")
        if nb_ratio and bag_hidden_dim:
            raise ConfigError("model.nb_ratio scales a linear model's per-class weights; it "
                              "needs model.bag_hidden_dim = 0")
        self.vocab_size, self.num_classes = vocab_size, num_classes
        self.char_ngram_max, self.word_ngram_max = char_ngram_max, word_ngram_max
        self.max_features, self.min_df, self.hidden_dim = max_features, min_df, bag_hidden_dim
        self.norm_per_kind, self.nb_ratio = norm_per_kind, nb_ratio
        self.regularizer = kernel_regularizer(l1, l2)
        self.feature_dropout = keras.layers.Dropout(dropout, name="feature_dropout")
        self.classifier = (keras.layers.Dense(num_classes, kernel_regularizer=self.regularizer,
                                              name="logits") if bag_hidden_dim else None)

    def build(self, input_shape):
        # Statistics of the training split stay float32 under mixed precision (autocast off): the
        # text vectors are computed from them in float32, and only their product with the kernel
        # in the compute dtype.
        fixed = dict(trainable=False, initializer="zeros", autocast=False)
        self.separators = self.add_weight(shape=(self.vocab_size,), name="separators", **fixed)
        self.keys = self.add_weight(shape=(self.max_features,), dtype="int64", name="ngram_keys",
                                    initializer=keras.initializers.Constant(_UNUSED), trainable=False)
        self.idf = self.add_weight(shape=(self.max_features,), name="idf", **fixed)
        self.ratio = None
        if self.nb_ratio:  # the n-gram's log-count ratio per class (adapt); 1 until adapted
            self.ratio = self.add_weight(shape=(self.max_features, self.num_classes),
                                         name="nb_ratio", trainable=False, initializer="ones",
                                         autocast=False)
        # A linear model starts at zero (convex: any start converges); a hidden layer needs noise.
        width = self.hidden_dim or self.num_classes
        self.kernel = self.add_weight(
            shape=(self.max_features, width), name="ngram_kernel", regularizer=self.regularizer,
            initializer="glorot_uniform" if self.hidden_dim else "zeros")
        self.bias = self.add_weight(shape=(width,), name="ngram_bias", initializer="zeros")
        if self.classifier is not None:
            self.classifier.build((None, width))

    def adapt(self, x_train: np.ndarray, vocab: list[str] | None = None,
              labels: np.ndarray | None = None, batch_size: int = 512) -> None:
        """Learns the n-gram vocabulary and IDF (and with `nb_ratio`, the log-count ratios) from
        the encoded training split.

        Args:
            x_train: int32 ids `[n, seq_length]`.
            vocab: the run's vocabulary (`vocab[i]` is id i); needed for word n-grams, whose
                separators are the characters that are not letters or digits.
            labels: int class ids `[n]`; needed for `nb_ratio`.
        """
        if self.word_ngram_max:
            if vocab is None:
                raise ValueError("word n-grams need the vocabulary to find the word separators")
            self.separators.assign(np.array([0.0] + [0.0 if ch.isalnum() else 1.0 for ch in vocab[1:]],
                                            np.float32))
        if self.nb_ratio and labels is None:
            raise ValueError("nb_ratio needs the training labels")
        pairs = []
        for start in range(0, len(x_train), batch_size):
            rows, keys, _ = self._fingerprints(tf.constant(x_train[start:start + batch_size]))
            pairs.append(np.unique(np.stack([rows.numpy() + start, keys.numpy()], 1), axis=0))
        pairs = np.concatenate(pairs)  # (text, n-gram) once per text that has it
        keys, inverse, df = np.unique(pairs[:, 1], return_inverse=True, return_counts=True)
        order = np.lexsort((keys, -df))  # most frequent first, ties by fingerprint
        chosen = order[df[order] >= self.min_df][: self.max_features]
        chosen = chosen[np.argsort(keys[chosen])]  # sorted fingerprints: searched in the graph
        table = np.full(self.max_features, _UNUSED, np.int64)
        idf = np.zeros(self.max_features, np.float32)
        table[: len(chosen)] = keys[chosen]
        idf[: len(chosen)] = np.log((1 + len(x_train)) / (1 + df[chosen])) + 1
        self.keys.assign(table)
        self.idf.assign(idf)
        if self.nb_ratio:
            ratio = np.zeros((self.max_features, self.num_classes), np.float32)
            counts = np.zeros((len(keys), self.num_classes))  # texts of each class with the n-gram
            np.add.at(counts, (inverse, np.asarray(labels)[pairs[:, 0]]), 1.0)
            ratio[: len(chosen)] = log_count_ratios(counts[chosen])
            self.ratio.assign(ratio)

    def _fingerprints(self, ids):
        return ngram_fingerprints(ids, self.separators, char_ngram_max=self.char_ngram_max,
                                  word_ngram_max=self.word_ngram_max)

    def _bag(self, ids, training):
        """Per text, its vocabulary n-grams: (row, feature index, weight) of the text's vector."""
        rows, keys, kinds = self._fingerprints(ids)
        position = tf.minimum(tf.searchsorted(self.keys, keys, out_type=tf.int64),
                              self.max_features - 1)
        known = tf.equal(tf.gather(self.keys, position), keys)
        # One vector per text and kind (character, word) when they are normalised apart.
        segments = rows * 2 + kinds if self.norm_per_kind else rows
        pair = (tf.boolean_mask(segments, known) * self.max_features
                + tf.boolean_mask(position, known))
        unique, _, counts = tf.unique_with_counts(pair)
        segments, index = unique // self.max_features, unique % self.max_features
        counts = tf.cast(counts, tf.float32)
        batch = tf.shape(ids, out_type=tf.int64)[0]
        num_segments = batch * 2 if self.norm_per_kind else batch
        if self.WEIGHTING == "tfidf":
            weight = (1.0 + tf.math.log(counts)) * tf.gather(self.idf, index)
            norm = tf.sqrt(tf.math.unsorted_segment_sum(tf.square(weight), segments, num_segments))
        else:  # mean of the occurrences
            weight = counts
            norm = tf.math.unsorted_segment_sum(weight, segments, num_segments)
        weight = weight / tf.gather(tf.maximum(norm, 1e-12), segments)
        rows = segments // 2 if self.norm_per_kind else segments
        return rows, index, self.feature_dropout(weight, training=training), batch

    def call(self, token_ids, training=False):
        rows, index, weight, batch = self._bag(token_ids, training)
        rows_of = tf.gather(self.kernel, index)
        if self.ratio is not None:  # NB-SVM: each class's weight scaled by its log-count ratio
            rows_of *= tf.cast(tf.gather(self.ratio, index), rows_of.dtype)
        weight = tf.cast(weight, rows_of.dtype)
        h = tf.math.unsorted_segment_sum(rows_of * weight[:, None], rows, batch) + self.bias
        if self.classifier is None:
            return h
        if self.HIDDEN_ACTIVATION:
            h = keras.activations.get(self.HIDDEN_ACTIVATION)(h)
        return self.classifier(h)


def log_count_ratios(counts: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """One-vs-rest log-count ratios `[features, classes]` (NB-SVM, Wang & Manning, 2012).

    For class c, `p` is the number of texts of class c that have the n-gram and `q` that of the
    other classes' texts, each plus `alpha`; the ratio is `ln((p / |p|_1) / (q / |q|_1))`, the
    norms over the vocabulary: positive for n-grams typical of c, negative for those typical of
    the rest, near 0 for the uninformative ones. With two classes, the second is minus the first.

    Args:
        counts: `[features, classes]` texts per class that have each n-gram.
    """
    p = counts + alpha
    q = counts.sum(1, keepdims=True) - counts + alpha
    return np.log(p / p.sum(0)) - np.log(q / q.sum(0))


@register("fasttext_ngrams")
class NgramFastText(TfidfClassifier):
    """fastText over the learned n-gram vocabulary: mean embedding -> linear logits."""

    CONFIG_FIELDS = ("char_ngram_max", "word_ngram_max", "max_features", "min_df",
                     "embedding_dim", "dropout", "l1", "l2")
    WEIGHTING = "mean"
    HIDDEN_ACTIVATION = None

    def __init__(self, *, embedding_dim: int, **kwargs):
        super().__init__(bag_hidden_dim=embedding_dim, **kwargs)
