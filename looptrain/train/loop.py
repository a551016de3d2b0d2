"""`train_and_evaluate`: the outer training loop the scripts and the tests both call.

The loop owns cadence only (all counts in steps): write training scalars every `log_every`, evaluate
on the validation split every `eval_every` (and at the end), keep the best model, stop early after
`patience` steps without improvement, checkpoint every `checkpoint_every` (and at the end).
Nothing is written into the run directory until the data and model have been checked, so a bad
input never leaves a half-made run behind.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from looptrain import __version__
from looptrain.config import Config
from looptrain.data.corpus import load_corpus, resolve_data_dir
from looptrain.data.pipeline import make_eval_dataset, make_train_dataset, steps_per_epoch
from looptrain.errors import Stopped, TrainingDiverged, WorkerLost
from looptrain.models import build_model, create_model, get_model_class
from looptrain.run import RunDir
from looptrain.train import distribute, inspect
from looptrain.train.call import TrainCall
from looptrain.train.checkpoint import Checkpoints, EarlyStopping
from looptrain.train.losses import class_weights, make_loss_fn
from looptrain.train.progress import Display
from looptrain.train.schedules import make_learning_rate
from looptrain.train.signals import StopSignals
from looptrain.train.step import Evaluator, Trainer, make_optimizer
from looptrain.train.summaries import SummaryWriter, drop_events_after


@dataclass(frozen=True)
class TrainResult:
    """What a call to `train_and_evaluate` did."""

    step: int  # global step reached
    steps_run: int  # steps run by this call (less than `step` after a resume)
    best_value: float  # best validation accuracy (-inf if never evaluated)
    best_step: int
    stop_reason: str  # "epochs", "max_steps", "early_stopping" or "already_done"
    train_seconds: float  # time inside the compiled training calls (steps and their logging)
    examples_per_second: float  # training throughput of this call


def train_and_evaluate(config: Config, run_dir: str | Path, *, resume: bool = False,
                       display: Display | None = None) -> TrainResult:
    """Trains `config` into `run_dir`, or continues the run there when `resume` is True.

    Args:
        config: the resolved configuration; when resuming, the run's saved config with any
            permitted overrides already applied (see `config.resume_config`).
        run_dir: the run directory (created if new).
        resume: continue from the latest checkpoint instead of starting fresh.
        display: where progress goes; a default terminal display when None.

    Returns:
        A `TrainResult`.

    Raises:
        UserError: bad data, a run directory in the wrong state, or a checkpoint that does not match.
    """
    display = display or Display()
    strategy = distribute.make_strategy(config.train.strategy, config.train.num_devices)
    role = distribute.role_of(strategy)
    run = RunDir(run_dir)
    if resume:
        run.check_resumable()
    elif role.is_chief:
        run.check_new()
    get_model_class(config.model.name)  # an unknown model fails before any data is read
    config = config.replace({"data.data_dir": str(resolve_data_dir(config.data.data_dir,
                                                                   config.data.embedded))})
    corpus = load_corpus(
        config.data.data_dir, seq_length=config.data.seq_length, vocab_size=config.data.vocab_size,
        vocab=run.load_vocab() if resume else None, labels=run.load_labels() if resume else None,
        splits=("train", "val"))
    if resume:
        run.check_same_data(corpus.fingerprints(), config.data.data_dir)
    cluster = _Cluster(strategy, role, source=run)
    if not role.is_chief:
        # Every worker saves (TensorFlow's rule for multi-worker checkpoints), but only the chief
        # into the run directory: the others into a temporary directory of their own.
        with StopSignals() as signals, distribute.scratch_directory(run.path, role.worker) as scratch:
            return _set_up_and_train(config, RunDir(scratch), corpus, resume, display, signals, cluster)
    existed = run.path.exists()
    # Signals are caught from here on, so a Ctrl-C during set-up cannot leave half a run directory:
    # it is honoured (checkpoint, exit) once the loop starts.
    with StopSignals() as signals:
        try:
            with run.lock():
                run.check_resumable() if resume else run.check_new()  # again, now that we hold it
                return _set_up_and_train(config, run, corpus, resume, display, signals, cluster)
        finally:
            if not existed:
                _remove_if_unused(run.path)


@dataclass(frozen=True)
class _Cluster:
    """The distribution set-up: strategy (None: one device), this worker's role, and the run
    directory whose checkpoints a resume reads (a non-chief worker writes elsewhere)."""

    strategy: tf.distribute.Strategy | None
    role: distribute.Role
    source: RunDir


def _set_up_and_train(config, run, corpus, resume, display, signals, cluster) -> TrainResult:
    """Builds model, optimizer and checkpoints; starts or restores the run; trains it."""
    if config.train.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.train.seed)
    # Model and optimizer variables are the strategy's (mirrored); the step, the counters and the
    # metrics stay plain variables, updated once per step outside the replicas.
    with cluster.strategy.scope() if cluster.strategy else contextlib.nullcontext():
        model = _create_model(config, corpus)
        optimizer = make_optimizer(learning_rate=make_learning_rate(config.train),
                                   clip_norm=config.train.clip_norm, precision=config.train.precision)
        optimizer.build(model.trainable_variables)
    step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
    weights = class_weights(config.train.class_weights, corpus.splits["train"][1], len(corpus.labels))
    trainer = Trainer(  # builds the optimizer slots before any restore
        model, optimizer, step_var, num_micro_batches=config.train.num_micro_batches,
        loss_fn=make_loss_fn(label_smoothing=config.train.label_smoothing, weights=weights),
        jit_compile=use_jit(config, model), stop_on_nonfinite=config.train.on_nan == "stop",
        strategy=cluster.strategy)
    early = EarlyStopping(config.train.patience)
    checkpoints = Checkpoints(
        run.path, model=model, optimizer=optimizer, step=step_var,
        steps_per_epoch=steps_per_epoch(len(corpus.splits["train"][1]), config.train.batch_size),
        early_stopping=early, max_to_keep=config.train.keep_checkpoints,
        counters={"nonfinite_steps": trainer.nonfinite_steps})
    if resume:
        restored, warnings = checkpoints.restore_latest(cluster.source.checkpoints)
        run.save_config(config)
        display.log_to(run.log_file)
        for warning in warnings:
            display.log(f"warning: {warning}")
        dropped = drop_events_after(run.logs, int(step_var.numpy()))
        if dropped:
            display.log(f"removed {dropped} TensorBoard events of steps after the checkpoint (they "
                        f"are being run again)")
        display.log(f"resumed from {restored or 'the start'} at step {int(step_var.numpy())} "
                    f"({_versions()})")
    else:
        # State a model learns from the training split (an n-gram vocabulary, IDF weights): once, for
        # a new run, before ckpt-0, in non-trainable weights; a resume restores it from the checkpoint.
        if hasattr(model, "adapt"):
            model.adapt(corpus.splits["train"][0], vocab=corpus.vocab)
        run.initialize(config, corpus.vocab, corpus.labels, corpus.fingerprints())
        # ckpt-0: a run interrupted before its first periodic checkpoint can still be resumed.
        checkpoints.save(0)
        display.log_to(run.log_file)
        display.log(f"started {run.path}: {config.model.name} on {config.data.data_dir}, "
                    f"{len(corpus.splits['train'][1])} training examples ({_versions()})")
    if cluster.strategy:
        display.log(f"{config.train.strategy}: {cluster.strategy.num_replicas_in_sync} replicas, "
                    f"worker {cluster.role.worker} of {cluster.role.num_workers}")
    return _Loop(config, run, corpus, trainer, early, checkpoints, display, signals,
                 cluster).run_to_end()


def _create_model(config: Config, corpus) -> keras.Model:
    """The configured model for `corpus`, built, its layers computing in `train.precision`."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(config.train.precision)  # layers take the policy when created
    try:
        model = create_model(config.model, vocab_size=corpus.vocab_size,
                             num_classes=len(corpus.labels), data_kind=corpus.kind)
        return build_model(model, corpus.example_shape, corpus.dtype)
    finally:
        keras.config.set_dtype_policy(previous)


def use_jit(config: Config, model: keras.Model, *, accelerator: bool | None = None) -> bool:
    """Resolves `train.jit_compile`. "auto" compiles with XLA only where it is faster and correct:
    on a GPU/TPU host (`accelerator`, detected when None), unless the model opts out
    (`jit_compile_default = False`, e.g. recurrent layers), length bucketing varies the shapes
    (XLA compiles once per distinct input shape) or gradient accumulation slices the batch into
    pieces of data-dependent size (which XLA cannot compile).

    On CPU-only hosts XLA is slower (measured by `make bench` on 2 cores: reference TextCNN 413
    against 477 examples/s, the tiny MLP 47k against 60k), as Keras' own "auto" also assumes.
    """
    if config.train.jit_compile != "auto":
        return config.train.jit_compile == "on"
    if accelerator is None:
        accelerator = any(d.device_type != "CPU" for d in tf.config.list_physical_devices())
    return (accelerator and getattr(model, "jit_compile_default", True)
            and not config.data.bucket_window and config.train.num_micro_batches == 1)


def _remove_if_unused(path: Path) -> None:
    """Removes a run directory this call created if nothing but the lock file got into it."""
    if path.is_dir() and {p.name for p in path.iterdir()} <= {".lock"}:
        (path / ".lock").unlink(missing_ok=True)
        path.rmdir()


def _versions() -> str:
    return (f"looptrain {__version__}, TensorFlow {tf.__version__}, Keras "
            f"{keras.__version__}, Python {sys.version.split()[0]}")


class _Loop:
    """The state of one `train_and_evaluate` call between set-up and the result."""

    def __init__(self, config, run, corpus, trainer, early, checkpoints, display, signals, cluster):
        self.config, self.t = config, config.train
        self.strategy = cluster.strategy
        self.agreement = distribute.Agreement(cluster.strategy, cluster.role)
        self.run, self.trainer, self.early = run, trainer, early
        self.checkpoints, self.display, self.signals = checkpoints, display, signals
        self.nonfinite = int(trainer.nonfinite_steps.numpy())
        self.saved_step = int(trainer.step.numpy())
        self.x_train, self.y_train = corpus.splits["train"]
        self.per_epoch = steps_per_epoch(len(self.x_train), self.t.batch_size)
        # At least one evaluation per epoch: on a small data set `eval_every` steps can be several
        # epochs, too few evaluations for early stopping to find the best one.
        self.eval_every = (min(self.t.eval_every, self.per_epoch) if self.t.eval_per_epoch
                           else self.t.eval_every)
        self.total = self.t.num_epochs * self.per_epoch
        if self.t.max_steps:
            self.total = min(self.total, self.t.max_steps)
        self.bucket_window = config.data.bucket_window
        self.val_dataset = make_eval_dataset(*corpus.splits["val"], batch_size=self.t.batch_size,
                                             by_length=bool(self.bucket_window))
        self.evaluator = Evaluator(trainer.model, jit_compile=use_jit(config, trainer.model))
        self.writer = SummaryWriter(run.logs)
        self.train_values: dict[str, float] = {}
        probe = inspect.make_histogram_probe(trainer.model, self.x_train, self.y_train,
                                             self.t.batch_size) if self.t.histogram_every else None
        self.call = TrainCall(trainer, self.writer, probe)

    def run_to_end(self) -> TrainResult:
        """Trains until the epochs or `max_steps` are done or early stopping triggers."""
        t, step = self.t, int(self.trainer.step.numpy())
        start = step
        if step >= self.total or self.early.should_stop(step):
            self.display.log(f"{self.run.path}: nothing left to do at step {step} (total "
                             f"{self.total}); raise --epochs/--max-steps/--patience to continue")
            return self._result(step, start, "already_done", 0.0)
        def dataset(replicas=None):
            return make_train_dataset(self.x_train, self.y_train, batch_size=t.batch_size, seed=t.seed,
                                      num_epochs=t.num_epochs, start_step=step,
                                      bucket_window=self.bucket_window, replicas=replicas)

        iterator = iter(distribute.distribute_dataset(self.strategy, dataset) if self.strategy
                        else dataset())
        self._inspect_start(step)
        self.display.start(step=step, total=self.total, steps_per_epoch=self.per_epoch,
                           num_epochs=t.num_epochs)
        stop_reason, train_seconds = None, 0.0
        try:
            while stop_reason is None:
                # Any worker's signal stops every worker, at the same step.
                signum = self.agreement.signal(self.signals.requested, StopSignals.STOP_ORDER)
                if signum:
                    self._stop_on_signal(step, signum)
                end = step + self._steps_to_next_event(step)
                began = time.perf_counter()
                result = self.call(iterator, end - step,
                                   log=end % t.log_every == 0 or end == self.total,
                                   histograms=bool(t.histogram_every) and end % t.histogram_every == 0)
                train_seconds += time.perf_counter() - began
                before, step = step, result.step
                self._check_finite(before, step, result.nonfinite_steps)
                self._show_train(step, result.scalars)
                if step >= self.total:
                    stop_reason = "max_steps" if t.max_steps and step >= t.max_steps else "epochs"
                if step % self.eval_every == 0 or stop_reason:
                    self._evaluate(step)
                    if stop_reason is None and self.early.should_stop(step):
                        stop_reason = "early_stopping"
                if step % t.checkpoint_every == 0 or stop_reason:
                    self.checkpoints.save(step)
                    self.saved_step = step
        except (tf.errors.UnavailableError, tf.errors.CancelledError,
                tf.errors.DeadlineExceededError) as exc:
            if self.agreement.strategy is None:
                raise
            self._worker_lost(exc)
        finally:
            self.display.stop()
            self.writer.close()
        self.display.log(
            f"stopped at step {step} ({stop_reason.replace('_', ' ')}); best val accuracy "
            f"{float(self.early.best_value.numpy()):.4f} at step {int(self.early.best_step.numpy())}")
        return self._result(step, start, stop_reason, train_seconds)

    def _steps_to_next_event(self, step: int) -> int:
        """Steps until the next log, evaluation, checkpoint or the end, at most `steps_per_loop`:
        one compiled call runs up to an event (histograms included), never past it, so every
        cadence stays exact."""
        t = self.t
        events = [t.log_every, self.eval_every, t.checkpoint_every] + (
            [t.histogram_every] if t.histogram_every else [])
        following = min((step // every + 1) * every for every in events)
        return min(following, self.total, step + t.steps_per_loop) - step

    def _stop_on_signal(self, step: int, signum: int) -> None:
        """Checkpoints the state after the last finished step and raises `Stopped`."""
        path = self.checkpoints.manager.latest_checkpoint
        if self.saved_step != step:
            path = self.checkpoints.save(step)
        name = signal.Signals(signum).name
        if signum != self.signals.requested:
            name = f"{name} (sent to another worker)"
        message = (f"stopped by {name} at step {step}; checkpoint {path} written; continue with: "
                   f"python scripts/train.py --run-dir {self.run.path} --resume")
        self.display.stop()
        self.display.log(message)
        raise Stopped(message, signum)

    def _worker_lost(self, exc: tf.errors.OpError) -> None:
        """A collective failed because a peer died: stop with one line saying how to go on."""
        reason = next((line.strip() for line in str(exc).splitlines()
                       if "aborted" in line or "reset" in line), type(exc).__name__)
        message = (f"lost contact with another worker ({reason}); stopped without saving; the last "
                   f"checkpoint is step {self.saved_step}; start all workers again with --resume")
        self.display.stop()
        self.display.log(message)
        raise WorkerLost(message) from None

    def _check_finite(self, before: int, step: int, nonfinite: int) -> None:
        """Stops (train.on_nan = stop) or reports skipped batches (skip) after non-finite steps."""
        if nonfinite == self.nonfinite:
            return
        count, self.nonfinite = nonfinite - self.nonfinite, nonfinite
        last = {k: v.numpy() for k, v in self.trainer.last_nonfinite.items()}
        what = f"non-finite loss or gradient (loss {float(last['loss'])})"
        if self.t.on_nan == "skip":
            where = (f"step {last['step']}: {what}; batch skipped" if count == 1 else
                     f"steps {before + 1}-{step}: {count} batches skipped, the last at step "
                     f"{last['step']} with {what}")
            self.display.log(f"{where} ({nonfinite} so far)")
            return
        message = (f"step {last['step']}: {what}; training stopped and nothing was saved after step "
                   f"{self.saved_step}; the last good checkpoint is "
                   f"{self.checkpoints.manager.latest_checkpoint}. Start a new run with a lower "
                   f"train.learning_rate or a train.clip_norm, or continue this one with --resume "
                   f"--on-nan skip")
        self.display.stop()
        self.display.log(message)
        raise TrainingDiverged(message)

    def _inspect_start(self, step: int) -> None:
        """Model summary on the terminal; config text, graph and hparams into TensorBoard."""
        model = self.trainer.model
        self.display.console.print(inspect.parameter_table(model, f"model {self.config.model.name}"))
        self.display.log(f"model {self.config.model.name}: {model.count_params():,} parameters")
        spec = tf.TensorSpec([None, *self.x_train.shape[1:]], self.x_train.dtype, name="inputs")
        inspect.write_run_start(self.writer, self.config, model, step=step, input_spec=spec)

    def _show_train(self, step: int, scalars: dict[str, float] | None) -> None:
        """The display after a call; at a log step (`scalars`, which the call wrote to TensorBoard
        every `log_every` steps and at the end) with the interval's loss and accuracy."""
        if scalars is None:
            self.display.update(step)
            return
        self.train_values = scalars
        self.display.update(step, loss=scalars["train/loss"], accuracy=scalars["train/accuracy"])

    def _evaluate(self, step: int) -> None:
        """Validation pass: summaries, best-model copy on improvement, one log line."""
        values = {k: float(v) for k, v in self.evaluator.evaluate(self.val_dataset).items()}
        values = self.agreement.mean(values)  # every worker takes the same early-stopping decision
        self.writer.scalars(step, {f"val/{k}": v for k, v in values.items()})
        self.writer.flush()
        improved = self.early.update(step, values["accuracy"])
        self.writer.scalars(step, {"val/best_accuracy": float(self.early.best_value.numpy())})
        if improved:
            self.checkpoints.save_best(
                step, {"val_accuracy": values["accuracy"], "val_loss": values["loss"]})
        epoch = min((step - 1) // self.per_epoch + 1, self.t.num_epochs)
        train = self.train_values
        train_text = (f"train loss {train['train/loss']:.4f} acc {train['train/accuracy']:.4f} | "
                      if train else "")
        self.display.log(f"step {step:>6}  epoch {epoch}/{self.t.num_epochs} | {train_text}val loss "
                         f"{values['loss']:.4f} acc {values['accuracy']:.4f}"
                         f"{'  *best' if improved else ''}")
        self.display.update(step, best=float(self.early.best_value.numpy()))

    def _result(self, step: int, start: int, reason: str, seconds: float) -> TrainResult:
        # Exact example count: the last batch of every epoch holds the remainder.
        last = len(self.x_train) - (self.per_epoch - 1) * self.t.batch_size
        in_batch = np.arange(start, step) % self.per_epoch
        examples = int(np.where(in_batch == self.per_epoch - 1, last, self.t.batch_size).sum())
        return TrainResult(
            step=step, steps_run=step - start, best_value=float(self.early.best_value.numpy()),
            best_step=int(self.early.best_step.numpy()), stop_reason=reason, train_seconds=seconds,
            examples_per_second=examples / seconds if seconds else 0.0)
