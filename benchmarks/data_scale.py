"""`make bench ARGS='--workloads data'`: data beyond memory, measured (opt-in: it writes ~6 GB).

1. A GENERATED memory-mapped data set of `--gigabytes` (default 3.2: 25M examples x 32 float32)
   trains the tiny MLP (harness.MLPTask) through `lt.fit`: the pipeline's examples/s drained
   alone next to the model's consumption, and the process's anonymous memory (`RssAnon`, which
   page-cache reads of the memory-mapped file do not count) next to the same run on a 1/32 slice.
2. A GENERATED text corpus of `--lines` (default 1,000,000) label<TAB>text lines (random Chinese
   characters, 10 labels): the first encoding into the cache (time, peak anonymous memory), then
   a new process's time to the end of its first training call on the cached corpus.

Prints a table and, as the last line, one JSON object. Each measurement runs in a fresh process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def rss_anon_mb() -> float:
    """This process's anonymous resident memory (MB) from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def seconds_since_process_start() -> float:
    """Wall time since this process was started (from /proc), imports included."""
    ticks = os.sysconf("SC_CLK_TCK")
    start = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19]) / ticks
    return float(Path("/proc/uptime").read_text().split()[0]) - start


def make_vectors(directory: Path, num_examples: int, dim: int = 32, seed: int = 0) -> Path:
    """GENERATED Gaussian clusters written as x.npy (float32) and y.npy, a block at a time."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(10, dim)).astype(np.float32)
    x = np.lib.format.open_memmap(directory / "x.npy", mode="w+", dtype=np.float32,
                                  shape=(num_examples, dim))
    y = np.empty(num_examples, np.int32)
    for start in range(0, num_examples, 1 << 20):
        end = min(start + (1 << 20), num_examples)
        y[start:end] = rng.integers(0, 10, size=end - start)
        x[start:end] = centers[y[start:end]] + rng.normal(scale=1.5, size=(end - start, dim))
    x.flush()
    del x
    np.save(directory / "y.npy", y)
    return directory


def make_text(path: Path, num_lines: int, seed: int = 0) -> Path:
    """GENERATED label<TAB>text lines: random CJK characters (a Zipf-like draw), lengths 50-600."""
    rng = np.random.default_rng(seed)
    chars = np.array([chr(c) for c in range(0x4E00, 0x4E00 + 4000)])
    weights = 1.0 / np.arange(1, 4001)
    weights /= weights.sum()
    labels = [f"label{i}" for i in range(10)]
    with open(path, "w", encoding="utf-8") as f:
        for start in range(0, num_lines, 10_000):
            count = min(10_000, num_lines - start)
            lengths = rng.integers(50, 600, size=count)
            pool = "".join(rng.choice(chars, size=int(lengths.sum()), p=weights))
            offsets = np.concatenate([[0], np.cumsum(lengths)])
            f.write("".join(f"{labels[rng.integers(10)]}\t{pool[a:b]}\n"
                            for a, b in zip(offsets[:-1], offsets[1:])))
    return path


def train_on_vectors(directory: str, num_examples: int, steps: int) -> dict:
    """In this process: the pipeline alone and lt.fit of the MLP on a memory-mapped slice."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import tensorflow as tf

    import looptrain as lt
    from harness import MLPTask

    x = np.load(Path(directory) / "x.npy", mmap_mode="r")[:num_examples]
    y = np.load(Path(directory) / "y.npy")[:num_examples]
    source = lt.data.ArraySource((x, y))
    epochs = (steps + 50) * 32 // num_examples + 2
    iterator = iter(source.train_dataset(batch_size=32, seed=1, num_epochs=epochs))

    @tf.function
    def drain(iterator, num_steps):  # inside a compiled loop, as the training step drains it
        total = tf.constant(0, tf.int64)
        for _ in tf.range(num_steps):
            total += tf.cast(tf.reduce_sum(next(iterator)[1]), tf.int64)
        return total

    drain(iterator, tf.constant(50)).numpy()  # warm-up: tracing, the first chunks
    began = time.perf_counter()
    drain(iterator, tf.constant(steps)).numpy()
    pipeline = 32 * steps / (time.perf_counter() - began)
    marks = []

    class Clock(lt.Callback):  # the calls after the first tenth: tracing is over by then
        def on_call_end(self, loop, result):
            if loop.step >= steps // 10:
                marks.append((loop.step, time.perf_counter()))

    with tempfile.TemporaryDirectory() as tmp:
        from rich.console import Console

        display = lt.callbacks.Display(Console(file=open(os.devnull, "w")))
        lt.fit(MLPTask(), train=source, run_dir=f"{tmp}/run", batch_size=32, max_steps=steps,
               num_epochs=epochs, log_every=100, checkpoint_every=steps, monitor="train/loss",
               patience=steps,  # random vectors: the loss plateaus, and the run must not stop
               display=display, callbacks=[Clock()])
    (first, began), (last, ended) = marks[0], marks[-1]
    return {"examples": num_examples, "gigabytes": round(x.nbytes / 1e9, 2),
            "pipeline_ex_s": round(pipeline), "mlp_ex_s": round(32 * (last - first) / (ended - began)),
            "rss_anon_mb": round(rss_anon_mb())}


def encode_text(path: str, seq_length: int) -> dict:
    """In this process: the corpus encoded into an empty cache (time, anonymous memory)."""
    from looptrain.data.corpus import load_corpus

    began = time.perf_counter()
    corpus = load_corpus(Path(path).parent, seq_length=seq_length, vocab_size=5000,
                         splits=("train",))
    return {"lines": int(len(corpus.splits["train"][1])), "encode_s": round(time.perf_counter() - began, 1),
            "rss_anon_mb": round(rss_anon_mb())}


def first_step(path: str, seq_length: int) -> dict:
    """In this process: lt.fit of a tiny classifier on the cached corpus, timed to the end of its
    first compiled call from the start of the process."""
    import looptrain as lt
    from looptrain.app.experiment import make_classifier
    from looptrain.config import Config
    from looptrain.data.corpus import load_corpus

    config = Config().replace({"data.seq_length": seq_length, "model.embedding_dim": 8,
                               "model.num_filters": 8, "model.hidden_dim": 8})
    corpus = load_corpus(Path(path).parent, seq_length=seq_length, vocab_size=5000,
                         splits=("train",))
    seen = {}

    class FirstCall(lt.Callback):
        def on_call_end(self, loop, result):
            seen.setdefault("first_step_s", round(seconds_since_process_start(), 1))

    with tempfile.TemporaryDirectory() as tmp:
        from rich.console import Console

        lt.fit(make_classifier(config, corpus), train=corpus.splits["train"], run_dir=f"{tmp}/run",
               batch_size=64, max_steps=1, monitor="train/loss", callbacks=[FirstCall()],
               display=lt.callbacks.Display(Console(file=open(os.devnull, "w"))))
    return {**seen, "rss_anon_mb": round(rss_anon_mb())}


def _child(function: str, *args) -> dict:
    command = [sys.executable, __file__, "--child", function, *map(str, args)]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode:
        raise SystemExit(f"data_scale.py: {function} failed (exit status {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(gigabytes: float = 3.2, lines: int = 1_000_000, steps: int = 20_000) -> dict:
    """Generates the data, measures each part in a fresh process, removes the data."""
    num_examples = int(gigabytes * 1e9 / 128)
    results = {}
    with tempfile.TemporaryDirectory(prefix="looptrain-data-bench-") as tmp:
        cache = Path(tmp) / "cache"
        os.environ["LOOPTRAIN_CACHE"] = str(cache)  # the children's cache, removed afterwards
        began = time.perf_counter()
        make_vectors(Path(tmp), num_examples)
        results["generate_vectors_s"] = round(time.perf_counter() - began, 1)
        results["small"] = _child("train_on_vectors", tmp, num_examples // 32, steps)
        results["large"] = _child("train_on_vectors", tmp, num_examples, steps)
        (Path(tmp) / "text").mkdir()
        text = make_text(Path(tmp) / "text" / "train.txt", lines)
        results["text_bytes"] = text.stat().st_size
        results["encode"] = _child("encode_text", text, 600)
        results["second_run"] = _child("first_step", text, 600)
    return results


def report(results: dict) -> None:
    """The measurements as a table."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="data beyond memory (one process per row)")
    for column in ("data", "examples / lines", "GB", "pipeline ex/s", "MLP ex/s",
                   "pipeline / MLP", "RssAnon MB", "seconds"):
        table.add_column(column, justify="left" if column == "data" else "right")
    for name in ("small", "large"):
        r = results[name]
        table.add_row(f"memory-mapped ({name})", f"{r['examples']:,}", f"{r['gigabytes']}",
                      f"{r['pipeline_ex_s']:,}", f"{r['mlp_ex_s']:,}",
                      f"{r['pipeline_ex_s'] / r['mlp_ex_s']:.1f}x", f"{r['rss_anon_mb']:,}", "")
    encode, second = results["encode"], results["second_run"]
    table.add_row("text: first encoding", f"{encode['lines']:,}",
                  f"{results['text_bytes'] / 1e9:.2f}", "", "", "", f"{encode['rss_anon_mb']:,}",
                  f"{encode['encode_s']}")
    table.add_row("text: a new process to its first step", "", "", "", "", "",
                  f"{second['rss_anon_mb']:,}", f"{second['first_step_s']}")
    Console(width=max(Console().width, 130)).print(table)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        name, args = sys.argv[2], sys.argv[3:]
        converted = [int(a) if a.isdigit() else a for a in args]
        print(json.dumps(globals()[name](*converted)))
    else:
        print(json.dumps(run()))
