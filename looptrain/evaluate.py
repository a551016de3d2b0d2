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
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from looptrain.data.corpus import load_corpus
from looptrain.data.pipeline import make_eval_dataset
from looptrain.files import write_text_atomic
from looptrain.report import Report, format_text, markdown
from looptrain.report_image import axis_names, confusion_matrix_image
from looptrain.run import RunDir
from looptrain.train.step import Evaluator
from looptrain.train.summaries import SummaryWriter
from looptrain.trained import find_checkpoint, load_trained

__all__ = ["EvalResult", "evaluate_run", "find_checkpoint", "save_report"]


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


class ConfusionEvaluator(Evaluator):
    """`Evaluator` that also accumulates the confusion matrix inside its compiled loop."""

    def __init__(self, model: keras.Model, num_classes: int):
        self.num_classes = num_classes
        self.confusion = tf.Variable(tf.zeros([num_classes, num_classes], tf.int64), trainable=False)
        super().__init__(model)

    def _batch_fn(self, x, y):
        logits = super()._batch_fn(x, y)
        self.confusion.assign_add(tf.math.confusion_matrix(
            y, tf.argmax(logits, axis=-1), num_classes=self.num_classes, dtype=tf.int64))
        return logits

    def _evaluate(self, dataset):
        self.confusion.assign(tf.zeros_like(self.confusion))
        return {**super()._evaluate(dataset), "confusion": self.confusion.read_value()}


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
    path = find_checkpoint(run, checkpoint)  # before reading any data: fail fast
    corpus = load_corpus(data_dir or config.data.data_dir, seq_length=config.data.seq_length,
                         vocab_size=config.data.vocab_size, vocab=run.load_vocab(),
                         labels=run.load_labels(), splits=(split,))
    trained = load_trained(run_dir, checkpoint=path, example_shape=corpus.example_shape,
                           dtype=corpus.dtype)
    x, y = corpus.splits[split]
    evaluator = ConfusionEvaluator(trained.model, len(trained.labels))
    values = evaluator.evaluate(make_eval_dataset(x, y, batch_size=config.train.batch_size,
                                                  by_length=bool(config.data.bucket_window)))
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


def save_report(run_dir: str | Path, result: EvalResult) -> dict[str, Path]:
    """Writes the report files and the TensorBoard summaries of an evaluation; returns the paths."""
    report = result.report()
    paths = report_paths(run_dir, result.split)
    paths["json"].parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(paths["json"], json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n")
    write_text_atomic(paths["text"], format_text(report))
    title = (f"{result.split} confusion matrix - accuracy {result.accuracy:.4f} - "
             f"{result.num_examples} examples - {Path(result.checkpoint).name}")
    image = confusion_matrix_image(result.confusion, result.labels, title=title)
    tf.io.write_file(str(paths["image"]), tf.io.encode_png(image))
    _summaries(RunDir(run_dir), result, image, markdown(report))
    return paths


def _summaries(run: RunDir, result: EvalResult, image: np.ndarray, text: str) -> None:
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
        if split == "test":
            writer.scalars(result.step, {"test/loss": result.loss, "test/accuracy": result.accuracy})
    finally:
        writer.close()
