"""Start-up and short jobs, whole processes: `scripts/train.py` against a Keras `fit` script.

    python benchmarks/startup.py [--config configs/tiny.toml] [--steps 1] [--runs 3]
        [--checkout DIR ...]

Each run is a fresh process: `scripts/train.py --config C --max-steps N --run-dir R` (of this
checkout, or of each `--checkout` directory, to compare versions), then `benchmarks/fit_reference.py
--config C --steps N --save R/fit.weights.h5` (the same data, model, N steps, a validation pass, the
weights saved). The variants alternate (A B C, A B C, ...) after one warm-up round that is not
counted (file caches). Reported per variant: the median and range of the whole process's wall
time and CPU time (user + system, which the machine's other load disturbs less), and the time from
the process start to looptrain's first logged step (`metrics.jsonl`: step `train.log_every`, or
the last step of a shorter run) and to the end of the same step in the `fit` script.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_once(command: list[str], *, pythonpath: Path, run_dir: Path) -> dict:
    """Wall and CPU seconds of one process, and seconds to its first logged step."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "TF_CPP_MIN_LOG_LEVEL": "2"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began_wall, began = time.time(), time.perf_counter()
    done = subprocess.run(command, env=env, cwd=pythonpath, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - began
    if done.returncode:
        raise SystemExit(f"startup.py: {' '.join(command)} failed:\n{done.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2)}
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file():  # looptrain: its first logged step
        first = next(json.loads(line) for line in metrics.read_text().splitlines()
                     if "train/loss" in line)
        result["first_step_s"] = round(first["time"] - began_wall, 2)
    else:  # the fit script: the end of the same step (fit_reference.py's last line)
        marked = json.loads(done.stdout.strip().splitlines()[-1])["first_logged_step_time"]
        result["first_step_s"] = round(marked - began_wall, 2)
    return result


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/tiny.toml")
    p.add_argument("--steps", type=int, default=1)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--checkout", action="append", type=Path, help="looptrain checkouts to compare")
    args = p.parse_args(argv)
    config = (ROOT / args.config).resolve()
    variants = {f"looptrain {c}": c.resolve() for c in args.checkout or [ROOT]}
    variants["keras fit"] = ROOT
    figures: dict[str, list[dict]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory(prefix="looptrain-startup-") as tmp:
        for r in range(args.runs + 1):  # round 0: warm-up, not counted
            for name, checkout in variants.items():
                run_dir = Path(tmp) / f"{name.replace(' ', '_').replace('/', '_')}-{r}"
                if name == "keras fit":
                    run_dir.mkdir()
                    command = [sys.executable, str(ROOT / "benchmarks" / "fit_reference.py"),
                               "--config", str(config), "--steps", str(args.steps),
                               "--save", str(run_dir / "fit.weights.h5")]
                else:
                    command = [sys.executable, str(checkout / "scripts" / "train.py"), "--config",
                               str(config), "--max-steps", str(args.steps), "--run-dir", str(run_dir)]
                result = run_once(command, pythonpath=checkout, run_dir=run_dir)
                print(f"round {r} {name}: {result}", file=sys.stderr, flush=True)
                if r:
                    figures[name].append(result)
    summary = {name: {key: {"median": statistics.median(r[key] for r in runs),
                            "min": min(r[key] for r in runs), "max": max(r[key] for r in runs)}
                      for key in runs[0]} for name, runs in figures.items()}
    for name, keys in summary.items():
        print(f"{name}: " + ", ".join(f"{key} {v['median']:.1f} ({v['min']:.1f}-{v['max']:.1f})"
                                      for key, v in keys.items()))
    print(json.dumps({"config": args.config, "steps": args.steps, "runs": args.runs,
                      "variants": summary}))


if __name__ == "__main__":
    main()
