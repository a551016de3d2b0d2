"""TensorBoard inspection of training: graph, config text, hparams, histograms, model summary."""

import io

import numpy as np
import pytest
import tensorflow as tf
from rich.console import Console

from looptrain.app.experiment import train_and_evaluate
from looptrain.callbacks.progress import Display


def read_events(logdir):
    """{(tag, plugin): [(step, value)]} plus the number of graph_def events, from event files."""
    values, graphs = {}, 0
    for path in sorted(logdir.glob("events.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            graphs += bool(event.graph_def)
            for value in event.summary.value:
                key = (value.tag, value.metadata.plugin_data.plugin_name)
                values.setdefault(key, []).append((event.step, value))
    return values, graphs


def test_training_writes_graph_config_hparams_and_histograms(trained_run):
    train, graphs = read_events(trained_run / "logs" / "train")
    assert graphs == 1
    graph = tf.compat.v1.GraphDef()
    for path in (trained_run / "logs" / "train").glob("events.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            if event.graph_def:
                graph.ParseFromString(event.graph_def)
    assert any(node.op == "Conv2D" for node in graph.node)  # the model's forward pass

    (step, config_text), = train[("config", "text")]
    assert step == 0 and "train.histogram_every" in tf.make_ndarray(config_text.tensor).item().decode()

    weights = [tag for tag, plugin in train if plugin == "histograms" and tag.startswith("weights/")]
    gradients = [tag for tag, plugin in train if plugin == "histograms" and tag.startswith("gradients/")]
    assert len(weights) == len(gradients) == 7  # embedding, conv (2), fc (2), logits (2)
    assert [s for s, _ in train[(weights[0], "histograms")]] == [20, 40, 60]
    norms = train[("norms/gradient/global", "scalars")]
    assert [s for s, _ in norms] == [20, 40, 60]
    assert all(float(tf.make_ndarray(v.tensor)) > 0 for _, v in norms)

    root, _ = read_events(trained_run / "logs")
    (_, start), = root[("_hparams_/session_start_info", "hparams")]
    from tensorboard.plugins.hparams import plugin_data_pb2

    data = plugin_data_pb2.HParamsPluginData.FromString(start.metadata.plugin_data.content)
    hparams = data.session_start_info.hparams
    # One session per run, named by its directory (not a hash shared by runs of one config).
    assert data.session_start_info.group_name == trained_run.name
    assert hparams["model.embedding_dim"].number_value == 8
    assert hparams["model.name"].string_value == "textcnn"
    (_, experiment), = root[("_hparams_/experiment", "hparams")]
    metrics = plugin_data_pb2.HParamsPluginData.FromString(
        experiment.metadata.plugin_data.content).experiment.metric_infos
    assert [(m.name.tag, m.name.group, m.display_name) for m in metrics] == [
        ("accuracy", "val", "val/accuracy"), ("best_accuracy", "val", "best/accuracy"),
        ("loss", "val", "val/loss"), ("accuracy", "test", "test/accuracy")]
    # The experiment lists the columns a user compares first, first, and flags the five the
    # dashboard shows by default (it sorts flagged ones first).
    infos = plugin_data_pb2.HParamsPluginData.FromString(
        experiment.metadata.plugin_data.content).experiment.hparam_infos
    assert [h.name for h in infos][:4] == ["model.name", "train.learning_rate", "train.batch_size",
                                           "data.seq_length"]
    assert {h.name for h in infos if h.differs} == {
        "model.name", "train.learning_rate", "train.batch_size", "data.seq_length",
        "train.num_epochs"}

    val, _ = read_events(trained_run / "logs" / "val")
    accuracy = [float(tf.make_ndarray(v.tensor)) for _, v in val[("accuracy", "scalars")]]
    best = [float(tf.make_ndarray(v.tensor)) for _, v in val[("best_accuracy", "scalars")]]
    assert best == list(np.maximum.accumulate(accuracy))
    # Training and validation values under the same tags (Keras' layout): one chart each.
    assert {("loss", "scalars"), ("accuracy", "scalars")} <= set(train) & set(val)
    assert not [tag for tag, _ in [*train, *val] if tag.startswith(("train/", "val/"))]


def test_histograms_off_change_nothing_else_and_the_summary_counts_parameters(
        trained_run, tiny_config, tmp_path):
    out = io.StringIO()
    run = tmp_path / "run"
    # The shared run is this config with histograms every 20 steps.
    train_and_evaluate(tiny_config, run, display=Display(Console(file=out, width=120)))
    train, _ = read_events(run / "logs" / "train")
    assert not [tag for tag, plugin in train if plugin == "histograms"]
    assert not [tag for tag, _ in train if tag.startswith("norms/")]

    # The gradient probe draws no random numbers and changes no weight: both runs end equal.
    ours = tf.train.latest_checkpoint(str(run / "checkpoints"))
    shared = tf.train.latest_checkpoint(str(trained_run / "checkpoints"))
    for name, _ in tf.train.list_variables(ours):
        if name.startswith("task/model/") or name.startswith("untracked/"):
            np.testing.assert_array_equal(tf.train.load_variable(ours, name),
                                          tf.train.load_variable(shared, name), err_msg=name)

    V = len((run / "vocab.txt").read_text(encoding="utf-8").split("\n")) - 1
    m = tiny_config.model
    E, F, k, H, C = m.embedding_dim, m.num_filters, m.kernel_size, m.hidden_dim, 10
    total = V * E + (k * E * F + F) + (F * H + H) + (H * C + C)
    text = out.getvalue()
    assert f"{total:,} trainable" in text and f"model textcnn: {total:,} parameters" in text
    assert f"{V * E:,}" in text and f"{k * E * F + F:,}" in text  # per-layer rows
    assert f"model textcnn: {total:,} parameters" in (run / "train.log").read_text(encoding="utf-8")


def test_gradient_probe_is_traced_once(trained_run):
    import tensorflow as tf

    from conftest import given_task
    from looptrain.app.trained import load_trained
    from looptrain.callbacks.histograms import Histograms
    from looptrain.engine.summaries import SummaryWriter
    from looptrain.tasks.classification import make_optimizer

    trained = load_trained(trained_run)
    task = given_task(trained.model, make_optimizer(learning_rate=1e-3, clip_norm=0.0))
    x = np.ones((4, trained.config.data.seq_length), np.int32)
    writer = SummaryWriter(trained_run.parent / "probe-logs")
    probe = Histograms(task, writer, 1, probe_batch=(tf.constant(x), tf.zeros([4], tf.int32)))
    write = tf.function(lambda step: probe.in_call(step, {}))
    try:
        write(tf.constant(1, tf.int64))
        write(tf.constant(2, tf.int64))
    finally:
        writer.close()
    assert probe.gradients.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("value, ok", [(0, True), (5, True), (-1, False)])
def test_histogram_every_is_validated(tiny_config, value, ok):
    from looptrain.errors import ConfigError

    if ok:
        assert tiny_config.replace({"train.histogram_every": value}).train.histogram_every == value
    else:
        with pytest.raises(ConfigError, match="'train.histogram_every' must be >= 0"):
            tiny_config.replace({"train.histogram_every": value})
