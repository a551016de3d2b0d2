"""`lt.fit` and `lt.evaluate`: a user's task, its data and a run directory, with every guarantee of
the loop (exact resume, one trainer per run, a divergence guard, distribution, early stopping on
any metric, the best copy, TensorBoard).

`fit` checks the run directory, builds the task under the strategy's scope, restores or starts the
run, assembles the built-in callbacks (each in `looptrain.callbacks`) around the user's, and hands
the built objects to the engine's `Loop`. Nothing is written into the run directory before the
task is built and its step traced, so a broken task never leaves a half-made run behind.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import keras
import tensorflow as tf

from looptrain import __version__, oserrors, settings as settings_lib
from looptrain.callbacks import (Best, BestCopy, Checkpointing, Display, EarlyStopping,
                                 Evaluation, Histograms, NonFinite, Scalars)
from looptrain.callbacks.best import infer_mode
from looptrain.callbacks.finished import FINAL_REASONS
from looptrain.callbacks.progress import clock
from looptrain.callbacks.from_settings import setting_callbacks
from looptrain.callbacks.histograms import histogram_cadence
from looptrain.callbacks.iterator_bytes import IteratorBytes
from looptrain.data.sources import as_source
from looptrain.engine import determinism, distribute
from looptrain.engine.call import InCallHook, TrainCall
from looptrain.engine.callback import Callback, CallbackList
from looptrain.engine.checkpoint import Checkpoints
from looptrain.engine.controller import Loop
from looptrain.engine.evaluation import Evaluator
from looptrain.engine.rundir import RunDir
from looptrain.engine.signals import StopSignals
from looptrain.engine.summaries import SummaryWriter, drop_events_after
from looptrain.errors import ConfigError
from looptrain.fit_record import check_unchanged, make_record
from looptrain.task import (build_optimizers, check_built, identity_of, learning_rates,
                            trainable_variables, use_jit)


@dataclass(frozen=True)
class FitResult:
    """What a call to `fit` did."""

    step: int  # global step reached
    steps_run: int  # steps run by this call (less than `step` after a resume)
    stop_reason: str  # "epochs", "max_steps", "early_stopping" or "already_done"
    monitor: str  # the metric followed by early stopping and the best copy
    best_value: float  # its best value (+-inf if never measured)
    best_step: int
    train_seconds: float  # time inside the compiled training calls (steps and their logging)
    examples_per_second: float  # training throughput of this call
    wall_seconds: float = 0.0  # the whole call, set-up and evaluations included


@oserrors.reported(training=True)
def fit(task, *, train, val=None, run_dir: str | Path, resume: bool | str = False,
        callbacks: Sequence[Callback] = (), display: Display | None = None,
        on_start: Callable[[Path, bool], None] | None = None, resume_hint: str | None = None,
        skip_hint: str | None = None, **settings: Any) -> FitResult:
    """Trains `task` on `train` into `run_dir`, or continues the run there.

    Args:
        task: an `lt.Task` (not built yet: `fit` builds it).
        train: the training data: numpy arrays (one, or a tuple/dict of them; memory-mapped
            ones too), a `tf.data.Dataset` of batches, a function of the start step returning
            one, or a source from `looptrain.data` (see there for what each guarantees on
            resume).
        val: the validation data (the same kinds), or None.
        run_dir: the run directory (created if new).
        resume: False (a new run; an existing one is refused), True (continue; it must exist) or
            "auto" (continue when `run_dir` holds a run, else start one).
        callbacks: the user's callbacks, called after the built-in ones (before checkpointing).
        display: where progress goes; a terminal display when None.
        on_start: `on_start(run_path, resumed)`: writes the caller's own files into the run
            directory, under its lock, before the first checkpoint (or after the restore).
        resume_hint, skip_hint: the commands that continue the run, and continue it skipping
            non-finite batches, for messages (the `lt.fit` call by default).
        **settings: the loop's settings by name (`settings.LoopSettings`: batch_size,
            num_epochs, max_steps, eval_every, checkpoint_every, log_every, patience, monitor,
            mode, steps_per_loop, seed, on_nan, strategy, num_devices, histogram_every, ...).

    Returns:
        A `FitResult`.

    Raises:
        UserError: bad settings or data, a run directory in the wrong state, a checkpoint that
            does not match, or a task the loop cannot use (one line each).
        Stopped: SIGINT/SIGTERM, after a checkpoint was written.
    """
    s = settings_lib.build(settings_lib.LoopSettings, settings, source="lt.fit")
    strategy = distribute.make_strategy(s.strategy, s.num_devices)  # before any other TF op
    distribute.check_replicas(strategy, s.batch_size)
    role = distribute.role_of(strategy)
    run = RunDir(run_dir)
    resume = _resume_mode(resume, run)
    if resume:
        run.check_resumable()
    elif role.is_chief:
        run.check_new()
    again = f"lt.fit(..., run_dir={str(run.path)!r}, resume=True"
    session = _Session(task=task, train=as_source(train, what="train"),
                       val=as_source(val, what="val"), settings=s, strategy=strategy, role=role,
                       resume=resume, display=display or Display(), user_callbacks=list(callbacks),
                       on_start=on_start, resume_hint=resume_hint or f"{again})",
                       skip_hint=skip_hint or f'{again}, on_nan="skip")')
    if not role.is_chief:
        # Every worker saves (TensorFlow's rule for multi-worker checkpoints), but only the chief
        # into the run directory: the others into a temporary directory of their own.
        with StopSignals() as signals, distribute.scratch_directory(run.path, role.worker) as scratch:
            return session.run(RunDir(scratch), run, signals)
    existed = run.path.exists()
    # Signals are caught from here on, so a Ctrl-C during set-up cannot leave half a run directory:
    # it is honoured (checkpoint, exit) once the loop starts.
    with StopSignals() as signals:
        try:
            with run.lock():
                run.check_resumable() if resume else run.check_new()  # again, now that we hold it
                return session.run(run, run, signals)
        finally:
            if not existed:
                run.remove_if_unused()


def _resume_mode(resume: bool | str, run: RunDir) -> bool:
    if resume == "auto":
        return run.has_run()
    if not isinstance(resume, bool):
        raise ConfigError(f"lt.fit: resume must be False, True or 'auto', got {resume!r}")
    return resume


@dataclass
class _Session:
    """One `fit` between the run-directory checks and the result."""

    task: Any
    train: Any
    val: Any
    settings: settings_lib.LoopSettings
    strategy: Any
    role: distribute.Role
    resume: bool
    display: Display
    user_callbacks: list
    on_start: Callable | None
    resume_hint: str
    skip_hint: str

    def run(self, run: RunDir, source: RunDir, signals: StopSignals) -> FitResult:
        """Builds, starts or restores, trains. `run` is written, `source` read on resume (a
        non-chief worker writes into a scratch directory and reads the chief's)."""
        s, task = self.settings, self.task
        began = time.monotonic()
        monitor, mode = self._monitor()
        if s.deterministic:
            determinism.enable()
        keras.utils.set_random_seed(s.seed)
        with self._scope():
            task.build()
            if self.strategy:
                build_optimizers(task)
        check_built(task)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
        per_epoch = self.train.steps_per_epoch(s.batch_size)
        total, end_reason = self._total_steps(per_epoch)
        # A TFRecord stream's iterator is the data position (one device): it goes into the
        # checkpoint. Other sequential sources are replayed up to the step (data/streams.py).
        kept = (iter(self._dataset(0)) if getattr(self.train, "checkpoint_iterator", False)
                and not self.strategy else None)
        writer = SummaryWriter(run.logs)
        best = Best(monitor, mode)
        record = make_record(task, s, self.train, identity=identity_of(task), monitor=monitor,
                             mode=mode)
        # The settings' optional callbacks (metrics file, EMA, profiler, time limit) and the
        # user's: set up with the built task, checkpointed, their in-call hooks compiled in.
        user = [*setting_callbacks(s, run_path=run.path, best=best, chief=self.role.is_chief,
                                   record=record), *self.user_callbacks]
        with self._scope():
            for callback in user:
                callback.setup(task)
        scalars = Scalars(writer, s.log_every, best)
        hooks = [scalars]
        every = histogram_cadence(s.histogram_every, s.histogram_slices, total)
        if every and every <= total:  # a run that writes none does not compile them: they made
            # the TextCNN's first call 7.1 s instead of 0.8 s (a 1- or 200-step job, every = 250)
            hooks.append(Histograms(task, writer, every, self.train.first_batch(s.batch_size)))
        hooks += [callback for callback in user if isinstance(callback, InCallHook)]
        jit = use_jit(s.jit_compile, task)
        traced = kept or self._iterator(0)  # the step's first trace reads its element spec
        call = TrainCall(task, traced, step=step, strategy=self.strategy,
                         sized=self.train.sized, skip_nonfinite=s.on_nan == "skip",
                         jit_compile=jit, log_values=learning_rates(task), hooks=hooks)
        checkpoints = Checkpoints(
            run.path, task=task, identity=record["identity"], max_to_keep=s.keep_checkpoints,
            position=self.train.position(s.batch_size) if self.train.positional else None,
            state={"step": step, "nonfinite_steps": call.nonfinite_steps,
                   "last_nonfinite": call.last_nonfinite, "best": best,
                   **({"iterator": kept} if kept is not None else {}),
                   **CallbackList(user).states()})
        self.display.best = best
        agreement = distribute.Agreement(self.strategy, self.role)
        built_in = [NonFinite(s.on_nan, call, skip_hint=self.skip_hint), self.display, *hooks]
        if self.val is not None:
            dataset = self.val.eval_dataset(s.batch_size)
            # At least one evaluation per epoch: on a small data set `eval_every` steps can be
            # several epochs, too few evaluations for early stopping to find the best one.
            every = min(s.eval_every, per_epoch) if s.eval_per_epoch and per_epoch else s.eval_every
            built_in.append(Evaluation(Evaluator(task, dataset.element_spec, jit_compile=jit),
                                       dataset, every, agreement))
        built_in += [BestCopy(best, checkpoints), EarlyStopping(best, s.patience)]
        checkpointing = Checkpointing(checkpoints, s.checkpoint_every, trainable_variables(task))
        if kept is not None:
            built_in.append(IteratorBytes(kept))
        callbacks = CallbackList([*built_in, *user, checkpointing])
        if self.resume:
            self._restore(run, source, checkpoints, record)
        else:
            run.write_record(record)
            if self.on_start:
                self.on_start(run.path, False)
            # ckpt-0: a run interrupted before its first periodic checkpoint can still be resumed.
            checkpoints.save(0)
            self.display.log_to(run.log_file)
            self.display.log(f"started {run.path}: {type(task).__name__} ({_versions()})")
        if self.strategy:
            self.display.log(f"{s.strategy}: {self.strategy.num_replicas_in_sync} replicas, "
                             f"worker {self.role.worker} of {self.role.num_workers}")
        # A kept iterator was restored. A positional source at step 0 on one device reuses the
        # unread traced iterator (~0.2 s); others build their own: a Dataset's unseeded random ops
        # take their seeds from where it is built (a resume diverged: tests/data/test_sources.py).
        start = int(step.numpy())
        unread = traced if (self.train.positional and kept is None and self.strategy is None
                            and start == 0) else None
        loop = Loop(task=task, call=call, iterator=kept or unread or self._iterator(start),
                    total_steps=total, end_reason=end_reason, steps_per_epoch=per_epoch,
                    log_every=s.log_every, steps_per_loop=s.steps_per_loop, callbacks=callbacks,
                    run_path=run.path, writer=writer, signals=signals, agreement=agreement,
                    log=self.display.log, resume_hint=self.resume_hint)
        try:
            result = loop.run()
        finally:
            writer.close()
        return self._finish(result, run, best, total, wall=time.monotonic() - began)

    def _finish(self, result, run: RunDir, best: Best, total: int, *, wall: float) -> FitResult:
        """The run's last line on the display, and the `FitResult`."""
        monitor = best.monitor
        best_text = (f"best {monitor} {best.best_value:.4f} (step {best.best_step})"
                     if math.isfinite(best.best_value) else f"no {monitor} measured")
        if result.stop_reason == "already_done":
            self.display.log(f"{run.path}: nothing left to do at step {result.step} (total {total}); "
                             f"{best_text}; raise --epochs/--max-steps/--patience to continue")
        else:
            ended = "finished" if result.stop_reason in FINAL_REASONS else "stopped"
            self.display.log(f"{ended} at step {result.step} ({result.stop_reason.replace('_', ' ')}) "
                             f"in {clock(wall)}; {best_text}")
        return FitResult(step=result.step, steps_run=result.steps_run,
                         stop_reason=result.stop_reason, monitor=monitor,
                         best_value=best.best_value, best_step=best.best_step,
                         train_seconds=result.train_seconds,
                         examples_per_second=(result.examples / result.train_seconds
                                              if result.train_seconds else 0.0),
                         wall_seconds=wall)

    def _scope(self):
        return self.strategy.scope() if self.strategy else contextlib.nullcontext()

    def _monitor(self) -> tuple[str, str]:
        s, task = self.settings, self.task
        monitor = s.monitor or task.monitor or ("val/loss" if self.val is not None else "train/loss")
        if monitor.startswith("val/") and self.val is None:
            raise ConfigError(f"monitor = {monitor!r} needs validation data (val=); monitor a "
                              f"'train/...' value instead")
        mode = s.mode if s.mode != "auto" else (task.mode if not s.monitor and task.mode else
                                                infer_mode(monitor))
        return monitor, mode

    def _total_steps(self, per_epoch: int | None) -> tuple[int, str]:
        s = self.settings
        if per_epoch is None and not s.max_steps:
            raise ConfigError("the training data does not say how many batches an epoch has (an "
                              "infinite or unknown-length dataset); set max_steps")
        total = s.num_epochs * per_epoch if per_epoch is not None else s.max_steps
        if s.max_steps and s.max_steps <= total:
            return s.max_steps, "max_steps"
        return total, "epochs"

    def _dataset(self, start_step: int, replicas=None) -> tf.data.Dataset:
        s = self.settings
        # A sized source's elements carry their batch size on one device too (the step's own
        # shape ops cost a fast model ~5 %); distributed ones always do.
        sizes = {"with_sizes": True} if self.train.sized and self.strategy is None else {}
        return self.train.train_dataset(batch_size=s.batch_size, seed=s.seed,
                                        num_epochs=s.num_epochs, start_step=start_step,
                                        replicas=replicas, **sizes)

    def _iterator(self, start_step: int):
        if self.strategy is None:
            return iter(self._dataset(start_step))
        if self.train.sized:
            return iter(distribute.distribute_dataset(
                self.strategy, lambda replicas: self._dataset(start_step, replicas)))
        return iter(self.strategy.experimental_distribute_dataset(self._dataset(start_step)))

    def _restore(self, run: RunDir, source: RunDir, checkpoints: Checkpoints, record: dict) -> None:
        check_unchanged(source, record)
        restored, warnings = checkpoints.restore_latest(source.checkpoints)
        if self.on_start:
            self.on_start(run.path, True)
        self.display.log_to(run.log_file)
        for warning in warnings:
            self.display.log(f"warning: {warning}")
        step = int(checkpoints.step.numpy())
        dropped = drop_events_after(run.logs, step)
        if dropped:
            self.display.log(f"removed {dropped} TensorBoard events of steps after the checkpoint "
                             f"(they are being run again)")
        self.display.log(f"resumed from {restored or 'the start'} at step {step} ({_versions()})")


def _versions() -> str:
    return (f"looptrain {__version__}, TensorFlow {tf.__version__}, Keras "
            f"{keras.__version__}, Python {sys.version.split()[0]}")
