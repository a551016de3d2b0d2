"""Evaluation of a finished (or running) run on one of its splits, and the report it leaves behind.

Restores the best (default) or latest checkpoint into a freshly built model, with the run's own
vocabulary and labels, and streams the split through one compiled graph loop that accumulates the
loss and a confusion matrix batch by batch: no prediction is ever held for the whole split. The
classification report (`looptrain.report`) is derived from that matrix and saved as
`RUN/eval/report.json`, `report.txt` and `confusion_matrix.png`, and into TensorBoard
(`RUN/logs/<split>`: the confusion-matrix image, the report as text, test loss and accuracy).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from looptrain.app.report import Report, format_text, markdown
from looptrain.app.report_image import CARD, axis_names, confusion_matrix_image
from looptrain.app.experiment import make_user_task
from looptrain.app.trained import load_trained
from looptrain.data.corpus import load_corpus
from looptrain.data.pipeline import make_eval_dataset, text_lengths
from looptrain.engine.checkpoint import find_checkpoint
from looptrain.engine.evaluation import scalars
from looptrain.engine.summaries import SummaryWriter
from looptrain.engine.writers import METRICS_FILE, JsonlWriter
from looptrain.errors import UserError
from looptrain.files import remove_stale_temps, write_bytes_atomic, write_text_atomic
from looptrain.run import RunDir
from looptrain.tasks.losses import cross_entropy
from looptrain.evaluation import evaluate_checkpoint

__all__ = ["EvalResult", "evaluate_run", "save_report"]


@dataclass(frozen=True)
class EvalResult:
    """Example-weighted loss and accuracy of `checkpoint` on `num_examples` examples of `split`.

    `confusion[i, j]` counts examples of true label `labels[i]` predicted as `labels[j]`;
    `accuracy` is its trace over its total.
    """

    loss: float
    accuracy: float
    num_examples: int
    checkpoint: str
    seconds: float
    split: str
    labels: list[str]
    confusion: np.ndarray
    step: int  # training step of the checkpoint (0 when its name has none)

    def report(self) -> Report:
        return Report(split=self.split, checkpoint=self.checkpoint, loss=self.loss,
                      labels=self.labels, confusion=self.confusion, seconds=self.seconds)


class ConfusionEvaluator:
    """The example-weighted cross-entropy and the confusion matrix of a model on a dataset of
    `(x, y)` batches, accumulated batch by batch inside one compiled loop."""

    def __init__(self, model: keras.Model, num_classes: int):
        self.model, self.num_classes = model, num_classes
        self.evaluate = tf.function(self._evaluate)

    def _evaluate(self, dataset):
        confusion = tf.zeros([self.num_classes, self.num_classes], tf.int64)
        loss_sum, count = tf.constant(0.0), tf.constant(0.0)
        for x, y in dataset:
            logits = tf.cast(self.model(x, training=False), tf.float32)
            loss_sum += tf.reduce_sum(cross_entropy(y, logits))
            count += tf.cast(tf.size(y), tf.float32)
            confusion += tf.math.confusion_matrix(y, tf.argmax(logits, axis=-1),
                                                  num_classes=self.num_classes, dtype=tf.int64)
        return {"loss": loss_sum / tf.maximum(count, 1.0), "confusion": confusion}


def evaluate_run(run_dir: str | Path, *, checkpoint: str = "best", split: str = "test",
                 data_dir: str | None = None) -> EvalResult:
    """Loss, accuracy and confusion matrix of a run's checkpoint on `split`.

    Raises:
        UserError: the run directory, checkpoint or data is missing or does not match.
    """
    started = time.perf_counter()
    run = RunDir(run_dir)
    run.check_exists()
    config = run.load_config()
    find_checkpoint(run, checkpoint)  # before reading any data: fail fast
    corpus = load_corpus(data_dir or config.data.data_dir, seq_length=config.data.seq_length,
                         vocab_size=config.data.vocab_size, vocab=run.load_vocab(),
                         labels=run.load_labels(), splits=(split,))
    trained = load_trained(run_dir, checkpoint=checkpoint, example_shape=corpus.example_shape,
                           dtype=corpus.dtype)
    x, y = corpus.splits[split]
    lengths = text_lengths(x) if config.data.bucket_window else None
    evaluator = ConfusionEvaluator(trained.model, len(trained.labels))
    values = evaluator.evaluate(make_eval_dataset((x, y), batch_size=config.train.batch_size,
                                                  lengths=lengths))
    confusion = values["confusion"].numpy()
    return EvalResult(loss=float(values["loss"]), accuracy=float(np.trace(confusion) / len(y)),
                      num_examples=len(y), checkpoint=trained.checkpoint,
                      seconds=time.perf_counter() - started, split=split, labels=trained.labels,
                      confusion=confusion, step=trained.step)


def report_paths(run_dir: str | Path, split: str) -> dict[str, Path]:
    """Where `save_report` writes: `RUN/eval/report.json` etc.; a `val` report gets `.val` names."""
    suffix = "" if split == "test" else f".{split}"
    eval_dir = RunDir(run_dir).eval
    return {"json": eval_dir / f"report{suffix}.json", "text": eval_dir / f"report{suffix}.txt",
            "image": eval_dir / f"confusion_matrix{suffix}.png"}


def save_report(run_dir: str | Path, result: EvalResult, *,
                split_scalars: bool = False) -> dict[str, Path]:
    """Writes the report files and the TensorBoard summaries of an evaluation; returns the paths.
    `split_scalars`: the loss and accuracy as scalars for a val evaluation too (the sidecar's)."""
    report = result.report()
    paths = report_paths(run_dir, result.split)
    paths["json"].parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(paths["json"].parent)  # of an evaluation killed while it wrote
    title = (f"{result.split} confusion matrix - accuracy {result.accuracy:.4f} - "
             f"{result.num_examples} examples - {Path(result.checkpoint).name}")
    image = confusion_matrix_image(result.confusion, result.labels, title=title)
    # Each file whole or not at all, and report.json last: a new one means the others are new.
    write_bytes_atomic(paths["image"], tf.io.encode_png(image).numpy())
    write_text_atomic(paths["text"], format_text(report))
    write_text_atomic(paths["json"], json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n")
    # TensorBoard shows images in cards about 320 pixels wide: a picture drawn for that width.
    card = confusion_matrix_image(
        result.confusion, result.labels, style=CARD,
        title=f"{result.split}: accuracy {result.accuracy:.4f}, {result.num_examples} examples")
    _summaries(RunDir(run_dir), result, card, markdown(report),
               with_scalars=split_scalars or result.split == "test")
    return paths


def _summaries(run: RunDir, result: EvalResult, image: np.ndarray, text: str,
               with_scalars: bool) -> None:
    """Image and report text into `RUN/logs/<split>` at the checkpoint's step.

    Test loss and accuracy go in as scalars too (the HParams dashboard shows them next to the
    config); validation scalars are not repeated, training already wrote them at that step.
    """
    _, named = axis_names(result.labels)
    if not named:  # the image numbers the labels: say which number is which
        text += "\n\nThe confusion-matrix image numbers the labels: " + ", ".join(
            f"{i} = {label}" for i, label in enumerate(result.labels))
    writer = SummaryWriter(run.logs)
    split = result.split
    try:
        writer.image(result.step, f"{split}/confusion_matrix", image)
        writer.text(result.step, f"{split}/report", text)
        if with_scalars:
            values = {f"{split}/loss": result.loss, f"{split}/accuracy": result.accuracy}
            writer.scalars(result.step, values)
            _append_metrics(run, result.step, values)
    finally:
        writer.close()


def _append_metrics(run: RunDir, step: int, values: dict[str, float]) -> None:
    """The same scalars into `RUN/metrics.jsonl` (it holds what TensorBoard holds)."""
    writer = JsonlWriter(run.path / METRICS_FILE)
    try:
        writer.write_scalars(step, values)
    finally:
        writer.close()


@dataclass(frozen=True)
class TaskEvalResult:
    """A user task's metrics on one split of its data, with a checkpoint of its run."""

    split: str
    checkpoint: str
    metrics: dict
    seconds: float
    step: int


def evaluate_task_run(run_dir: str | Path, *, checkpoint: str = "best",
                      split: str = "test") -> TaskEvalResult:
    """The metrics of a run of a user task (`task.path`) on its `test_data()` or `val_data()`.

    Raises:
        UserError: the run or checkpoint is missing or of another run, or the task has no such data.
    """
    started = time.perf_counter()
    run = RunDir(run_dir)
    config = run.load_config()
    task = make_user_task(config)
    data = task.test_data() if split == "test" else task.val_data()
    if data is None:
        raise UserError(f"{type(task).__name__}.{split}_data() returns None: the task has no {split} "
                        f"data to evaluate on")
    metrics, path = evaluate_checkpoint(task, data=data, run_dir=run_dir, checkpoint=checkpoint,
                                        batch_size=config.train.batch_size)
    match = re.search(r"-(\d+)$", path)
    return TaskEvalResult(split=split, checkpoint=path, metrics=metrics,
                          seconds=time.perf_counter() - started,
                          step=int(match.group(1)) if match else 0)


def save_task_report(run_dir: str | Path, result: TaskEvalResult) -> Path:
    """`RUN/eval/report[.split].json` and the `<split>/<name>` scalars in TensorBoard."""
    values = scalars(result.metrics, result.split)
    path = report_paths(run_dir, result.split)["json"]
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent)
    report = {"split": result.split, "checkpoint": result.checkpoint, "metrics": values,
              "seconds": result.seconds}
    write_text_atomic(path, json.dumps(report, indent=2) + "\n")
    writer = SummaryWriter(RunDir(run_dir).logs)
    try:
        writer.scalars(result.step, values)
    finally:
        writer.close()
    _append_metrics(RunDir(run_dir), result.step, values)
    return path


def task_table(result: TaskEvalResult):
    """The metrics as a rich table."""
    from rich.table import Table

    table = Table(title=f"{result.split} metrics", title_justify="left",
                  caption=f"{Path(result.checkpoint).name}, {result.seconds:.1f}s", caption_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in scalars(result.metrics, result.split).items():
        table.add_row(key, f"{value:.6g}")
    return table
