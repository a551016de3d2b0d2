"""End-to-end tests through `train_and_evaluate`, the function the train script calls."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_same_variables, snapshot
from summaries import read_scalars
from rich.console import Console

from looptrain.errors import RunDirError
from looptrain.app.experiment import train_and_evaluate
from looptrain.callbacks.progress import Display


def test_tiny_run_leaves_a_complete_run_directory(tiny_config, tmp_path, quiet_display):
    run = tmp_path / "run"
    result = train_and_evaluate(tiny_config, run, display=quiet_display)
    assert result.step == tiny_config.train.max_steps == 60 and result.stop_reason == "max_steps"
    saved = json.loads((run / "config.json").read_text())
    assert saved["data"]["data_dir"] == tiny_config.data.data_dir
    assert Path(saved["data"]["data_dir"]).is_absolute()
    vocab = (run / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    train_text = "".join(line.split("\t", 1)[1] for line in
                         (Path(tiny_config.data.data_dir) / "train.txt").read_text().splitlines())
    # <PAD> plus every training character: this small corpus has fewer than vocab_size - 1.
    assert vocab[0] == "<PAD>" and sorted(vocab[1:]) == sorted(set(train_text))
    assert len(vocab) < tiny_config.data.vocab_size
    labels = (run / "labels.txt").read_text(encoding="utf-8").split()
    assert len(labels) == 10 and labels == sorted(labels)
    assert (run / "checkpoints" / "checkpoint").is_file()
    assert sorted((p.name for p in (run / "checkpoints").glob("ckpt-*.index")),
                  key=lambda n: int(n[5:-6])) == [
        "ckpt-0.index", "ckpt-20.index", "ckpt-40.index", "ckpt-60.index"]
    assert tf.train.latest_checkpoint(str(run / "best")) is not None

    scalars = read_scalars(run / "logs")
    assert {"train/loss", "train/accuracy", "train/learning_rate", "val/loss", "val/accuracy"} <= set(scalars)
    assert [s for s, _ in scalars["val/accuracy"]] == [20, 40, 60]
    assert [s for s, _ in scalars["train/loss"]] == list(range(5, 61, 5))
    assert list((run / "logs" / "val").glob("events.*")) and list((run / "logs" / "train").glob("events.*"))
    # The model learned something: validation accuracy well above chance (10 classes).
    assert max(v for _, v in scalars["val/accuracy"]) > 0.3

    # best/ holds the first step with the highest validation accuracy, and says so.
    log = (run / "train.log").read_text(encoding="utf-8").splitlines()
    assert "started" in log[0] and "TensorFlow 2.21" in log[0]
    assert [line.split()[3] for line in log if " step " in line[:30]] == ["20", "40", "60"]
    assert log[-1].split(" ", 2)[2].startswith("finished at step 60 (") and ") in " in log[-1]

    best = json.loads((run / "best" / "best.json").read_text())
    accs = scalars["val/accuracy"]
    top = max(v for _, v in accs)
    assert best["step"] == next(s for s, v in accs if v == top) == result.best_step
    assert best["val_accuracy"] == pytest.approx(top)


def test_best_copy_is_written_only_on_improvement(tiny_config, tmp_path, quiet_display):
    # A vanishing learning rate freezes the weights: only the first evaluation can improve.
    config = tiny_config.replace({"train.learning_rate": 1e-12, "train.patience": 1000})
    run = tmp_path / "run"
    train_and_evaluate(config, run, display=quiet_display)
    assert sorted(p.name for p in (run / "best").glob("best-*.index")) == ["best-20.index"]
    assert json.loads((run / "best" / "best.json").read_text())["step"] == 20


def test_early_stopping_stops_after_patience_steps(tiny_config, tmp_path, quiet_display):
    config = tiny_config.replace({"train.learning_rate": 1e-12, "train.patience": 20,
                                  "train.eval_every": 10, "train.max_steps": 200})
    result = train_and_evaluate(config, tmp_path / "run", display=quiet_display)
    # best at the first evaluation (step 10); 20 steps later, at step 30, it stops.
    assert (result.stop_reason, result.step, result.best_step) == ("early_stopping", 30, 10)
    assert tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints")).endswith("ckpt-30")


def test_resume_continues_at_the_saved_step(tiny_config, tmp_path, quiet_display, tiny_run):
    run = tmp_path / "run"
    # 37 steps stops mid-epoch (16 batches per epoch) with the last checkpoint at 37.
    first = train_and_evaluate(tiny_config.replace({"train.max_steps": 37}), run, display=quiet_display)
    assert first.step == 37
    ckpt37 = tf.train.latest_checkpoint(str(run / "checkpoints"))
    assert tf.train.load_variable(ckpt37, "task/optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 37
    # 250 examples in batches of 16: 16 batches per epoch, so step 37 = epoch 2, batch 5.
    assert tf.train.load_variable(ckpt37, "data_position/epoch/.ATTRIBUTES/VARIABLE_VALUE") == 2
    assert tf.train.load_variable(ckpt37, "data_position/batch/.ATTRIBUTES/VARIABLE_VALUE") == 5

    resumed = train_and_evaluate(tiny_config.replace({"train.max_steps": 60}), run, resume=True,
                                 display=quiet_display)
    assert (resumed.step, resumed.steps_run) == (60, 23)
    ckpt60 = tf.train.latest_checkpoint(str(run / "checkpoints"))
    assert ckpt60.endswith("ckpt-60")
    assert tf.train.load_variable(ckpt60, "task/optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 60
    assert tf.train.load_variable(ckpt60, "step/.ATTRIBUTES/VARIABLE_VALUE") == 60

    # The resumed run ends exactly where an uninterrupted run ends: same data order, dropout
    # masks, optimizer state and early-stopping state, variable for variable.
    names = assert_same_variables(ckpt60, tf.train.latest_checkpoint(str(tiny_run / "checkpoints")))
    assert any(n.startswith("untracked/") for n in names)
    assert any(n.startswith("task/optimizer/_variables/") for n in names)


class _InterruptAt(Display):
    """A display that raises KeyboardInterrupt when the loop reports `step`, like a Ctrl-C."""

    def __init__(self, step):
        super().__init__(Console(file=io.StringIO()))
        self.at = step

    def on_call_end(self, loop, result):
        if loop.step == self.at:
            raise KeyboardInterrupt
        super().on_call_end(loop, result)


def test_a_run_interrupted_before_its_first_checkpoint_resumes_from_step_0(
        tiny_config, tmp_path, quiet_display):
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(tiny_config, run, display=_InterruptAt(10))
    assert tf.train.latest_checkpoint(str(run / "checkpoints")).endswith("ckpt-0")
    resumed = train_and_evaluate(tiny_config.replace({"train.max_steps": 20}), run, resume=True,
                                 display=quiet_display)
    assert (resumed.step, resumed.steps_run) == (20, 20)


def test_fresh_start_refuses_an_existing_run_and_touches_nothing(tiny_config, tmp_path, quiet_display):
    run = tmp_path / "run"
    train_and_evaluate(tiny_config.replace({"train.max_steps": 20}), run, display=quiet_display)
    before = snapshot(run)
    with pytest.raises(RunDirError, match="already holds a run with checkpoints.*--resume"):
        train_and_evaluate(tiny_config, run, display=quiet_display)
    assert snapshot(run) == before


def test_resume_on_different_data_is_refused(tiny_config, corpus_dir, tmp_path, quiet_display):
    run = tmp_path / "run"
    train_and_evaluate(tiny_config.replace({"train.max_steps": 20}), run, display=quiet_display)
    moved = tmp_path / "moved"
    moved.mkdir()
    for split in ("train", "val", "test"):  # the same data elsewhere is fine...
        (moved / f"{split}.txt").write_bytes((corpus_dir / f"{split}.txt").read_bytes())
    config = tiny_config.replace({"train.max_steps": 30, "data.data_dir": str(moved)})
    assert train_and_evaluate(config, run, resume=True, display=quiet_display).step == 30
    # ...one example fewer is not: the step would point at a different position in the stream.
    lines = (moved / "train.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    (moved / "train.txt").write_text("".join(lines[:-1]), encoding="utf-8")
    before = snapshot(run)
    with pytest.raises(RunDirError, match="the train split in .* differs from the data this run"):
        train_and_evaluate(config.replace({"train.max_steps": 40}), run, resume=True,
                           display=quiet_display)
    assert snapshot(run) == before


def test_resume_with_nothing_to_resume_is_an_error(tiny_config, tmp_path, quiet_display):
    with pytest.raises(RunDirError, match="does not exist"):
        train_and_evaluate(tiny_config, tmp_path / "none", resume=True, display=quiet_display)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirError, match="nothing to resume"):
        train_and_evaluate(tiny_config, tmp_path / "empty", resume=True, display=quiet_display)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_textrnn_trains_and_resumes_through_the_same_loop(tiny_config, tmp_path, quiet_display, cell):
    config = tiny_config.replace({"model.name": "textrnn", "model.rnn_cell": cell,
                                  "model.hidden_dim": 8, "data.seq_length": 32,
                                  "train.max_steps": 10, "train.eval_every": 5,
                                  "train.checkpoint_every": 5, "data.bucket_window": 4})
    run = tmp_path / "run"
    assert train_and_evaluate(config, run, display=quiet_display).step == 10
    resumed = train_and_evaluate(config.replace({"train.max_steps": 15}), run, resume=True,
                                 display=quiet_display)
    assert (resumed.step, resumed.steps_run) == (15, 5)
    if cell == "lstm":  # bucketed batches resume exactly too (once is enough: RNNs trace slowly)
        train_and_evaluate(config.replace({"train.max_steps": 15}), tmp_path / "straight",
                           display=quiet_display)
        assert_same_variables(tf.train.latest_checkpoint(str(run / "checkpoints")),
                              tf.train.latest_checkpoint(str(tmp_path / "straight" / "checkpoints")))
    # The model-only best/ copy holds the recurrent weights (not only the optimizer's references).
    names = [n for n, _ in tf.train.list_variables(tf.train.latest_checkpoint(str(run / "best")))]
    assert [n for n in names if n.startswith("task/model/rnn_")] == [
        f"task/model/rnn_{i}/cell/{w}/.ATTRIBUTES/VARIABLE_VALUE"
        for i in (0, 1) for w in ("bias", "kernel", "recurrent_kernel")]


def test_steps_per_loop_changes_no_cadence_and_no_result(tiny_config, tmp_path, quiet_display,
                                                         tiny_run):
    # Calls of 3,2,3,2... steps against the default run's calls ending at each event (every 5).
    runs = {3: tmp_path / "spl3", 100: tiny_run}
    train_and_evaluate(tiny_config.replace({"train.steps_per_loop": 3}), runs[3], display=quiet_display)
    scalars = read_scalars(runs[3] / "logs")
    assert [s for s, _ in scalars["train/loss"]] == list(range(5, 61, 5))
    assert [s for s, _ in scalars["val/accuracy"]] == [20, 40, 60]
    reference = read_scalars(runs[100] / "logs")  # metric sums are added per call: float order
    assert scalars.keys() == reference.keys()
    for tag, points in scalars.items():
        assert [s for s, _ in points] == [s for s, _ in reference[tag]], tag
        np.testing.assert_allclose([v for _, v in points], [v for _, v in reference[tag]],
                                   rtol=1e-5, err_msg=tag)
    assert_same_variables(tf.train.latest_checkpoint(str(runs[3] / "checkpoints")),
                          tf.train.latest_checkpoint(str(runs[100] / "checkpoints")))
