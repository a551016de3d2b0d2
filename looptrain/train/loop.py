"""`train_and_evaluate`: the outer training loop the scripts and the tests both call.

The loop owns cadence only (all counts in steps): write training scalars every `log_every`, evaluate
on the validation split every `eval_every` (and at the end), keep the best model, stop early after
`patience` steps without improvement, checkpoint every `checkpoint_every` (and at the end).
Nothing is written into the run directory until the data and model have been checked, so a bad
input never leaves a half-made run behind.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from looptrain.config import Config
from looptrain.data.corpus import load_corpus, resolve_data_dir
from looptrain.data.pipeline import make_eval_dataset, make_train_dataset, steps_per_epoch
from looptrain.models import build_model, create_model, get_model_class
from looptrain.run import RunDir
from looptrain.train.checkpoint import Checkpoints, EarlyStopping
from looptrain.train.progress import Display
from looptrain.train.step import Evaluator, Trainer, make_optimizer
from looptrain.train.summaries import SummaryWriter


@dataclass(frozen=True)
class TrainResult:
    """What a call to `train_and_evaluate` did."""

    step: int  # global step reached
    steps_run: int  # steps run by this call (less than `step` after a resume)
    best_value: float  # best validation accuracy (-inf if never evaluated)
    best_step: int
    stop_reason: str  # "epochs", "max_steps", "early_stopping" or "already_done"
    train_seconds: float  # time inside train steps only
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
    run = RunDir(run_dir)
    run.check_resumable() if resume else run.check_new()
    get_model_class(config.model.name)  # an unknown model fails before any data is read
    config = config.replace({"data.data_dir": str(resolve_data_dir(config.data.data_dir))})
    corpus = load_corpus(
        config.data.data_dir, seq_length=config.data.seq_length, vocab_size=config.data.vocab_size,
        vocab=run.load_vocab() if resume else None, labels=run.load_labels() if resume else None,
        splits=("train", "val"))

    keras.utils.set_random_seed(config.train.seed)
    model = create_model(config.model, vocab_size=len(corpus.vocab), num_classes=len(corpus.labels))
    build_model(model, config.data.seq_length)
    optimizer = make_optimizer(learning_rate=config.train.learning_rate,
                               clip_norm=config.train.clip_norm)
    step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
    trainer = Trainer(model, optimizer, step_var)  # builds the optimizer slots before any restore
    early = EarlyStopping(config.train.patience)
    checkpoints = Checkpoints(run.path, model=model, optimizer=optimizer, step=step_var,
                              early_stopping=early, max_to_keep=config.train.keep_checkpoints)
    if resume:
        restored = checkpoints.restore_latest()
        display.log(f"resumed from {restored} at step {int(step_var.numpy())}")
        run.save_config(config)
    else:
        run.initialize(config, corpus.vocab, corpus.labels)
    return _loop(config, run, corpus, trainer, early, checkpoints, display)


def _loop(config, run, corpus, trainer, early, checkpoints, display) -> TrainResult:
    t = config.train
    x_train, y_train = corpus.splits["train"]
    per_epoch = steps_per_epoch(len(x_train), t.batch_size)
    total = t.num_epochs * per_epoch
    if t.max_steps:
        total = min(total, t.max_steps)
    step = start = int(trainer.step.numpy())
    if step >= total or early.should_stop(step):
        display.log(f"{run.path}: nothing left to do at step {step} (total {total}); "
                    f"raise --epochs/--max-steps/--patience to continue")
        return _result(step, 0, early, "already_done", 0.0, t.batch_size)

    iterator = iter(make_train_dataset(x_train, y_train, batch_size=t.batch_size, seed=t.seed,
                                       num_epochs=t.num_epochs, start_step=step))
    val_dataset = make_eval_dataset(*corpus.splits["val"], batch_size=t.batch_size)
    evaluator = Evaluator(trainer.model)
    writer = SummaryWriter(run.logs)
    display.start(step=step, total=total)
    stop_reason, train_seconds, train_values = None, 0.0, {}
    try:
        while stop_reason is None:
            began = time.perf_counter()
            trainer.train_step(iterator)
            train_seconds += time.perf_counter() - began
            step += 1
            if step % t.log_every == 0 or step == total:
                values = trainer.read_metrics(reset=True)
                train_values = {f"train/{k}": v for k, v in values.items()}
                train_values["train/learning_rate"] = float(trainer.optimizer.learning_rate.numpy())
                writer.scalars(step, train_values)
                display.update(step, loss=values["loss"], accuracy=values["accuracy"])
            else:
                display.update(step)
            if step >= total:
                stop_reason = "max_steps" if t.max_steps and step >= t.max_steps else "epochs"
            if step % t.eval_every == 0 or stop_reason:
                _evaluate(evaluator, val_dataset, step, per_epoch, t.num_epochs, early, checkpoints,
                          writer, display, train_values)
                if stop_reason is None and early.should_stop(step):
                    stop_reason = "early_stopping"
            if step % t.checkpoint_every == 0 or stop_reason:
                checkpoints.save(step)
    finally:
        display.stop()
        writer.close()
    display.log(f"stopped at step {step} ({stop_reason.replace('_', ' ')}); best val accuracy "
                f"{float(early.best_value.numpy()):.4f} at step {int(early.best_step.numpy())}")
    return _result(step, step - start, early, stop_reason, train_seconds, t.batch_size)


def _evaluate(evaluator, dataset, step, per_epoch, num_epochs, early, checkpoints, writer, display,
              train_values) -> None:
    """Validation pass: summaries, best-model copy on improvement, one log line."""
    values = {k: float(v) for k, v in evaluator.evaluate(dataset).items()}
    writer.scalars(step, {f"val/{k}": v for k, v in values.items()})
    writer.flush()
    improved = early.update(step, values["accuracy"])
    if improved:
        checkpoints.save_best(step, {"val_accuracy": values["accuracy"], "val_loss": values["loss"]})
    epoch = min((step - 1) // per_epoch + 1, num_epochs)
    train = (f"train loss {train_values['train/loss']:.4f} acc {train_values['train/accuracy']:.4f} | "
             if train_values else "")
    display.log(f"step {step:>6}  epoch {epoch}/{num_epochs} | {train}val loss {values['loss']:.4f} "
                f"acc {values['accuracy']:.4f}{'  *best' if improved else ''}")
    display.update(step, best=float(early.best_value.numpy()))


def _result(step, steps_run, early, reason, seconds, batch_size) -> TrainResult:
    return TrainResult(
        step=step, steps_run=steps_run, best_value=float(early.best_value.numpy()),
        best_step=int(early.best_step.numpy()), stop_reason=reason, train_seconds=seconds,
        examples_per_second=steps_run * batch_size / seconds if seconds else 0.0)
