"""Inspection of a training run: the model summary in the terminal and what TensorBoard shows
beyond the scalars.

At the start of a run: a parameter table on the terminal (and the total in `train.log`); the resolved
config as text; the model's inference graph (Graphs dashboard); an hparams record (config values ->
`val/best_accuracy`, `val/accuracy`, `test/accuracy`; HParams dashboard). Every `histogram_every`
steps: histograms of every weight and of its gradient, and the gradient norms as scalars.

The gradients come from a separate compiled function on a fixed probe batch (the first
`batch_size` training examples in file order), called only on histogram steps, so ordinary steps pay
nothing and the train step's trace is untouched. The probe runs with dropout off
(`training=False`): with it on, it would draw from the dropout seed generators, and switching
histograms on would change what training does.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from rich.table import Table
from tensorboard.plugins.hparams import api as hp

from looptrain.config import Config
from looptrain.train.summaries import SummaryWriter

# Metrics the HParams dashboard shows next to each run's config (tag, group = logs subdirectory).
HPARAM_METRICS = (("val/best_accuracy", "val"), ("val/accuracy", "val"), ("test/accuracy", "test"))


def parameter_table(model: keras.Model, title: str) -> Table:
    """One row per layer (weights, parameters) and the totals, as a rich table."""
    table = Table(title=title, title_justify="left")
    for name, justify in (("layer", "left"), ("type", "left"), ("weights", "left"),
                          ("parameters", "right")):
        table.add_column(name, justify=justify)
    layers = model.layers
    for i, layer in enumerate(layers):
        shapes = ", ".join("x".join(map(str, w.shape)) for w in layer.weights) or "-"
        table.add_row(layer.name, type(layer).__name__, shapes, f"{layer.count_params():,}",
                      end_section=i == len(layers) - 1)
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    table.add_row("total", "", f"{trainable:,} trainable", f"{model.count_params():,}")
    return table


def config_markdown(config: Config) -> str:
    """The resolved config as a Markdown table (TensorBoard's text dashboard renders it)."""
    lines = ["| key | value |", "|---|---|"]
    lines += [f"| `{key}` | `{value!r}` |" for key, value in flat_config(config).items()]
    return "\n".join(lines)


def flat_config(config: Config) -> dict[str, object]:
    """`{"data.seq_length": 600, ...}` for every config key."""
    return {f"{section}.{key}": value for section, values in config.to_dict().items()
            for key, value in values.items()}


def write_run_start(writer: SummaryWriter, config: Config, model: keras.Model, *, step: int,
                    input_spec: tf.TensorSpec) -> None:
    """Config text at `step`; at a run's start (step 0) also the model graph and the hparams.

    The hparams trial id is left to TensorBoard (a hash of the values): runs with identical configs
    form one session group in the HParams dashboard, which is what a repeated run is.
    """
    writer.text(step, "train/config", config_markdown(config))
    if step:
        return
    forward = tf.function(lambda inputs: model(inputs, training=False)).get_concrete_function(
        input_spec)
    with writer.as_default("train"):
        tf.summary.graph(forward.graph)
    values = flat_config(config)
    with writer.as_default(""):
        hp.hparams_config(hparams=[hp.HParam(key) for key in values],
                          metrics=[hp.Metric(tag, group=group) for tag, group in HPARAM_METRICS])
        hp.hparams(values)
    writer.flush()


class HistogramProbe:
    """Writes weight and gradient histograms (and gradient norms) of a model on a fixed batch.

    Gradients, histograms and norms are one compiled call that writes straight into the summary
    file: pulling a dozen tensors to numpy and back cost a fast model (the tiny MLP) a fifth of
    its speed at one probe per 100 steps.
    """

    def __init__(self, model: keras.Model, x: np.ndarray, y: np.ndarray):
        self.model = model
        self.x, self.y = tf.constant(x), tf.constant(y)
        self.gradients = tf.function(self._gradients)
        self._writes: dict[int, tf.types.experimental.GenericFunction] = {}

    def _gradients(self, x, y):
        with tf.GradientTape() as tape:
            logits = tf.cast(self.model(x, training=False), tf.float32)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
            if self.model.losses:
                loss += tf.add_n(self.model.losses)
        gradients = tape.gradient(loss, self.model.trainable_variables)
        # The embedding's gradient is sparse (IndexedSlices): densify for the histogram.
        return [tf.convert_to_tensor(g) for g in gradients]

    def write(self, writer: SummaryWriter, step: int) -> None:
        """Writes the histograms and norms at `step` into `writer`'s `train` split."""
        if id(writer) not in self._writes:  # one trace per writer (its resource is captured)
            self._writes[id(writer)] = tf.function(lambda step: self.record(writer, step))
        self._writes[id(writer)](tf.constant(step, tf.int64))

    def record(self, writer: SummaryWriter, step) -> None:
        """`write` inside the tf.function being traced (the training loop's call, `train.call`)."""
        variables = self.model.trainable_variables
        gradients = self.gradients(self.x, self.y)
        # Tags take the enclosing name scope (a tf.cond branch's is "cond/"): start at the top.
        with writer.as_default("train"), tf.name_scope(""):
            for variable, gradient in zip(variables, gradients):
                tf.summary.histogram(f"train/weights/{variable.path}", variable, step=step)
                tf.summary.histogram(f"train/gradients/{variable.path}", gradient, step=step)
                tf.summary.scalar(f"train/gradient_norm/{variable.path}", tf.norm(gradient),
                                  step=step)
            tf.summary.scalar("train/gradient_norm/global", tf.linalg.global_norm(gradients),
                              step=step)


def make_histogram_probe(model: keras.Model, x_train: np.ndarray, y_train: np.ndarray,
                         batch_size: int) -> HistogramProbe:
    """The probe on the first `batch_size` training examples."""
    return HistogramProbe(model, x_train[:batch_size], y_train[:batch_size])
