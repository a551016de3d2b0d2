"""What a run shows at its start: the model summary in the terminal, and in TensorBoard the
resolved config as text, the model's inference graph (Graphs dashboard) and an hparams record
(config values -> `val/best_accuracy`, `val/accuracy`, `test/accuracy`; HParams dashboard).

`RunStart` is the callback the command line adds to `lt.fit`; the histograms are the loop's own
(`callbacks.histograms`).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from rich.table import Table
from tensorboard.plugins.hparams import api as hp

from looptrain.config import Config
from looptrain.engine.callback import Callback
from looptrain.engine.summaries import SummaryWriter

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
    return {f"{section}.{key}": value if isinstance(value, (bool, int, float, str)) else repr(value)
            for section, values in config.to_dict().items() for key, value in values.items()}


def write_run_start(writer: SummaryWriter, config: Config, model: keras.Model | None, *, step: int,
                    input_spec: tf.TensorSpec | None) -> None:
    """Config text at `step`; at a run's start (step 0) also the model graph (when `input_spec`
    is given) and the hparams.

    The hparams trial id is left to TensorBoard (a hash of the values): runs with identical configs
    form one session group in the HParams dashboard, which is what a repeated run is.
    """
    writer.text(step, "train/config", config_markdown(config))
    if step:
        return
    if input_spec is not None:
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


class RunStart(Callback):
    """At the start of every session: a parameter table per model of the task on the terminal
    (the total in `train.log`) and the config into TensorBoard; at a run's first start also the
    graph of `model` on `input_spec` (when given) and the hparams.

    Args:
        config: the run's resolved config.
        display: the display whose console and log it uses.
        input_spec: the spec of a batch of model inputs, for the graph (None: no graph).
    """

    def __init__(self, config: Config, display, input_spec: tf.TensorSpec | None = None):
        self.config, self.display, self.input_spec = config, display, input_spec

    def on_fit_begin(self, loop) -> None:
        models = {name: value for name, value in vars(loop.task).items()
                  if isinstance(value, keras.Model)}
        for name, model in models.items():
            title = f"model {self.config.model.name}" if name == "model" and not \
                self.config.task_path else f"{type(loop.task).__name__}.{name}"
            self.display.console.print(parameter_table(model, title))
            self.display.log(f"{title}: {model.count_params():,} parameters")
        model = models.get("model")
        spec = self.input_spec if model is not None else None
        write_run_start(loop.writer, self.config, model, step=loop.step, input_spec=spec)
