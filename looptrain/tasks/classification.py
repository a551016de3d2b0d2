"""`Classification`: the built-in classifier, a `Task` written with the public API only.

Any registered model (or a `module:Class` of the user's) on encoded text or array data, trained
with softmax cross-entropy (optionally label-smoothed and class-weighted, `losses`) plus the
model's own losses, Adam with an optional schedule (`schedules`) and global-norm clipping,
gradient accumulation over micro-batches, and mixed precision. Validation and test losses are the
plain cross-entropy: they measure the model, not the training recipe.

Gradient accumulation (`num_micro_batches > 1`) splits the batch into that many slices inside the
step and sums their gradients before the one optimizer update: the update of the whole batch,
with the activation memory of one slice.
"""

from __future__ import annotations

import inspect
from typing import Any

import keras
import tensorflow as tf

from looptrain.migrations import MIGRATIONS
from looptrain.data.pipeline import text_lengths
from looptrain.data.sources import ArraySource
from looptrain.engine.steps import apply_gradients, batch_mean, model_losses
from looptrain.errors import ConfigError
from looptrain.models import build_model, create_model, get_model_class
from looptrain.task import Task
from looptrain.tasks.losses import class_weights, cross_entropy, make_loss_fn
from looptrain.tasks.precision import resolve_precision
from looptrain.tasks.schedules import make_learning_rate


def make_optimizer(*, learning_rate, clip_norm: float,
                   precision: str = "float32") -> keras.optimizers.Optimizer:
    """Adam, with Keras' own global-norm clipping when `clip_norm > 0`.

    `learning_rate` is a float or a Keras schedule (`schedules.make_learning_rate`). Under
    `mixed_float16` the optimizer is wrapped in a `LossScaleOptimizer` (dynamic loss scaling), as
    float16 gradients would otherwise underflow; bfloat16 has float32's range and needs none.
    """
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate, global_clipnorm=clip_norm or None)
    if precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


class Classification(Task):
    """A classifier of `corpus` (`data.corpus.Corpus`: its vocabulary, labels and encoded splits).

    Args:
        corpus: the encoded data (not a hyper-parameter: its vocabulary and labels are the run's
            identity instead).
        model: the `[model]` section as a mapping (`name` and the registered models' keys).
        model_extra: a user model's own constructor arguments.
        learning_rate, lr_schedule, lr_decay_steps, lr_decay_rate, warmup_steps: the optimizer's
            learning rate (see `schedules`).
        clip_norm: global-norm gradient clipping (0: off).
        precision: "float32", "mixed_float16", "mixed_bfloat16" (layer compute dtype) or "auto"
            (mixed_bfloat16 on hardware with native bfloat16, else float32: `precision`).
        num_micro_batches: gradient accumulation.
        label_smoothing, class_weights: the training loss (see `losses`).
        bucket_window: length bucketing of text batches (0: off).
    """

    monitor = "val/accuracy"
    mode = "max"
    not_hparams = ("corpus",)

    def __init__(self, *, corpus, model: dict[str, Any], model_extra: dict[str, Any] | None = None,
                 learning_rate: float = 1e-3, lr_schedule: str = "constant", lr_decay_steps: int = 0,
                 lr_decay_rate: float = 0.5, warmup_steps: int = 0, clip_norm: float = 0.0,
                 precision: str = "float32", num_micro_batches: int = 1,
                 label_smoothing: float = 0.0, class_weights: str = "", bucket_window: int = 0):
        super().__init__()
        self.corpus = corpus
        self.model_config, self.model_extra = dict(model), dict(model_extra or {})
        self.learning_rate, self.lr_schedule = learning_rate, lr_schedule
        self.lr_decay_steps, self.lr_decay_rate = lr_decay_steps, lr_decay_rate
        self.warmup_steps, self.clip_norm = warmup_steps, clip_norm
        self.precision = resolve_precision(precision)  # hparams keep "auto"; this is what runs
        self.num_micro_batches = num_micro_batches
        self.label_smoothing, self.class_weights = label_smoothing, class_weights
        self.bucket_window = bucket_window
        get_model_class(self.model_config["name"])  # an unknown model fails before anything else

    @property
    def supports_jit(self) -> bool:
        """XLA compiles the step unless the model opts out (recurrent layers), bucketing varies
        the shapes (one compilation per shape) or accumulation slices the batch into pieces of
        data-dependent size."""
        model = getattr(self, "model", None)
        return (getattr(model, "jit_compile_default", True) and not self.bucket_window
                and self.num_micro_batches == 1)

    def build(self) -> None:
        if self.precision == "mixed_float16" and tf.distribute.has_strategy():
            raise ConfigError("train.precision = mixed_float16 (loss scaling) is not supported "
                              "with a distribution strategy; use mixed_bfloat16 or float32")
        self.model = self.create_model()
        if hasattr(self.model, "adapt") and "train" in self.corpus.splits:
            # State a model learns from the training split (an n-gram vocabulary, IDF weights,
            # per-class ratios when its adapt() takes the labels), kept in non-trainable weights;
            # a resumed or evaluated run restores it afterwards.
            x, y = self.corpus.splits["train"]
            takes_labels = "labels" in inspect.signature(self.model.adapt).parameters
            self.model.adapt(x, vocab=self.corpus.vocab, **({"labels": y} if takes_labels else {}))
        self.optimizer = make_optimizer(learning_rate=make_learning_rate(self),
                                        clip_norm=self.clip_norm, precision=self.precision)
        # Slots created inside the first trace would force a second trace: build them now.
        self.optimizer.build(self.model.trainable_variables)
        weights = class_weights(self.class_weights, self.corpus.splits["train"][1],
                                len(self.corpus.labels)) if "train" in self.corpus.splits else None
        self.loss_fn = make_loss_fn(label_smoothing=self.label_smoothing, weights=weights)

    def create_model(self) -> keras.Model:
        """The configured model for the corpus, built, its layers computing in `precision`."""
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(self.precision)  # layers take the policy when created
        try:
            model = create_model(self.model_config, vocab_size=self.corpus.vocab_size,
                                 num_classes=len(self.corpus.labels), data_kind=self.corpus.kind,
                                 extra=self.model_extra)
            return build_model(model, self.corpus.example_shape, self.corpus.dtype)
        finally:
            keras.config.set_dtype_policy(previous)

    def objective(self, batch, *, training: bool, num_slices=1):
        """The training objective of `batch` (a float32 scalar) and the float32 logits: the batch
        mean of the per-example loss (label smoothing and class weights included) plus the model's
        losses. The step (each micro-batch too), the histogram probe and the benchmark's bare loop
        all compute it here.

        Args:
            batch: `(x, y)`, the whole batch or one of `num_slices` slices of it.
            training: the model's mode (dropout on or off).
            num_slices: a slice of a batch accumulated in that many pieces carries `1/num_slices`
                of the model's losses (its examples' losses are already divided by the global
                batch size), so the slices add up to the batch's objective.
        """
        x, y = batch
        logits = tf.cast(self.model(x, training=training), tf.float32)
        extra = model_losses(self.model)
        if not (isinstance(num_slices, int) and num_slices == 1):
            extra = extra / tf.cast(num_slices, tf.float32)
        return batch_mean(self.loss_fn(y, logits)) + extra, logits

    def train_step(self, batch):
        x, y = batch
        variables = self.model.trainable_variables
        if self.num_micro_batches > 1:
            loss, accuracy, gradients = self._accumulated_gradients(x, y)
        else:
            with tf.GradientTape() as tape:
                loss, logits = self.objective(batch, training=True)
                scaled = self.optimizer.scale_loss(loss)  # loss scaling under mixed_float16
            gradients = tape.gradient(scaled, variables)
            accuracy = batch_mean(_correct(y, logits))
        grad_norm = apply_gradients(self.optimizer, gradients, variables)
        return {"loss": loss, "accuracy": accuracy, "grad_norm": grad_norm}

    def _accumulated_gradients(self, x, y):
        """The batch's objective, accuracy and gradients, one slice at a time.

        Each slice contributes its examples' losses as a share of the whole batch (`batch_mean`
        divides by the global batch size, not the slice's) plus its share of the model's losses,
        so the slices add up to the batch's own objective and gradients. Slices are
        `ceil(batch / num_micro_batches)` examples, and a small last batch gets fewer slices
        rather than empty ones (an empty batch would give batch norm NaNs).
        """
        variables = self.model.trainable_variables
        batch = tf.shape(y)[0]
        # At least 1: a replica's slice of a small last batch can be empty.
        size = tf.maximum((batch + self.num_micro_batches - 1) // self.num_micro_batches, 1)
        num_slices = (batch + size - 1) // size
        loss, accuracy = tf.constant(0.0), tf.constant(0.0)
        gradients = [tf.zeros_like(v) for v in variables]
        for i in tf.range(num_slices):
            xs, ys = x[i * size:(i + 1) * size], y[i * size:(i + 1) * size]
            with tf.GradientTape() as tape:
                part, logits = self.objective((xs, ys), training=True, num_slices=num_slices)
                scaled = self.optimizer.scale_loss(part)
            grads = tape.gradient(scaled, variables,
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
            gradients = [summed + tf.convert_to_tensor(g) for summed, g in zip(gradients, grads)]
            loss += part
            accuracy += batch_mean(_correct(ys, logits))
        return loss, accuracy, gradients

    def eval_step(self, batch):
        x, y = batch
        logits = tf.cast(self.model(x, training=False), tf.float32)
        return {"loss": cross_entropy(y, logits), "accuracy": _correct(y, logits)}

    # ------------------------------------------------------------------ data
    def _source(self, split: str):
        if split not in self.corpus.splits:
            return None
        x, y = self.corpus.splits[split]
        lengths = None
        if self.bucket_window:  # cached with the encoded text, or measured here
            cached = self.corpus.lengths or {}
            lengths = cached[split] if split in cached else text_lengths(x)
        return ArraySource((x, y), lengths=lengths, bucket_window=self.bucket_window)

    def train_data(self):
        return self._source("train")

    def val_data(self):
        return self._source("val")

    def test_data(self):
        return self._source("test")

    def serve(self, inputs):
        """Exported arrays classifier: the label names and the probabilities (labels.txt order)."""
        probabilities = tf.nn.softmax(tf.cast(self.model(inputs, training=False), tf.float32))
        labels = tf.constant(list(self.corpus.labels), tf.string)
        return {"label": tf.gather(labels, tf.argmax(probabilities, axis=-1)),
                "probabilities": probabilities}

    def identity(self) -> dict[str, Any]:
        """The model, the input encoding, the vocabulary and the labels: what the weights mean."""
        return {"model": model_identity({**self.model_config, **self.model_extra}),
                "example_shape": list(self.corpus.example_shape), "vocab": self.corpus.vocab,
                "labels": list(self.corpus.labels)}


# Model keys added after runs were saved, at the value that reproduces those runs (migrations.MIGRATIONS).
_ADDED_LATER = {key.split(".", 1)[1]: value for key, value in MIGRATIONS.items()
                if key.startswith("model.")}


def model_identity(model_config: dict[str, Any]) -> dict[str, Any]:
    """The model's part of the identity: its config without the keys added later that hold the
    value of the runs saved before them, so that upgrading looptrain keeps those runs' checkpoints
    theirs (a new key at another value is another model)."""
    return {key: value for key, value in model_config.items()
            if key not in _ADDED_LATER or value != _ADDED_LATER[key]}


def _correct(labels, logits) -> tf.Tensor:
    """1.0 where the arg-max prediction equals the label, else 0.0 (float32 `[batch]`)."""
    hits = tf.equal(tf.argmax(logits, axis=-1, output_type=labels.dtype), labels)
    return tf.cast(hits, tf.float32)

