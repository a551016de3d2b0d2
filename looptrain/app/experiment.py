"""`train_and_evaluate(config, run_dir)`: the command line's training, as a function the scripts and
the tests both call (Flax's `train.py`).

The config decides the task: the built-in `Classification` on the configured data and model, or
a task of the user's (`task.path = "module:attr"`, its arguments the rest of `[task]`), which
then also provides its data (`train_data()`, `val_data()`). Everything else is `lt.fit`: the
loop's settings are the `[train]` keys it knows, and the command line adds its own files to the
run directory (config.json, and for the classifier vocab.txt, labels.txt, data.json) and the
run-start summaries.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import tensorflow as tf

from looptrain.app import hints
from looptrain.app.inspect import RunStart
from looptrain.callbacks import Display
from looptrain.config import Config
from looptrain.user_code import import_attr
from looptrain.data.corpus import Corpus, load_corpus, resolve_data_dir
from looptrain.errors import ConfigError
from looptrain.run import RunDir
from looptrain.settings import LoopSettings
from looptrain.task import Task
from looptrain.tasks.classification import Classification
from looptrain.training import FitResult, fit


def loop_settings(config: Config) -> dict:
    """The `lt.fit` settings of a config: its `[train]` keys that are the loop's."""
    return {f.name: getattr(config.train, f.name) for f in dataclasses.fields(LoopSettings)}


def make_classifier(config: Config, corpus: Corpus) -> Classification:
    """The built-in classifier the config describes, on `corpus`."""
    t = config.train
    return Classification(
        corpus=corpus, model=dataclasses.asdict(config.model), model_extra=dict(config.model_extra),
        learning_rate=t.learning_rate, lr_schedule=t.lr_schedule, lr_decay_steps=t.lr_decay_steps,
        lr_decay_rate=t.lr_decay_rate, warmup_steps=t.warmup_steps, clip_norm=t.clip_norm,
        precision=t.precision, num_micro_batches=t.num_micro_batches,
        label_smoothing=t.label_smoothing, class_weights=t.class_weights,
        bucket_window=config.data.bucket_window)


def make_user_task(config: Config) -> Task:
    """The user's task `task.path` names, constructed with the `[task]` arguments."""
    task_class = import_attr(config.task_path, "'task.path'")
    if not (isinstance(task_class, type) and issubclass(task_class, Task)):
        raise ConfigError(f"'task.path' is {config.task_path!r}, which is not an lt.Task subclass")
    return task_class(**config.task_params)


def train_and_evaluate(config: Config, run_dir: str | Path, *, resume: bool = False,
                       display: Display | None = None) -> FitResult:
    """Trains `config` into `run_dir`, or continues the run there when `resume` is True.

    Args:
        config: the resolved configuration; when resuming, the run's saved config with any
            permitted overrides already applied (see `config.resume_config`).
        run_dir: the run directory (created if new).
        resume: continue from the latest checkpoint instead of starting fresh.
        display: where progress goes; a default terminal display when None.

    Raises:
        UserError: bad data, a run directory in the wrong state, or a checkpoint that does not match.
    """
    display = display or Display()
    run = RunDir(run_dir)
    if resume:
        run.check_resumable()
    input_spec = None
    if config.task_path:
        task = make_user_task(config)
        train, val = task.train_data(), task.val_data()

        def on_start(path: Path, resumed: bool) -> None:
            RunDir(path).save_config(config)
    else:
        config = config.replace({"data.data_dir": str(resolve_data_dir(config.data.data_dir,
                                                                       config.data.embedded))})
        corpus = load_corpus(
            config.data.data_dir, seq_length=config.data.seq_length,
            vocab_size=config.data.vocab_size, vocab=run.load_vocab() if resume else None,
            labels=run.load_labels() if resume else None, splits=("train", "val"))
        if resume:
            run.check_same_data(corpus.fingerprints(), config.data.data_dir)
        task = make_classifier(config, corpus)
        train, val = task.train_data(), task.val_data()
        input_spec = tf.TensorSpec([None, *corpus.example_shape], corpus.dtype, name="inputs")

        def on_start(path: Path, resumed: bool) -> None:
            if resumed:
                RunDir(path).save_config(config)
            else:
                RunDir(path).initialize(config, corpus.vocab, corpus.labels, corpus.fingerprints())

    return fit(task, train=train, val=val, run_dir=run_dir, resume=resume, display=display,
               callbacks=[RunStart(config, display, input_spec)], on_start=on_start,
               resume_hint=hints.resume(run_dir),
               skip_hint=hints.resume(run_dir, flags="--on-nan skip"), **loop_settings(config))
