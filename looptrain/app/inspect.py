"""What a run shows at its start: the model summary in the terminal, and in TensorBoard the
resolved config as text, the model's inference graph (Graphs dashboard) and an hparams record
(one session per run, named by its directory: config values -> `val/accuracy`, `best/accuracy`,
`val/loss`, `test/accuracy` for a run monitoring `val/accuracy`; HParams dashboard).

`RunStart` is the callback the command line adds to `lt.fit`; the histograms are the loop's own
(`callbacks.histograms`).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from rich.table import Table
from tensorboard.plugins.hparams import api as hp, plugin_data_pb2, summary_v2

from looptrain.config import Config
from looptrain.engine.callback import Callback
from looptrain.engine.summaries import SummaryWriter

# The config keys the HParams dashboard shows first (it shows the first few columns by default):
# what a user compares runs by. A user task's own arguments (`task.*`) come before them.
FIRST_HPARAMS = ("model.name", "train.learning_rate", "train.batch_size", "data.seq_length",
                 "train.num_epochs", "train.max_steps", "model.dropout", "train.seed")


def hparam_metrics(monitor: str) -> list[hp.Metric]:
    """The metrics the HParams dashboard shows next to each run's config, for the run's monitor
    (`val/accuracy` -> `val/accuracy`, `best/accuracy`, `val/loss`, `test/accuracy`): each the
    tag `name` of the `logs/<split>` events (see `engine.summaries`), with a clean display name."""
    split, _, name = monitor.partition("/")
    metrics = [hp.Metric(name, group=split, display_name=f"{split}/{name}"),
               hp.Metric(f"best_{name}", group=split, display_name=f"best/{name}")]
    if name != "loss":
        metrics.append(hp.Metric("loss", group=split, display_name=f"{split}/loss"))
    metrics.append(hp.Metric(name, group="test", display_name=f"test/{name}"))
    return metrics


# TensorBoard's HParams table shows 5 columns by default: the first 5 after sorting the hparams by
# "values differ between runs" (true first), then by name; with an experiment record nothing is
# computed and every flag is false, so the five would be the alphabetical `data.*` keys. The
# record marks the first `SHOWN` of `ordered_hparams` instead.
SHOWN = 5


def experiment_summary(values: dict[str, object], metrics: list[hp.Metric]) -> bytes:
    """The serialized HParams experiment record (`hp.hparams_config`'s) of `values`' keys and
    `metrics`, its first `SHOWN` keys flagged to be the dashboard's default columns."""
    summary = summary_v2.hparams_config_pb(hparams=[hp.HParam(key) for key in values],
                                           metrics=metrics)
    value = summary.value[0]
    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
    shown = list(values)[:SHOWN]
    for info in data.experiment.hparam_infos:
        info.differs = info.name in shown
    value.metadata.plugin_data.content = data.SerializeToString()
    return summary.SerializeToString()


def ordered_hparams(values: dict[str, object]) -> dict[str, object]:
    """`values` with `FIRST_HPARAMS`, then the rest; a user task's path and arguments (`task.*`)
    before all of them (the model and data keys are the built-in classifier's)."""
    task = [key for key in values if key.startswith("task.")] if values.get("task.path") else []
    first = [*task, *(key for key in FIRST_HPARAMS if key in values)]
    return {key: values[key] for key in [*first, *(k for k in values if k not in first)]}


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
                    input_spec: tf.TensorSpec | None, run_name: str = "",
                    monitor: str = "val/accuracy") -> None:
    """Config text at `step`; at a run's start (step 0) also the model graph (when `input_spec`
    is given) and the hparams.

    The hparams session is named `run_name` (the run directory's name): the HParams dashboard
    shows one row per run, even for runs of the same config (with TensorBoard's default, a hash
    of the values, such runs collapsed into one row whose metrics were averaged).
    """
    writer.text(step, "train/config", config_markdown(config))
    if step:
        return
    if input_spec is not None:
        forward = tf.function(lambda inputs: model(inputs, training=False)).get_concrete_function(
            input_spec)
        with writer.as_default("train"):
            tf.summary.graph(forward.graph)
    values = ordered_hparams(flat_config(config))
    with writer.as_default(""):
        with tf.summary.experimental.summary_scope("hparams_config"):
            tf.summary.experimental.write_raw_pb(
                experiment_summary(values, hparam_metrics(monitor)), step=0)
        hp.hparams(values, trial_id=run_name or None)
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
        best = getattr(self.display, "best", None)
        write_run_start(loop.writer, self.config, model, step=loop.step, input_spec=spec,
                        run_name=loop.run_path.name,
                        monitor=best.monitor if best is not None else "val/accuracy")
