"""A trained run, ready to use: its config, vocabulary, labels and a model restored from a checkpoint.

Evaluation, prediction and export all start here, so they see the run exactly as training left it:
the saved `config.json`, `vocab.txt` and `labels.txt`, and the best (default) or latest weights.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from looptrain.config import Config
from looptrain.errors import RunDirError
from looptrain.models import build_model, create_model
from looptrain.run import RunDir, run_identity
from looptrain.train.checkpoint import check_identity, restore_model


@dataclass(frozen=True)
class TrainedModel:
    """A run's model with the artifacts needed to feed it text and name its outputs."""

    run: RunDir
    config: Config
    vocab: list[str]
    labels: list[str]
    model: keras.Model
    checkpoint: str  # the restored checkpoint's path prefix

    @property
    def step(self) -> int:
        """The training step of the checkpoint (`best-120` -> 120); 0 when its name has none."""
        match = re.search(r"-(\d+)$", self.checkpoint)
        return int(match.group(1)) if match else 0


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


def load_trained(run_dir: str | Path, *, checkpoint: str = "best",
                 example_shape: tuple[int, ...] | None = None, dtype: str = "int32") -> TrainedModel:
    """Rebuilds a run's model and restores `checkpoint` (`best`, `latest` or a path prefix) into it.

    Args:
        run_dir: the run directory.
        checkpoint: `best`, `latest` or a checkpoint path prefix.
        example_shape, dtype: one example's shape and dtype; by default a text run's
            `(seq_length,)` int32 ids. A run on array data needs them (from its data).

    Raises:
        UserError: the run directory or checkpoint is missing, damaged or does not match.
    """
    run = RunDir(run_dir)
    run.check_exists()
    config = run.load_config()
    path = find_checkpoint(run, checkpoint)
    vocab, labels = run.load_vocab(), run.load_labels()
    check_identity(path, run_identity(config, vocab, labels))
    if example_shape is None:
        if vocab is None:
            raise RunDirError(f"{run.path} was trained on array data (it has no vocab.txt); predict "
                              f"and export take runs on text")
        example_shape = (config.data.seq_length,)
    model = create_model(config.model, vocab_size=len(vocab or []), num_classes=len(labels),
                         data_kind="arrays" if vocab is None else "text")
    build_model(model, example_shape, dtype)
    restore_model(model, path)
    return TrainedModel(run=run, config=config, vocab=vocab, labels=labels, model=model, checkpoint=path)
