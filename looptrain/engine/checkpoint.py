"""Checkpoints: the resumable training state and the best-model copy.

`RUN/checkpoints/ckpt-<step>` holds everything the next step depends on: the task (its models,
optimizers, random generators and variables), the Keras seed-generator states of its layers
(dropout: `tf.train.Checkpoint` does not find them through the models on its own), the global
step, the data position (for positional data, the epoch and batch within it: the stream is a pure
function of seed and step, so that is all the iterator state there is), the state of stateful
callbacks (early stopping) and the loop's counters. Stateful ops such as `tf.random.uniform` keep
their state in the kernel, which no checkpoint can hold: use Keras layers or a
`tf.random.Generator` instead.

`RUN/best` holds the task without its optimizers at the best monitored value so far, plus
`best.json`. Every checkpoint records the run's identity (`check_identity`).

A training checkpoint may also hold averaged weights (`AVERAGED`: EMA's shadow variables, one per
trainable variable in `trainable_variables` order); evaluating that checkpoint then uses them, as
the best copy (written with the averages swapped in) already does.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from looptrain.engine.averages import AVERAGED, Averages
from looptrain.engine.lease import lease
from looptrain.engine.leftovers import best_copy, remove_leftovers
from looptrain.errors import RunDirError
from looptrain.files import point_symlink, write_text_atomic
from looptrain.task import task_variables_untracked, trainable_variables

def model_view(task) -> tf.Module:
    """A module holding the task's attributes except its optimizers (under the same names, so
    a training checkpoint and a best copy share the paths of what evaluation needs)."""
    view = tf.Module(name="task")
    for name, value in vars(task).items():
        if not name.startswith("_") and _is_state(value):
            setattr(view, name, value)
    return view


def _is_state(value) -> bool:
    if isinstance(value, keras.optimizers.Optimizer):
        return False
    if isinstance(value, (list, tuple)):
        return bool(value) and all(_is_state(v) for v in value)
    if isinstance(value, dict):
        return bool(value) and all(_is_state(v) for v in value.values())
    return isinstance(value, (keras.layers.Layer, keras.Variable, tf.Variable, tf.Module,
                              tf.random.Generator))


class Checkpoints:
    """The latest-checkpoint manager and the best-model copy of one run directory.

    Crash safety: TensorFlow writes each checkpoint's files before it points the `checkpoint` index
    at them, and `restore_latest` falls back to the newest checkpoint it can read. `best` is a
    symlink to `best.<step>/`, swapped with one atomic rename, so readers always find a complete
    best model, never a half-written or missing one.

    Args:
        run_path: the run directory (checkpoints go to `run_path/checkpoints`).
        task: the built task.
        state: the loop's own trackables (global step, counters, callback state), by name.
        position: the data position (`record(step)`, `check(step)`, a trackable), or None.
        identity: the run's identity, recorded in every checkpoint.
        max_to_keep: recent checkpoints kept.
    """

    def __init__(self, run_path: Path, *, task, state: dict[str, Any], identity: str,
                 position=None, max_to_keep: int = 5):
        self.run_path, self.position = Path(run_path), position
        self.identity = tf.Variable(identity, trainable=False, name="run_identity")
        untracked = task_variables_untracked(task)
        extra = {"data_position": position} if position is not None else {}
        self.checkpoint = tf.train.Checkpoint(task=task, untracked=untracked,
                                              run_identity=self.identity, **state, **extra)
        self.best = tf.train.Checkpoint(task=model_view(task), untracked=untracked,
                                        run_identity=self.identity)
        self.step = state["step"]
        # Before the manager lists the directory: it must not take a leftover for a checkpoint.
        self.removed = remove_leftovers(self.run_path)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, str(self.run_path / "checkpoints"), max_to_keep=max_to_keep,
            checkpoint_name="ckpt")

    @property
    def latest(self) -> str | None:
        """The newest checkpoint written or restored by this run (its path prefix)."""
        return self.manager.latest_checkpoint

    def save(self, step: int) -> str:
        """Writes `checkpoints/ckpt-<step>` (and prunes old ones)."""
        if self.position is not None:
            self.position.record(step)
        return self.manager.save(checkpoint_number=step)

    def save_best(self, step: int, metrics: dict[str, float]) -> str:
        """Replaces the best-model copy by the current weights, with `best.json` describing them."""
        target = self.run_path / f"best.{step}"
        shutil.rmtree(target, ignore_errors=True)  # left over by a kill during an earlier attempt
        path = tf.train.CheckpointManager(self.best, str(target), max_to_keep=1,
                                          checkpoint_name="best").save(step)
        info = {"step": step, "checkpoint": Path(path).name, **metrics}
        write_text_atomic(target / "best.json", json.dumps(info, indent=2) + "\n")
        point_symlink(self.run_path / "best", target.name)
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
            RunDirError: no checkpoint can be read, or none matches the task.
        """
        if directory is None or Path(directory) == Path(self.manager.directory):
            directory, listed = Path(self.manager.directory), self.manager.checkpoints
        else:
            state = tf.train.get_checkpoint_state(str(directory))
            listed = list(state.all_model_checkpoint_paths) if state else []
        candidates = _checkpoint_candidates(Path(directory), listed)
        warnings = [f"removed {path.relative_to(self.run_path)}, left by an interrupted save"
                    for path in self.removed]
        if not candidates:
            best = best_copy(Path(directory).parent)
            if best is not None:
                raise RunDirError(
                    f"{directory} holds no complete checkpoint, but the run has a best copy "
                    f"({best}): its checkpoints were deleted or damaged, and starting again from "
                    f"step 0 would replace that copy; start a new run directory (the best copy "
                    f"stays where it is)")
            return None, [*warnings, f"{directory}: no complete checkpoint; starting from step 0"]
        first_error = None
        for path in candidates:
            try:
                check_identity(path, self.identity.numpy().decode())
                restore(self.checkpoint, path)
            except RunDirError as exc:
                first_error = first_error or exc
                warnings.append(f"skipped unreadable checkpoint {path} ({_short(exc)})")
                continue
            if self.position is not None:
                self.position.check(int(self.step.numpy()))
            if directory == Path(self.manager.directory) and path != self.manager.latest_checkpoint:
                # Complete on disk, but killed before the index named it: saved again (the same
                # bytes) so that `latest` readers and the manager's pruning agree with the restore,
                # even when no step follows.
                self.save(int(path.rsplit("-", 1)[1]))
            return path, warnings
        raise first_error


def _checkpoint_candidates(directory: Path, listed: list[str]) -> list[str]:
    """Checkpoint prefixes newest first: those in the index plus any complete ones on disk."""
    on_disk = [str(p)[: -len(".index")] for p in directory.glob("ckpt-*.index")]
    prefixes = {str(Path(p)) for p in [*listed, *on_disk]}
    return sorted(prefixes, key=lambda p: int(p.rsplit("-", 1)[1]), reverse=True)


def _short(exc: Exception) -> str:
    return str(exc).split(" (", 1)[-1].rstrip(")")


def check_identity(path: str, identity: str, *, shown: str | None = None) -> None:
    """Raises RunDirError unless the checkpoint at `path` records the run identity `identity`.

    A checkpoint of another run whose model has the same shapes would restore without complaint,
    and with another vocabulary or label order it would be silently wrong. Messages name `shown`
    (default: `path`).
    """
    shown = shown or path
    try:
        recorded = tf.train.load_variable(path, "run_identity/.ATTRIBUTES/VARIABLE_VALUE")
    except (tf.errors.OpError, ValueError):
        raise RunDirError(f"checkpoint {shown} records no run identity: it was not written for this "
                          f"run's task, data and model; use one of this run's checkpoints "
                          f"(best, latest, or a path under the run directory)") from None
    if recorded.decode() != identity:
        raise RunDirError(f"checkpoint {shown} belongs to another run (its task, hyper-parameters, "
                          f"vocabulary or labels differ from this run's); use one of this run's "
                          f"checkpoints")


def find_checkpoint(run, which: str) -> str:
    """Resolves `best`, `latest` or an explicit checkpoint prefix of `run` to a checkpoint path
    (`RUN/best/best-<step>`, `RUN/checkpoints/ckpt-<step>` or `which`).

    Raises:
        RunDirError: the requested checkpoint does not exist.
    """
    return _locate(run, which)[0]


def _locate(run, which: str) -> tuple[str, str]:
    """(The checkpoint's path as users know it, the path to read it from.) They differ for `best`,
    read inside the directory the link points to now: a trainer may swap the link meanwhile."""
    if which == "latest":
        state = _state(run.checkpoints)
        if state is None:  # no index (or a damaged one): the newest complete checkpoint on disk
            found = _checkpoint_candidates(run.checkpoints, []) if run.checkpoints.is_dir() else []
            if not found:
                raise RunDirError(f"{run.path}: no latest checkpoint in {run.checkpoints}")
            state = found[0]
        return state, state
    if which == "best":
        for _ in range(_ATTEMPTS):  # again while a trainer swaps the link under us
            link = os.readlink(run.best) if run.best.is_symlink() else None
            target = best_copy(run.path)
            state = _state(target) if target is not None else None
            if state is not None or link is None or link == os.readlink(run.best):
                break
        if state is None:
            if run.best.is_symlink() and target is None:
                raise RunDirError(f"{run.best} points to {os.readlink(run.best)}, which does not "
                                  f"exist (the run directory is damaged); try --checkpoint latest")
            raise RunDirError(f"{run.path}: no best checkpoint in {run.best} (no evaluation has "
                              f"finished yet; try --checkpoint latest)")
        return str(run.best / Path(state).name), state
    if Path(which).is_dir():
        raise RunDirError(f"--checkpoint {which} is a directory; give a checkpoint's path prefix "
                          f"(e.g. {Path(which) / 'ckpt-100'}), best or latest")
    if not Path(f"{which}.index").is_file():
        raise RunDirError(f"checkpoint {which} does not exist (expected {which}.index)")
    return which, which


_MODEL_PATH = re.compile(rb'^model_checkpoint_path: "((?:[^"\\]|\\.)*)"$', re.M)


def _state(directory: Path) -> str | None:
    """The checkpoint a directory's `checkpoint` index names (its files may be gone already).

    Read in one piece here: `tf.train.get_checkpoint_state` takes the file's size and its bytes
    separately, so while a trainer replaces the index it can read half of one (a parse error).
    """
    try:
        match = _MODEL_PATH.search((Path(directory) / "checkpoint").read_bytes())
    except OSError:
        return None
    if not match:
        return None
    path = codecs.escape_decode(match.group(1))[0].decode("utf-8", "surrogateescape")
    return str(Path(directory) / path)  # a relative path is relative to the directory


# A reader whose checkpoint vanished before its lease was taken looks again; each attempt takes
# microseconds, so a few always suffice.
_ATTEMPTS = 10


def restore_for_evaluation(task, run, which: str, identity: str) -> str:
    """Restores what evaluation needs (the task without its optimizers) from a best copy or a
    training checkpoint of `run` into the built `task`; returns the checkpoint's path.

    `which` is "best", "latest" or a path prefix. The checkpoint is read under a lease
    (`engine.lease`), so a trainer running on the same directory cannot remove it meanwhile;
    one it removed before the lease was taken is looked up again: evaluating, predicting with or
    exporting a running run never fails at random.

    Raises:
        RunDirError: no such checkpoint, or it belongs to another run or does not match the task.
    """
    checkpoint = tf.train.Checkpoint(task=model_view(task), untracked=task_variables_untracked(task))
    for attempt in range(_ATTEMPTS):
        path, source = _locate(run, which)
        try:
            with lease(source, run.path) as readable:
                check_identity(readable, identity, shown=path)
                restore(checkpoint, readable, partial=True, shown=path)
                restore_averages(task, readable, shown=path)
            return path
        except FileNotFoundError:
            error = RunDirError(f"checkpoint {path} was removed while it was being read (by a "
                                f"trainer pruning old checkpoints?); give a newer one")
        except RunDirError as exc:
            error = exc
        gone = not Path(f"{source}.index").is_file()
        if not (gone and which in ("best", "latest")) or attempt == _ATTEMPTS - 1:
            raise error
    raise AssertionError("unreachable")


def restore_averages(task, path: str, *, shown: str | None = None) -> bool:
    """Puts the averaged weights a training checkpoint holds (if any) into the task's trainable
    variables; returns whether it held some.

    Raises:
        RunDirError: the averages do not match the task's variables.
    """
    try:
        names = [name for name, _ in tf.train.list_variables(path)]
    except (tf.errors.OpError, ValueError):
        raise RunDirError(f"checkpoint {shown or path} cannot be read") from None
    if not any(name.startswith(f"{AVERAGED}/") for name in names):
        return False
    variables = trainable_variables(task)
    averages = Averages(variables)
    restore(tf.train.Checkpoint(**{AVERAGED: averages}), path, partial=True, shown=shown)
    for variable, average in zip(variables, averages.values):
        variable.assign(average)
    return True


def restore(checkpoint: tf.train.Checkpoint, path: str, *, partial: bool = False,
            shown: str | None = None) -> None:
    """Restores `path` into `checkpoint`; every object of it must be matched (no silent skips).

    Raises:
        RunDirError: the checkpoint cannot be read or does not match, naming the first mismatch
            (and `shown`, default `path`).
    """
    try:
        status = checkpoint.restore(path).assert_existing_objects_matched()
        if partial:  # a training checkpoint also holds optimizers and loop state: not needed here
            status.expect_partial()
    except (AssertionError, ValueError, IndexError, KeyError, tf.errors.OpError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunDirError(f"checkpoint {shown or path} does not match this task ({first})") from None
