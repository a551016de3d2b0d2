"""Evaluation of a finished (or running) run on one of its splits.

Restores the best (default) or latest checkpoint into a freshly built model, with the run's own
vocabulary and labels, and streams the split through the compiled eval step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

from looptrain.data.corpus import load_corpus
from looptrain.data.pipeline import make_eval_dataset
from looptrain.errors import RunDirError
from looptrain.models import build_model, create_model
from looptrain.run import RunDir
from looptrain.train.checkpoint import restore_model
from looptrain.train.step import Evaluator


@dataclass(frozen=True)
class EvalResult:
    """Example-weighted loss and accuracy of `checkpoint` on `num_examples` examples."""

    loss: float
    accuracy: float
    num_examples: int
    checkpoint: str
    seconds: float


def find_checkpoint(run: RunDir, which: str) -> str:
    """Resolves `best`, `latest` or an explicit checkpoint prefix to a checkpoint path.

    Raises:
        RunDirError: the requested checkpoint does not exist.
    """
    if which in ("best", "latest"):
        directory = run.best if which == "best" else run.checkpoints
        path = tf.train.latest_checkpoint(str(directory))
        if path is None:
            hint = " (no evaluation has finished yet; try --checkpoint latest)" if which == "best" else ""
            raise RunDirError(f"{run.path}: no {which} checkpoint in {directory}{hint}")
        return path
    if not Path(f"{which}.index").is_file():
        raise RunDirError(f"checkpoint {which} does not exist (expected {which}.index)")
    return which


def evaluate_run(run_dir: str | Path, *, checkpoint: str = "best", split: str = "test",
                 data_dir: str | None = None) -> EvalResult:
    """Loss and accuracy of a run's checkpoint on `split`.

    Raises:
        UserError: the run directory, checkpoint or data is missing or does not match.
    """
    started = time.perf_counter()
    run = RunDir(run_dir)
    run.check_exists()
    config = run.load_config()
    path = find_checkpoint(run, checkpoint)
    vocab, labels = run.load_vocab(), run.load_labels()
    corpus = load_corpus(data_dir or config.data.data_dir, seq_length=config.data.seq_length,
                         vocab_size=config.data.vocab_size, vocab=vocab, labels=labels,
                         splits=(split,))
    model = build_model(create_model(config.model, vocab_size=corpus.vocab_size, num_classes=len(labels),
                                     data_kind=corpus.kind), corpus.example_shape, corpus.dtype)
    restore_model(model, path)
    x, y = corpus.splits[split]
    values = Evaluator(model).evaluate(make_eval_dataset(x, y, batch_size=config.train.batch_size))
    return EvalResult(loss=float(values["loss"]), accuracy=float(values["accuracy"]),
                      num_examples=len(y), checkpoint=path, seconds=time.perf_counter() - started)
