"""A trained run, ready to use: its config, vocabulary, labels and a model restored from a checkpoint.

Evaluation, prediction and export all start here, so they see the run exactly as training left it:
the saved `config.json`, `vocab.txt` and `labels.txt`, and the best (default) or latest weights.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import keras

from looptrain.app.experiment import make_classifier
from looptrain.config import Config
from looptrain.data.corpus import Corpus
from looptrain.engine.checkpoint import find_checkpoint, restore_for_evaluation
from looptrain.errors import RunDirError
from looptrain.run import RunDir
from looptrain.task import identity_of


@dataclass(frozen=True)
class TrainedModel:
    """A run's model with the artifacts needed to feed it text and name its outputs."""

    run: RunDir
    config: Config
    vocab: list[str] | None
    labels: list[str]
    model: keras.Model
    checkpoint: str  # the restored checkpoint's path prefix

    @property
    def step(self) -> int:
        """The training step of the checkpoint (`best-120` -> 120); 0 when its name has none."""
        match = re.search(r"-(\d+)$", self.checkpoint)
        return int(match.group(1)) if match else 0


def load_trained(run_dir: str | Path, *, checkpoint: str = "best",
                 example_shape: tuple[int, ...] | None = None, dtype: str = "int32") -> TrainedModel:
    """Rebuilds a run's model and restores `checkpoint` (`best`, `latest` or a path prefix) into it.

    Args:
        run_dir: the run directory.
        checkpoint: `best`, `latest` or a checkpoint path prefix of this run.
        example_shape, dtype: one example's shape and dtype; by default a text run's
            `(seq_length,)` int32 ids. A run on array data needs them (from its data).

    Raises:
        UserError: the run directory or checkpoint is missing, damaged, of another run, or does
            not match.
    """
    run = RunDir(run_dir)
    run.check_exists()
    config = run.load_config()
    if config.task_path:
        raise RunDirError(f"{run.path} trained the task {config.task_path}; predict and export take "
                          f"runs of the built-in classifier (evaluate takes any run)")
    find_checkpoint(run, checkpoint)  # fail fast, before reading anything else
    vocab, labels = run.load_vocab(), run.load_labels()
    if example_shape is None:
        if vocab is None:
            raise RunDirError(f"{run.path} was trained on array data (it has no vocab.txt); predict "
                              f"and export take runs on text")
        example_shape, dtype = (config.data.seq_length,), "int32"
    corpus = Corpus(vocab=vocab, labels=labels, splits={}, shape=tuple(example_shape),
                    element_dtype=dtype)
    task = make_classifier(config, corpus)
    task.build()
    path = restore_for_evaluation(task, run, checkpoint, identity_of(task))
    return TrainedModel(run=run, config=config, vocab=vocab, labels=labels, model=task.model,
                        checkpoint=path)
