"""Throughput benchmark: `python benchmarks/bench.py [--workloads textcnn,mlp,task] [--rounds N]
[--quick] [--set k=v] [--compare k=v --repeats N]`.

Every variant of every workload (`harness.VARIANTS`: looptrain, Keras `fit` default and matched,
the bare compiled loop, the input pipeline alone) runs in a process of its own; in each of
`--rounds` rounds the variants' processes take turns, one timed window at a time (`rounds.py`), and
a round's ratio is the median of its window-by-window ratios; the rounds' ratios are reported as
their median with their range. Prints a table and, as the last line, one JSON
object `{"workloads": {name: {...}}}`. `--compare train.ema_decay=0.999` measures what a setting
costs: each round runs looptrain without it, with it, and the bare loop; the cost is reported
from looptrain's examples/s and from its ratio to the bare loop of the same round.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # harness.py, rounds.py beside this file

from looptrain import config as config_lib  # noqa: E402

# Workload: config file, overrides, and (warm-up, window, repeats) in steps; windows are whole
# compiled calls. textcnn is the reference config as shipped. mlp is the tiny MLP (32 inputs, 64-64,
# 10 classes, batch 32) on generated vectors; at ~3000 steps/s it logs every 100 steps, not 10.
WORKLOADS = {
    "textcnn": ("configs/textcnn.toml", {}, (20, 30, 7)),
    "mlp": ("configs/mlp.toml", {"model.hidden_dim": 64, "model.num_layers": 2, "model.dropout": 0.0,
                                 "train.batch_size": 32, "train.log_every": 100}, (1000, 3000, 9)),
    # A user's task (harness.MLPTask: the same MLP, a plain GradientTape step) through lt.fit.
    "task": ("configs/mlp.toml", {"train.batch_size": 32, "train.log_every": 100}, (1000, 3000, 9)),
}
QUICK = (10, 10, 2)  # a smoke run (the test suite's), not a measurement
VARIANTS = ("looptrain", "fit_default", "fit_matched", "bare", "pipeline")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bench.py", description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated names")
    parser.add_argument("--quick", action="store_true", help="tiny widths, few steps, one round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of processes taking turns")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config key in every workload (e.g. train.jit_compile=off)")
    parser.add_argument("--compare", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="also run each workload with this override and report its cost")
    parser.add_argument("--repeats", type=int, default=3, help="--compare: rounds")
    parser.add_argument("--cpus", default="0", type=_cpus_argument,
                        help="the CPUs every process runs on, e.g. 0 or 0-3, or 'all' (default 0: "
                             "on a shared VM a second CPU added its own noise)")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # a child process
    parser.add_argument("--gated", action="store_true", help=argparse.SUPPRESS)  # ... taking turns
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
    if args.variant:
        if args.cpus != "all":  # before TensorFlow sizes its thread pools to the CPUs it may use
            os.sched_setaffinity(0, _cpu_list(args.cpus))
        print(json.dumps(_child(names[0], args.variant, args)))
        return 0
    if args.compare:
        results = {name: _compare(name, args) for name in names}
        print(json.dumps({"compare": args.compare, "workloads": results}))
        return 0
    from rounds import report, summarise, take_turns

    rounds = 1 if args.quick else args.rounds
    results = {}
    for name in names:
        runs = {variant: [] for variant in VARIANTS}
        for r in range(rounds):
            order = VARIANTS if r % 2 == 0 else VARIANTS[::-1]
            commands = {v: _command(name, v, args, gated=True) for v in order}
            for variant, figures in take_turns(commands, _plan(name, args)[2]).items():
                runs[variant].append(figures)
        results[name] = summarise(runs)
        print(f"{name}: {json.dumps(results[name])}", file=sys.stderr, flush=True)
    report(results, rounds)
    print(json.dumps({"rounds": rounds, "workloads": results}))
    return 0


def _child(name: str, variant: str, args) -> dict:
    """One variant of one workload in this process."""
    from looptrain.quiet import import_tensorflow

    import_tensorflow()  # without its C++ start-up lines: 30 of them a round drowned the table
    from harness import Gate, Plan, bench_variant, make_vectors

    path, overrides, _ = WORKLOADS[name]
    config = config_lib.load_toml(ROOT / path).replace(overrides)
    vectors = Path(tempfile.mkdtemp(prefix="looptrain-bench-vectors-"))
    try:
        if name in ("mlp", "task"):
            config = config.replace({"data.data_dir": str(make_vectors(vectors))})
        if args.quick:
            config = config.replace(_quick_overrides(name))
        config = config.replace(config_lib.parse_set(args.set), source="--set")
        return bench_variant(config, Plan(*_plan(name, args)), variant, user_task=name == "task",
                             gate=Gate(sys.stdin if args.gated else None))
    finally:
        shutil.rmtree(vectors, ignore_errors=True)


def _compare(name: str, args) -> dict:
    """Rounds of looptrain without and with `args.compare` and the bare loop; prints and returns
    the figures (each run's ratio to the bare loop of its round)."""
    runs = {"without": [], "with": []}
    for _ in range(1 if args.quick else args.repeats):
        without = _run_child(name, "looptrain", args)
        with_ = _run_child(name, "looptrain", args, extra=args.compare)
        bare = _run_child(name, "bare", args)["ex_s"]
        runs["without"].append((without["ex_s"], without["ex_s"] / bare))
        runs["with"].append((with_["ex_s"], with_["ex_s"] / bare))
    out = {variant: {"looptrain_ex_s": [s for s, _ in pairs], "vs_bare": [round(r, 3) for _, r in pairs]}
           for variant, pairs in runs.items()}
    median = statistics.median
    out["cost_ex_s"] = round(1 - median(out["with"]["looptrain_ex_s"])
                             / median(out["without"]["looptrain_ex_s"]), 3)
    out["cost_vs_bare"] = round(1 - median(out["with"]["vs_bare"])
                                / median(out["without"]["vs_bare"]), 3)
    for variant in ("without", "with"):
        speeds, ratios = out[variant]["looptrain_ex_s"], out[variant]["vs_bare"]
        print(f"{name} {variant:>7} {' '.join(args.compare)}: looptrain examples/s "
              f"{median(speeds):,.0f} (runs {', '.join(f'{x:,.0f}' for x in speeds)}), "
              f"vs bare {median(ratios):.3f} (runs {', '.join(map(str, ratios))})")
    print(f"{name} cost: {out['cost_ex_s']:.1%} of examples/s, {out['cost_vs_bare']:.1%} of the "
          f"ratio to the bare loop")
    return out


def _plan(name: str, args) -> tuple[int, int, int]:
    """(warm-up, window, windows) in steps for workload `name`."""
    return QUICK if args.quick else WORKLOADS[name][2]


def _command(name: str, variant: str, args, *, extra=(), gated: bool = False) -> list[str]:
    """The command line of a child process running one variant of one workload."""
    command = [sys.executable, __file__, "--variant", variant, "--workloads", name]
    command += ["--quick"] if args.quick else []
    command += ["--gated"] if gated else []
    command += [f"--cpus={args.cpus}"]
    return command + [f"--set={item}" for item in [*args.set, *extra]]


def _run_child(name: str, variant: str, args, extra=()) -> dict:
    """Runs one variant of one workload in a fresh process, alone; returns its figures."""
    done = subprocess.run(_command(name, variant, args, extra=extra), stdout=subprocess.PIPE,
                          text=True)
    if done.returncode:
        raise SystemExit(f"bench.py: {variant} of workload {name} failed (exit status "
                         f"{done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cpu_list(text: str) -> set[int]:
    """`0`, `0-3` or `0,2` as a set of CPU numbers."""
    cpus = set()
    for part in text.split(","):
        first, dash, last = part.partition("-")
        cpus.update(range(int(first), int(last if dash else first) + 1))  # "0-": int("") fails
    return cpus


def _cpus_argument(text: str) -> str:
    """`--cpus` checked before any process starts: a CPU list of this machine's, or `all`."""
    if text == "all":
        return text
    usable = os.sched_getaffinity(0)
    try:
        cpus = _cpu_list(text)
    except ValueError:
        cpus = set()
    if not cpus or not cpus <= usable:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of this machine's CPUs ({','.join(map(str, sorted(usable)))}), "
            f"e.g. 0, 0-1, 0,1 or all")
    return text


def _quick_overrides(name: str) -> dict:
    small = {"train.log_every": 5, "train.steps_per_loop": 5}
    return {**small, "data.seq_length": 64, "model.num_filters": 8} if name == "textcnn" else small


if __name__ == "__main__":
    sys.exit(main())
