"""`make bench`: training throughput of looptrain against `model.fit` and a bare compiled loop.

For each workload, on the same model class, data, batch size and seed, each variant in a process of
its own (`bench_variant`; `bench.py` alternates the processes and reports ratios between neighbours):

- `looptrain`: training as users run it (`lt.fit`: metrics, TensorBoard summaries, the divergence
  guard, the progress display's per-call updates), timed between its own call boundaries.
- `fit_default`: `model.compile(...)` + `model.fit` with Keras' defaults, as a `fit` user gets them:
  XLA "auto", which Keras resolves in `compile()` to on where the model supports it (CPU hosts
  included) unless op determinism is on, which its process never switches on.
- `fit_matched`: `model.fit` with looptrain's XLA choice and `steps_per_execution` = the steps
  looptrain runs per compiled call.
- `bare`: the practical limit: the same step (the task's objective and update) with the same steps
  per call and XLA choice in the same kind of `tf.while_loop`, and nothing else: no metrics,
  logging, checkpointing or guard.
- `pipeline`: the input pipeline alone, drained inside a compiled loop as the step drains it.

Workloads: the built-in classifier on a config (`textcnn`, `mlp`), and a user's task written with
the public API only (`task`: `MLPTask` below, a plain GradientTape step). Each figure is the median
of several timed windows after a warm-up (tracing and XLA compilation happen in the warm-up).
Examples/s counts `batch_size` per step.
Only public names of looptrain are used here.
"""

from __future__ import annotations

import os
import resource
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import looptrain as lt
from looptrain.app.experiment import loop_settings, make_classifier
from looptrain.config import Config
from looptrain.engine import determinism
from looptrain.data.corpus import load_corpus, resolve_data_dir
from looptrain.data.pipeline import make_train_dataset, steps_per_epoch
from looptrain.tasks.classification import make_optimizer
from looptrain.task import use_jit

VARIANTS = ("looptrain", "fit_default", "fit_matched", "bare", "pipeline")


@dataclass(frozen=True)
class Plan:
    """How long to measure: `warmup` steps, then `repeats` windows of `window` steps each."""

    warmup: int
    window: int
    repeats: int


class MLPTask(lt.Task):
    """A user's task as the README writes one: an MLP classifier, a plain GradientTape step."""

    def __init__(self, hidden: int = 64, num_classes: int = 10, learning_rate: float = 1e-3):
        super().__init__()
        self.hidden, self.num_classes, self.learning_rate = hidden, num_classes, learning_rate

    def build(self):
        self.model = keras.Sequential([keras.layers.Dense(self.hidden, activation="relu"),
                                       keras.layers.Dense(self.hidden, activation="relu"),
                                       keras.layers.Dense(self.num_classes)])
        self.model(tf.zeros([1, 32]))
        self.optimizer = keras.optimizers.Adam(self.learning_rate)

    def train_step(self, batch):
        x, y = batch
        with tf.GradientTape() as tape:
            logits = self.model(x, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        return {"loss": loss}

    def eval_step(self, batch):
        x, y = batch
        logits = self.model(x, training=False)
        return {"loss": tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits)}


class Gate:
    """Turn-taking with the parent process (`rounds.take_turns`), one timed window at a time.

    Before each window the child says it is ready (`@@ready` on stdout) and waits for `go` on
    stdin; after it, it reports the window's seconds per step (`@@window S`). So the variants'
    processes, all started and warmed up, run their windows in alternation, and a window of one is
    compared with the neighbouring window of the other: on this VM the host's load changes over
    seconds to minutes, and processes run minutes apart differed by up to 30 %
    (docs/performance-bench.md). Ungated (`Gate(None)`), windows run back to back.
    """

    def __init__(self, stream=None):
        self.stream = stream  # the parent's commands (stdin), or None when run alone

    def wait(self) -> None:
        if self.stream is None:
            return
        print("@@ready", flush=True)
        command = self.stream.readline().strip()
        if command != "go":
            raise SystemExit(f"bench child: expected 'go' from the parent, got {command!r}")

    def done(self, seconds_per_step: float) -> None:
        if self.stream is not None:
            print(f"@@window {seconds_per_step!r}", flush=True)


def steps_per_call(config: Config) -> int:
    """The steps looptrain runs per compiled call between evaluations: calls end at every log step
    and after at most `steps_per_loop` steps (the shipped configs make one divide the other)."""
    return min(config.train.steps_per_loop, config.train.log_every)


def bench_variant(config: Config, plan: Plan, variant: str, *, user_task: bool = False,
                  gate: Gate | None = None) -> dict:
    """Examples/second of ONE variant on `config`'s data (and model, or `MLPTask`): the median of
    `plan.repeats` timed windows after `plan.warmup` steps, each window's figure, and the peak RSS
    (MB) of the process.

    One variant per process: variants that share a process share its thread pools, allocator and
    caches, and a window of one then times the others' leftovers (docs/performance-bench.md). With
    a `gate`, each window waits for its turn (`Gate`).
    """
    gate = gate or Gate()
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r} (known: {', '.join(VARIANTS)})")
    data_dir = resolve_data_dir(config.data.data_dir, config.data.embedded)
    config = config.replace({"data.data_dir": str(data_dir)})
    corpus = load_corpus(data_dir, seq_length=config.data.seq_length,
                         vocab_size=config.data.vocab_size, splits=("train", "val"))
    x, y = corpus.splits["train"]
    total = plan.warmup + plan.window * plan.repeats
    epochs = total // steps_per_epoch(len(y), config.train.batch_size) + 2

    def make_task():
        keras.utils.set_random_seed(config.train.seed)
        task = MLPTask() if user_task else make_classifier(config, corpus)
        task.build()
        return task

    def dataset():
        return make_train_dataset((x, y), batch_size=config.train.batch_size, seed=config.train.seed,
                                  num_epochs=epochs).repeat()

    if variant == "looptrain":
        task = MLPTask() if user_task else make_classifier(config, corpus)
        seconds = _looptrain(task, corpus, config, plan, epochs, gate)
    else:
        jit = use_jit(config.train.jit_compile, make_task())
        metrics = [] if user_task else ["accuracy"]  # what the step computes besides the loss
        # `fit` as its users get it: Keras resolves jit_compile="auto" in compile(), and a `fit`
        # user has not enabled op determinism (under which Keras would keep XLA off). Everything
        # else runs in looptrain's determinism state (train.deterministic, on by default).
        if variant != "fit_default" and config.train.deterministic:
            determinism.enable()  # as lt.fit does: the pipeline reads as it does under looptrain
        if variant.startswith("fit"):
            runner = _Fit(make_task().model, config, dataset(), matched=variant == "fit_matched",
                          jit=jit, metrics=metrics, gate=gate)
        elif variant == "bare":
            runner = _bare(make_task(), dataset(), steps_per_call(config), jit, gate)
        else:
            runner = _pipeline(dataset(), gate)
        runner.run(plan)
        seconds = runner.seconds
    batch = config.train.batch_size
    return {"ex_s": round(batch / statistics.median(seconds), 1),
            "windows_ex_s": [round(batch / s, 1) for s in seconds],
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


class _Windows(lt.Callback):
    """Times looptrain's windows between call boundaries (the loop reports every compiled call)."""

    def __init__(self, plan: Plan, gate: Gate):
        self.plan, self.gate = plan, gate
        self.marks = [plan.warmup + i * plan.window for i in range(plan.repeats + 1)]
        self.seconds: list[float] = []  # per step, one entry per window
        self._began = None

    def on_call_end(self, loop, result) -> None:
        ended, step = time.perf_counter(), loop.step
        if step not in self.marks:
            return
        if self._began is not None:
            self.seconds.append((ended - self._began) / self.plan.window)
            self.gate.done(self.seconds[-1])
        self.gate.wait()  # the next window's turn, or (after the last) the end of every window
        self._began = time.perf_counter()


def _looptrain(task, corpus, config: Config, plan: Plan, epochs: int, gate: Gate) -> list[float]:
    from rich.console import Console

    total = plan.warmup + plan.window * plan.repeats
    # Evaluation and checkpoints only after the measured steps: `fit` and `bare` do neither. The
    # monitor is a validation value for the same reason: on `train/loss` the best copy would be
    # written at every log step that improves it (26 writes in the task workload's windows, 12 %).
    settings = {**loop_settings(config), "max_steps": total + 1, "num_epochs": epochs,
                "eval_every": total + 1, "checkpoint_every": total + 1, "patience": total + 1,
                "monitor": "val/loss", "eval_per_epoch": False}
    timer = _Windows(plan, gate)
    display = lt.callbacks.Display(Console(file=open(os.devnull, "w")))  # a user's display costs too
    with tempfile.TemporaryDirectory(prefix="looptrain-bench-") as tmp:
        lt.fit(task, train=lt.data.ArraySource(corpus.splits["train"]),
               val=lt.data.ArraySource(corpus.splits["val"]), run_dir=f"{tmp}/run",
               callbacks=[timer], display=display, **settings)
    if len(timer.seconds) != plan.repeats:
        raise RuntimeError(f"looptrain's calls ended at {len(timer.seconds) + 1} of the window "
                           f"steps {timer.marks}; choose windows on call boundaries")
    return timer.seconds


class _EpochTimes(keras.callbacks.Callback):
    """Seconds per step of each epoch (a window), each epoch begun at the gate."""

    def __init__(self, steps: int, gate: Gate):
        super().__init__()
        self.steps, self.gate, self.seconds = steps, gate, []

    def on_epoch_begin(self, epoch, logs=None):
        self.gate.wait()
        self._began = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append((time.perf_counter() - self._began) / self.steps)
        self.gate.done(self.seconds[-1])


class _Fit:
    """`model.fit`: a warm-up fit, then ONE fit of an epoch per window (the iterator is made once:
    a fit per window would time its set-up, ~40 ms, in every window)."""

    def __init__(self, model, config: Config, dataset, *, matched: bool, jit: bool, metrics: list,
                 gate: Gate):
        self.model, self.gate = model, gate
        options = {"jit_compile": jit, "steps_per_execution": steps_per_call(config)}
        self.model.compile(optimizer=make_optimizer(learning_rate=config.train.learning_rate,
                                                    clip_norm=config.train.clip_norm,
                                                    precision=config.train.precision),
                           loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                           metrics=metrics, **(options if matched else {}))
        self.dataset, self.seconds = dataset, []

    def run(self, plan: Plan) -> None:
        # shuffle=False: the dataset is shuffled already (Keras ignores the default True for a
        # dataset, with a warning in every fit process).
        self.model.fit(self.dataset, epochs=1, steps_per_epoch=plan.warmup, verbose=0,
                       shuffle=False)  # traces
        timer = _EpochTimes(plan.window, self.gate)
        self.model.fit(self.dataset, epochs=plan.repeats, steps_per_epoch=plan.window,
                       callbacks=[timer], verbose=0, shuffle=False)
        self.gate.wait()  # the end of every variant's windows
        self.seconds = timer.seconds


class _Calls:
    """A compiled `run(iterator, num_steps)` timed over whole windows of calls."""

    def __init__(self, run, dataset, per_call: int, gate: Gate, *, min_window: int = 0):
        self.call, self.iterator, self.per_call, self.gate = run, iter(dataset), per_call, gate
        self.min_window = min_window  # steps: windows shorter than this are too short to time
        self.seconds: list[float] = []

    def run(self, plan: Plan) -> None:
        self.warm_up(plan.warmup)
        for _ in range(plan.repeats):
            self.window(plan.window)
        self.gate.wait()  # the end of every variant's windows

    def warm_up(self, steps: int) -> None:  # the first call traces and compiles
        for _ in range(max(1, steps // self.per_call)):
            self.call(self.iterator, tf.constant(self.per_call))

    def window(self, steps: int) -> None:
        calls = max(1, max(steps, self.min_window) // self.per_call)
        self.gate.wait()
        began = time.perf_counter()
        for _ in range(calls):
            result = self.call(self.iterator, tf.constant(self.per_call))
        if result is not None:
            result.numpy()
        self.seconds.append((time.perf_counter() - began) / (calls * self.per_call))
        self.gate.done(self.seconds[-1])


def _bare(task, dataset, per_call: int, jit: bool, gate: Gate) -> _Calls:
    """The practical limit: the task's objective (the built-in classifier's) or plain step (a
    user's), applied by its optimizer; the same steps per call; nothing else."""
    update = _bare_update(task)
    update = tf.function(update, jit_compile=jit) if jit else update

    def body(iterator, i):
        update(next(iterator))
        return (i + 1,)

    @tf.function
    def run(iterator, num_steps):  # the while loop of looptrain's compiled call, nothing carried
        (count,) = tf.while_loop(lambda i: i < num_steps, lambda i: body(iterator, i),
                                 (tf.constant(0),))
        return count

    return _Calls(run, dataset, per_call, gate)


def _bare_update(task):
    if not hasattr(task, "objective"):
        return task.train_step
    variables = task.model.trainable_variables

    def update(batch):  # no metric, no norm, no guard: what the step needs and nothing else
        with tf.GradientTape() as tape:
            loss, _ = task.objective(batch, training=True)
            scaled = task.optimizer.scale_loss(loss)
        task.optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))

    return update


def _pipeline(dataset, gate: Gate) -> _Calls:
    """The input pipeline alone, drained inside a compiled loop as the step drains it."""
    @tf.function
    def run(iterator, num_steps):
        total = tf.constant(0, tf.int64)
        for _ in tf.range(num_steps):  # touch every batch so nothing is optimised away
            _, y = next(iterator)
            total += tf.cast(tf.reduce_sum(y), tf.int64)
        return total

    return _Calls(run, dataset, 100, gate, min_window=1000)


def make_vectors(directory: Path, *, dim: int = 32, num_classes: int = 10, seed: int = 0) -> Path:
    """The `mlp` and `task` workloads' data: GENERATED Gaussian clusters, `dim` features, as .npz."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(num_classes, dim)).astype(np.float32)
    directory.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", 12_800), ("val", 1_280), ("test", 1_280)):
        y = rng.integers(0, num_classes, size=count).astype(np.int32)
        x = centers[y] + rng.normal(scale=1.5, size=(count, dim)).astype(np.float32)
        np.savez(directory / f"{split}.npz", x=x, y=y)
    return directory
