"""Checkpoints: the resumable training state, the best-model copy and early stopping.

`RUN/checkpoints/ckpt-<step>` holds everything the next step depends on: model and optimizer
variables, the global step, the input position (epoch and batch within it: the stream is a pure
function of seed and step, see `data.pipeline`, so this is all the iterator state there is), the
Keras dropout seed-generator states (which `tf.train.Checkpoint` does not find through the model on
its own) and the early-stopping state. `RUN/best/` holds the model weights of the best validation
accuracy so far plus `best.json` describing them.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import tensorflow as tf

from looptrain.errors import RunDirError
from looptrain.files import write_text_atomic


class EarlyStopping(tf.Module):
    """Tracks the best validation value and stops after `patience` steps without improvement.

    Its variables live in the checkpoint, so a resumed run keeps counting from the same best step.
    """

    def __init__(self, patience: int):
        super().__init__(name="early_stopping")
        self.patience = patience
        self.best_value = tf.Variable(float("-inf"), dtype=tf.float64, trainable=False)
        self.best_step = tf.Variable(0, dtype=tf.int64, trainable=False)

    def update(self, step: int, value: float) -> bool:
        """Records `value` measured at `step`; returns True when it is a strict improvement."""
        if value > float(self.best_value.numpy()):
            self.best_value.assign(value)
            self.best_step.assign(step)
            return True
        return False

    def should_stop(self, step: int) -> bool:
        """True once `patience` steps have passed since the last improvement."""
        return step - int(self.best_step.numpy()) >= self.patience


class DataPosition(tf.Module):
    """Where the input stream stands: the epoch and the next batch within it.

    Recorded with every checkpoint so the checkpoint says where training is in the data, and
    checked on restore against the step and the current data size.
    """

    def __init__(self):
        super().__init__(name="data_position")
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.batch = tf.Variable(0, dtype=tf.int64, trainable=False)

    def record(self, step: int, steps_per_epoch: int) -> None:
        epoch, batch = divmod(step, steps_per_epoch)
        self.epoch.assign(epoch)
        self.batch.assign(batch)

    def check(self, step: int, steps_per_epoch: int) -> None:
        """Raises RunDirError if the recorded position does not follow from `step`."""
        recorded = (int(self.epoch.numpy()), int(self.batch.numpy()))
        if recorded != divmod(step, steps_per_epoch):
            raise RunDirError(
                f"checkpoint at step {step} is at epoch {recorded[0]} batch {recorded[1]}, but the "
                f"data now has {steps_per_epoch} batches per epoch: the training data changed")


def random_state_variables(model: keras.Model) -> list:
    """The seed-generator states of the model's random layers (dropout masks)."""
    return [v for v in model.variables if v.name == "seed_generator_state"]


class Checkpoints:
    """The latest-checkpoint manager and the best-model copy of one run directory."""

    def __init__(self, run_path: Path, *, model: keras.Model, optimizer: keras.optimizers.Optimizer,
                 step: tf.Variable, steps_per_epoch: int, early_stopping: EarlyStopping,
                 max_to_keep: int):
        self.step, self.steps_per_epoch = step, steps_per_epoch
        self.position = DataPosition()
        self.checkpoint = tf.train.Checkpoint(
            model=model, optimizer=optimizer, step=step, data_position=self.position,
            early_stopping=early_stopping, random_state=random_state_variables(model))
        check_tracked(model)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, str(run_path / "checkpoints"), max_to_keep=max_to_keep,
            checkpoint_name="ckpt")
        self.best_dir = run_path / "best"
        self.best_manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(model=model), str(self.best_dir), max_to_keep=1, checkpoint_name="best")

    def save(self, step: int) -> str:
        """Writes `checkpoints/ckpt-<step>` (and prunes old ones)."""
        self.position.record(step, self.steps_per_epoch)
        return self.manager.save(checkpoint_number=step)

    def save_best(self, step: int, metrics: dict[str, float]) -> str:
        """Replaces the best-model copy by the current weights, with `best.json` describing them."""
        path = self.best_manager.save(checkpoint_number=step)
        info = {"step": step, "checkpoint": Path(path).name, **metrics}
        write_text_atomic(self.best_dir / "best.json", json.dumps(info, indent=2) + "\n")
        return path

    def restore_latest(self) -> str:
        """Restores the newest checkpoint into the (already built) objects.

        Raises:
            RunDirError: there is no checkpoint, or it does not match the model.
        """
        path = self.manager.latest_checkpoint
        if path is None:
            raise RunDirError(f"{self.manager.directory}: no checkpoint to resume from")
        _restore(self.checkpoint, path)
        self.position.check(int(self.step.numpy()), self.steps_per_epoch)
        return path


def check_tracked(model: keras.Model) -> None:
    """Fails loudly if a checkpoint of the model alone cannot reach some of its variables.

    `tf.train.Checkpoint` only follows attributes it can track; a layer kept in a plain Python
    list is still trained by Keras but left out of a model-only save such as `best/`. (A full
    training checkpoint hides the problem: the optimizer tracks the trainable variables too.)

    Raises:
        TypeError: naming the variables a model checkpoint would not save.
    """
    checkpoint = tf.train.Checkpoint(model=model, random_state=random_state_variables(model))
    reachable = {id(obj) for obj in tf.train.TrackableView(checkpoint).descendants()}
    missing = [v.path for v in model.variables if id(v) not in reachable]
    if missing:
        raise TypeError(f"{type(model).__name__}: variables not reachable by tf.train.Checkpoint "
                        f"(assign each layer to its own attribute, not a list): {missing}")


def restore_model(model: keras.Model, path: str) -> None:
    """Restores model weights from a `best/` or `checkpoints/` checkpoint into a built model."""
    check_tracked(model)
    _restore(tf.train.Checkpoint(model=model), path, partial=True)


def _restore(checkpoint: tf.train.Checkpoint, path: str, *, partial: bool = False) -> None:
    try:
        status = checkpoint.restore(path).assert_existing_objects_matched()
        if partial:  # a full training checkpoint also holds the optimizer: not needed here
            status.expect_partial()
    except (AssertionError, ValueError, tf.errors.OpError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunDirError(f"checkpoint {path} does not match this model ({first})") from None
