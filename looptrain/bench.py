"""`make bench`: training throughput of looptrain against `model.fit` and a bare compiled loop.

For each workload, in ONE process, on the same model class, data, batch size and seed:

- `looptrain`: `train_and_evaluate` exactly as users run it (metrics, TensorBoard summaries, the
  divergence guard, the progress display's per-call updates), timed between its own call boundaries.
- `fit_default`: `model.compile(...)` + `model.fit` with Keras' defaults (XLA "auto": on where the
  model supports it).
- `fit_matched`: `model.fit` with looptrain's XLA choice and `steps_per_execution` = the steps
  looptrain runs per compiled call.
- `bare`: the practical limit: the same update (forward, backward, Adam), the same steps per call
  and XLA choice, and nothing else: no metrics, logging, checkpointing or guard.
- `pipeline`: the input pipeline alone, drained inside a compiled loop as the step drains it.

Each figure is the median of several timed windows after a warm-up (tracing and XLA compilation
happen in the warm-up). Examples/s counts `batch_size` per step.
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from looptrain.config import Config
from looptrain.data.corpus import load_corpus, resolve_data_dir
from looptrain.data.pipeline import make_train_dataset, steps_per_epoch
from looptrain.train.loop import _create_model, train_and_evaluate, use_jit
from looptrain.train.progress import Display
from looptrain.train.step import make_optimizer

VARIANTS = ("looptrain", "fit_default", "fit_matched", "bare", "pipeline")


@dataclass(frozen=True)
class Plan:
    """How long to measure: `warmup` steps, then `repeats` windows of `window` steps each."""

    warmup: int
    window: int
    repeats: int


def steps_per_call(config: Config) -> int:
    """The steps looptrain runs per compiled call between evaluations: calls end at every log step
    and after at most `steps_per_loop` steps (the shipped configs make one divide the other)."""
    return min(config.train.steps_per_loop, config.train.log_every)


def bench_workload(config: Config, plan: Plan) -> dict[str, float]:
    """Examples/second of every variant on `config`'s model and training data, plus peak RSS (MB)."""
    data_dir = resolve_data_dir(config.data.data_dir, config.data.embedded)
    config = config.replace({"data.data_dir": str(data_dir)})
    corpus = load_corpus(data_dir, seq_length=config.data.seq_length,
                         vocab_size=config.data.vocab_size, splits=("train",))
    x, y = corpus.splits["train"]
    total = plan.warmup + plan.window * plan.repeats
    epochs = total // steps_per_epoch(len(y), config.train.batch_size) + 2

    def dataset():
        return make_train_dataset(x, y, batch_size=config.train.batch_size, seed=config.train.seed,
                                  num_epochs=epochs, bucket_window=config.data.bucket_window).repeat()

    batch = config.train.batch_size
    # `fit` first: looptrain switches on op determinism (train.deterministic), which cannot be
    # switched off again and which makes Keras turn XLA off for `fit` (jit_compile="auto" and even
    # True). A fit user's process has it off, so `fit` is measured that way; `bare` runs after
    # looptrain, in the same state as looptrain.
    rates = {
        "fit_default": _fit(config, corpus, dataset(), plan, matched=False),
        "fit_matched": _fit(config, corpus, dataset(), plan, matched=True),
        "looptrain": _looptrain(config, plan, epochs),
        "bare": _bare(config, corpus, dataset(), plan),
        "pipeline": _pipeline(dataset(), plan),
    }
    result = {f"{name}_ex_s": round(batch / seconds, 1) for name, seconds in rates.items()}
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


class _CallTimes(Display):
    """A silent display that records when each compiled call ended (the loop reports every call)."""

    def __init__(self):
        from rich.console import Console

        super().__init__(Console(file=open("/dev/null", "w")))
        self.times: dict[int, float] = {}

    def update(self, step: int, **fields) -> None:
        self.times[step] = time.perf_counter()


def _windows(times: dict[int, float], plan: Plan) -> float:
    """Median seconds per step over the timed windows."""
    marks = [plan.warmup + i * plan.window for i in range(plan.repeats + 1)]
    missing = [m for m in marks if m not in times]
    if missing:
        raise RuntimeError(f"no call ended at steps {missing}; choose windows on call boundaries")
    return statistics.median((times[b] - times[a]) / plan.window for a, b in zip(marks, marks[1:]))


def _looptrain(config: Config, plan: Plan, epochs: int) -> float:
    total = plan.warmup + plan.window * plan.repeats
    # Evaluation and checkpoints only after the measured steps: `fit` and `bare` do neither.
    run_config = config.replace({"train.max_steps": total + 1, "train.num_epochs": epochs,
                                 "train.eval_every": total + 1, "train.checkpoint_every": total + 1,
                                 "train.patience": total + 1})
    display = _CallTimes()
    with tempfile.TemporaryDirectory(prefix="looptrain-bench-") as tmp:
        train_and_evaluate(run_config, f"{tmp}/run", display=display)
    return _windows(display.times, plan)


def _new_model(config: Config, corpus) -> keras.Model:
    keras.utils.set_random_seed(config.train.seed)
    return _create_model(config, corpus)


class _EpochTimes(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._began = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._began)


def _fit(config: Config, corpus, dataset, plan: Plan, *, matched: bool) -> float:
    model = _new_model(config, corpus)
    options = {"jit_compile": use_jit(config, model), "steps_per_execution": steps_per_call(config)}
    model.compile(optimizer=make_optimizer(learning_rate=config.train.learning_rate,
                                           clip_norm=config.train.clip_norm,
                                           precision=config.train.precision),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], **(options if matched else {}))
    timer = _EpochTimes()
    # Epoch 1 is the warm-up (tracing, XLA compilation); each later epoch is one timed window.
    model.fit(dataset, epochs=1 + plan.repeats, steps_per_epoch=plan.window,
              callbacks=[timer], verbose=0)
    return statistics.median(timer.seconds[1:]) / plan.window


def _bare(config: Config, corpus, dataset, plan: Plan) -> float:
    model = _new_model(config, corpus)
    optimizer = make_optimizer(learning_rate=config.train.learning_rate,
                               clip_norm=config.train.clip_norm, precision=config.train.precision)
    optimizer.build(model.trainable_variables)

    @tf.function(jit_compile=use_jit(config, model))
    def update(x, y):
        with tf.GradientTape() as tape:
            logits = tf.cast(model(x, training=True), tf.float32)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
            if model.losses:
                loss += tf.cast(tf.add_n(model.losses), tf.float32)
            scaled = optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))

    @tf.function
    def run(iterator, num_steps):
        for _ in tf.range(num_steps):
            update(*next(iterator))

    return _time_calls(run, iter(dataset), steps_per_call(config), plan)


def _pipeline(dataset, plan: Plan) -> float:
    @tf.function
    def run(iterator, num_steps):
        total = tf.constant(0, tf.int64)
        for _ in tf.range(num_steps):  # touch every batch so nothing is optimised away
            _, y = next(iterator)
            total += tf.cast(tf.reduce_sum(y), tf.int64)
        return total

    return _time_calls(run, iter(dataset), plan.window, plan)


def _time_calls(run, iterator, per_call: int, plan: Plan) -> float:
    """Median seconds per step of `run(iterator, per_call)` over the windows, after the warm-up."""
    calls = max(1, plan.window // per_call)
    for _ in range(max(1, plan.warmup // per_call)):  # the first call traces and compiles
        run(iterator, tf.constant(per_call))
    seconds = []
    for _ in range(plan.repeats):
        began = time.perf_counter()
        for _ in range(calls):
            result = run(iterator, tf.constant(per_call))
        if result is not None:
            result.numpy()
        seconds.append((time.perf_counter() - began) / (calls * per_call))
    return statistics.median(seconds)


def make_vectors(directory: Path, *, dim: int = 32, num_classes: int = 10, seed: int = 0) -> Path:
    """The `mlp` workload's data: GENERATED Gaussian clusters, `dim` features, as .npz array data."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(num_classes, dim)).astype(np.float32)
    directory.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", 12_800), ("val", 1_280), ("test", 1_280)):
        y = rng.integers(0, num_classes, size=count).astype(np.int32)
        x = centers[y] + rng.normal(scale=1.5, size=(count, dim)).astype(np.float32)
        np.savez(directory / f"{split}.npz", x=x, y=y)
    return directory


def report(results: dict[str, dict[str, float]], console=None) -> None:
    """Prints the results as a rich table (with the ratios the README quotes)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="training throughput, examples/s (median of the timed windows)")
    for column in ("workload", "looptrain", "fit default", "fit matched", "bare loop", "pipeline",
                   "vs fit default", "vs fit matched", "vs bare", "pipeline / looptrain",
                   "peak RSS MB"):
        table.add_column(column, justify="left" if column == "workload" else "right")
    for name, r in results.items():
        ours = r["looptrain_ex_s"]
        table.add_row(name, *(f"{r[f'{v}_ex_s']:,.0f}" for v in VARIANTS),
                      f"{ours / r['fit_default_ex_s']:.2f}x", f"{ours / r['fit_matched_ex_s']:.2f}x",
                      f"{ours / r['bare_ex_s']:.2f}x", f"{r['pipeline_ex_s'] / ours:.1f}x",
                      f"{r['peak_rss_mb']:,.0f}")
    (console or Console()).print(table)
