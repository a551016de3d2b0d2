"""Checkpoints: the resumable training state, the best-model copy and early stopping.

`RUN/checkpoints/ckpt-<step>` holds everything the next step depends on: model and optimizer
variables, the global step, the input position (epoch and batch within it: the stream is a pure
function of seed and step, see `data.pipeline`, so this is all the iterator state there is), the
Keras dropout seed-generator states (which `tf.train.Checkpoint` does not find through the model on
its own), the early-stopping state and the loop's counters. A `tf.random.Generator` kept as a layer
attribute is tracked with the model. (Stateful ops such as `tf.random.uniform` keep their state in
the kernel, which no checkpoint can hold: use Keras layers or a `tf.random.Generator` instead.)
`RUN/best` holds the model weights of the best validation accuracy so far plus `best.json`.
"""

from __future__ import annotations

import json
import os
import shutil
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
    """The latest-checkpoint manager and the best-model copy of one run directory.

    Crash safety: TensorFlow writes each checkpoint's files before it points the `checkpoint` index
    at them, and `restore_latest` falls back to the newest checkpoint it can read. `best` is a
    symlink to `best.<step>/`, swapped with one atomic rename, so readers always find a complete
    best model, never a half-written or missing one.
    """

    def __init__(self, run_path: Path, *, model: keras.Model, optimizer: keras.optimizers.Optimizer,
                 step: tf.Variable, steps_per_epoch: int, early_stopping: EarlyStopping,
                 max_to_keep: int, identity: str, counters: dict[str, tf.Variable] | None = None):
        self.step, self.steps_per_epoch = step, steps_per_epoch
        self.position = DataPosition()
        self.model = model
        # Every checkpoint, the best copy included, records which run it belongs to (see
        # `check_identity`), so a checkpoint of another run is never restored by path.
        self.identity = tf.Variable(identity, trainable=False, name="run_identity")
        self.checkpoint = tf.train.Checkpoint(
            model=model, optimizer=optimizer, step=step, data_position=self.position,
            run_identity=self.identity,
            early_stopping=early_stopping, random_state=random_state_variables(model),
            **(counters or {}))
        check_tracked(model)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, str(run_path / "checkpoints"), max_to_keep=max_to_keep,
            checkpoint_name="ckpt")
        self.run_path = run_path

    def save(self, step: int) -> str:
        """Writes `checkpoints/ckpt-<step>` (and prunes old ones)."""
        self.position.record(step, self.steps_per_epoch)
        return self.manager.save(checkpoint_number=step)

    def save_best(self, step: int, metrics: dict[str, float]) -> str:
        """Replaces the best-model copy by the current weights, with `best.json` describing them."""
        target = self.run_path / f"best.{step}"
        shutil.rmtree(target, ignore_errors=True)  # left over by a kill during an earlier attempt
        best = tf.train.Checkpoint(model=self.model, run_identity=self.identity)
        path = tf.train.CheckpointManager(best, str(target),
                                          max_to_keep=1, checkpoint_name="best").save(step)
        info = {"step": step, "checkpoint": Path(path).name, **metrics}
        write_text_atomic(target / "best.json", json.dumps(info, indent=2) + "\n")
        _point_symlink(self.run_path / "best", target.name)
        for old in self.run_path.glob("best.*"):
            if old.is_dir() and old.name != target.name:
                shutil.rmtree(old, ignore_errors=True)
        return str(self.run_path / "best" / Path(path).name)

    def restore_latest(self, directory: Path | None = None) -> tuple[str | None, list[str]]:
        """Restores the newest readable checkpoint into the (already built) objects.

        Args:
            directory: where the checkpoints are (default: this run's; a non-chief worker reads
                the chief's).

        Returns:
            The checkpoint restored (None when the run was killed before its first checkpoint was
            complete: training restarts from step 0, which is where it stood), and one warning per
            newer checkpoint that could not be read.

        Raises:
            RunDirError: no checkpoint can be read, or none matches the model.
        """
        if directory is None or Path(directory) == Path(self.manager.directory):
            directory, listed = Path(self.manager.directory), self.manager.checkpoints
        else:
            state = tf.train.get_checkpoint_state(str(directory))
            listed = list(state.all_model_checkpoint_paths) if state else []
        candidates = _checkpoint_candidates(Path(directory), listed)
        if not candidates:
            return None, [f"{directory}: no complete checkpoint; starting from step 0"]
        warnings, first_error = [], None
        for path in candidates:
            try:
                _restore(self.checkpoint, path)
            except RunDirError as exc:
                first_error = first_error or exc
                warnings.append(f"skipped unreadable checkpoint {path} ({_short(exc)})")
                continue
            self.position.check(int(self.step.numpy()), self.steps_per_epoch)
            return path, warnings
        raise first_error


def _checkpoint_candidates(directory: Path, listed: list[str]) -> list[str]:
    """Checkpoint prefixes newest first: those in the index plus any complete ones on disk."""
    on_disk = [str(p)[: -len(".index")] for p in directory.glob("ckpt-*.index")]
    prefixes = {str(Path(p)) for p in [*listed, *on_disk]}
    return sorted(prefixes, key=lambda p: int(p.rsplit("-", 1)[1]), reverse=True)


def _short(exc: Exception) -> str:
    return str(exc).split(" (", 1)[-1].rstrip(")")


def _point_symlink(link: Path, target: str) -> None:
    """Makes `link` point at `target` with one atomic rename (a reader sees old or new, never none)."""
    if link.is_dir() and not link.is_symlink():  # a best/ directory written by looptrain 0.1
        link.rename(link.with_name(f"{link.name}.legacy"))
    tmp = link.with_name(f".{link.name}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)


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


def check_identity(path: str, identity: str) -> None:
    """Raises RunDirError unless the checkpoint at `path` records the run identity `identity`.

    A checkpoint of another run whose model has the same shapes would restore without complaint,
    and with another vocabulary or label order it would be silently wrong.
    """
    try:
        recorded = tf.train.load_variable(path, "run_identity/.ATTRIBUTES/VARIABLE_VALUE")
    except (tf.errors.OpError, ValueError):
        raise RunDirError(f"checkpoint {path} records no run identity: it was not written for this "
                          f"run's vocabulary, labels and model; use one of this run's checkpoints "
                          f"(best, latest, or a path under the run directory)") from None
    if recorded.decode() != identity:
        raise RunDirError(f"checkpoint {path} belongs to another run (its vocabulary, labels or "
                          f"model differ from this run's); use one of this run's checkpoints")


def restore_model(model: keras.Model, path: str) -> None:
    """Restores model weights from a `best/` or `checkpoints/` checkpoint into a built model."""
    check_tracked(model)
    _restore(tf.train.Checkpoint(model=model), path, partial=True)


def _restore(checkpoint: tf.train.Checkpoint, path: str, *, partial: bool = False) -> None:
    try:
        status = checkpoint.restore(path).assert_existing_objects_matched()
        if partial:  # a full training checkpoint also holds the optimizer: not needed here
            status.expect_partial()
    except (AssertionError, ValueError, IndexError, KeyError, tf.errors.OpError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunDirError(f"checkpoint {path} does not match this model ({first})") from None
