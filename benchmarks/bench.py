"""Throughput benchmark: `python benchmarks/bench.py [--workloads textcnn,mlp,task] [--quick]
[--set k=v]`.

Prints a table and, as the last line, one JSON object `{"workloads": {name: {...}}}`. See
`benchmarks/harness.py` for what is measured and how.
"""

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # harness.py beside this file

from looptrain import config as config_lib  # noqa: E402

# Workload: config file, overrides, and (warm-up, window, repeats) in steps; windows are whole
# compiled calls. textcnn is the reference config as shipped. mlp is the tiny MLP (32 inputs, 64-64,
# 10 classes, batch 32) on generated vectors; at ~3000 steps/s it logs every 100 steps, not 10.
WORKLOADS = {
    "textcnn": ("configs/textcnn.toml", {}, (20, 30, 5)),
    "mlp": ("configs/mlp.toml", {"model.hidden_dim": 64, "model.num_layers": 2, "model.dropout": 0.0,
                                 "train.batch_size": 32, "train.log_every": 100}, (1000, 3000, 5)),
    # A user's task (harness.MLPTask: the same MLP, a plain GradientTape step) through lt.fit.
    "task": ("configs/mlp.toml", {"train.batch_size": 32, "train.log_every": 100}, (1000, 3000, 5)),
}
QUICK = (10, 10, 2)  # a smoke run (the test suite's), not a measurement


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bench.py", description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated names")
    parser.add_argument("--quick", action="store_true", help="tiny widths and few steps (smoke test)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config key in every workload (e.g. train.jit_compile=off)")
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = args.workloads.split(",")
    if names == ["data"]:  # opt-in: data beyond memory (writes ~6 GB to a temporary directory)
        from data_scale import report, run

        results = run(**({"gigabytes": 0.02, "lines": 2000, "steps": 300} if args.quick else {}))
        report(results)
        print(json.dumps({"data": results}))
        return 0
    for name in names:
        if name not in WORKLOADS:
            parser.error(f"unknown workload {name!r} (known: {', '.join(WORKLOADS)}, or data alone)")
    if not args.in_process:
        # One process per workload: TensorFlow's process-wide state (op determinism, which decides
        # `fit`'s default XLA; thread pools; the first workload's iterators) must not carry over.
        results = {name: _run_child(name, args) for name in names}
        from harness import report

        report(results)
        print(json.dumps({"workloads": results}))
        return 0
    from harness import Plan, bench_workload, make_vectors

    results = {}
    vectors = Path(tempfile.mkdtemp(prefix="looptrain-bench-vectors-"))
    for name in names:
        path, overrides, plan = WORKLOADS[name]
        config = config_lib.load_toml(ROOT / path).replace(overrides)
        if name in ("mlp", "task"):
            config = config.replace({"data.data_dir": str(make_vectors(vectors))})
        if args.quick:
            config, plan = config.replace(_quick_overrides(name)), QUICK
        config = config.replace(config_lib.parse_set(args.set), source="--set")
        results[name] = bench_workload(config, Plan(*plan), user_task=name == "task")
    shutil.rmtree(vectors, ignore_errors=True)
    print(json.dumps({"workloads": results}))
    return 0


def _run_child(name: str, args) -> dict:
    """Runs one workload in a fresh process; returns its results (its last output line)."""
    command = [sys.executable, __file__, "--in-process", "--workloads", name]
    command += ["--quick"] if args.quick else []
    command += [f"--set={item}" for item in args.set]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    if done.returncode:
        raise SystemExit(f"bench.py: workload {name} failed (exit status {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])["workloads"][name]


def _quick_overrides(name: str) -> dict:
    small = {"train.log_every": 5, "train.steps_per_loop": 5}
    return {**small, "data.seq_length": 64, "model.num_filters": 8} if name == "textcnn" else small


if __name__ == "__main__":
    sys.exit(main())
