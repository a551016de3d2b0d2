"""`make quality`: every shipped text config on each real-text set, next to TF-IDF + LR.

    python benchmarks/quality.py [--sets en_polarity,zh_titles] [--seeds 3] [--out runs/quality]

For each set (built by `benchmarks/realtext.py` into `data/real/<set>/` when missing) and each text
config in `configs/` (not `tiny.toml`, not the image configs), looptrain is driven through its
command line as a user would: `looptrain train --config C --run-dir R --data-dir D` with
`--set train.seed=S` per seed and `data.seq_length` set to cover the set's texts (the 99th
percentile of the training lengths, rounded up to a multiple of 16, at most 600), then
`looptrain evaluate --run-dir R`; the val accuracy is the best one (`R/best/best.json`), the test
accuracy that of the best checkpoint (`R/eval/report.json`). Recurrent configs get `--rnn-seeds`
seeds (they are slow on a CPU), the others `--seeds`. `looptrain predict` then labels the raw test
texts (`R/test_predictions.txt`), and each run of the n-gram configs is compared with the
reference's test predictions text by text (`significance.py`: McNemar's exact test and a paired
bootstrap of the accuracy difference), one line per seed.

Next to them: scikit-learn TF-IDF + logistic regression (`benchmarks/baseline.py`: features and C
chosen on val) and the seed TextCNN (`configs/textcnn.toml`) trained by Keras `fit`
(`benchmarks/fit_reference.py`) with the same seeds. A finished run is reused when the script is
run again with the same `--out`. Prints one Markdown table per set and writes `OUT/quality.json`.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
import tomllib
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import baseline, realtext, significance  # noqa: E402
from looptrain.data.corpus import resolve_data_dir  # noqa: E402
from looptrain.data.text import find_split_file, read_examples  # noqa: E402

RECURRENT = {"textrnn", "birnn"}
COMPARED = {"tfidf", "fasttext_ngrams"}  # the models compared text by text with the reference


def text_configs(config_dir: Path) -> list[Path]:
    """The shipped configs of text models (the image configs and the tests' tiny config excluded)."""
    found = []
    for path in sorted(config_dir.glob("*.toml")):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        if path.stem != "tiny" and data.get("data", {}).get("embedded", "text") == "text":
            found.append(path)
    return found


def covering_length(data_dir: Path, quantile: float = 0.99, limit: int = 600) -> int:
    """`data.seq_length` covering `quantile` of the training texts, a multiple of 16."""
    lengths = sorted(len(t) for t in read_examples(find_split_file(data_dir, "train")).texts)
    return min(limit, 16 * math.ceil(lengths[int(quantile * (len(lengths) - 1))] / 16))


def _run(command: list[str], log: Path) -> None:
    with log.open("a", encoding="utf-8") as out:
        done = subprocess.run([sys.executable, *command], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(command)}; see {log}")


def looptrain_run(config: Path, data_dir: Path, run_dir: Path, seed: int, sets: list[str]) -> dict:
    """Trains and evaluates one run through the command line; returns its accuracies and time."""
    result_file = run_dir / "quality.json"
    if result_file.is_file():
        write_predictions(run_dir, data_dir)  # runs cached before the predictions were kept
        return json.loads(result_file.read_text(encoding="utf-8"))
    if run_dir.exists():  # an unfinished earlier attempt
        subprocess.run(["rm", "-rf", str(run_dir)], check=True)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    log = run_dir.parent / f"{run_dir.name}.log"
    overrides = [f"--set={s}" for s in [f"train.seed={seed}", *sets]]
    began = time.perf_counter()
    _run(["-m", "looptrain", "train", "--config", str(config), "--run-dir", str(run_dir), "--data-dir",
          str(data_dir), *overrides], log)
    seconds = time.perf_counter() - began
    _run(["-m", "looptrain", "evaluate", "--run-dir", str(run_dir)], log)
    best = json.loads((run_dir / "best" / "best.json").read_text(encoding="utf-8"))
    report = json.loads((run_dir / "eval" / "report.json").read_text(encoding="utf-8"))
    result = {"val_accuracy": best["val_accuracy"], "test_accuracy": report["accuracy"],
              "best_step": best["step"], "seconds": round(seconds, 1)}
    write_predictions(run_dir, data_dir)
    result_file.write_text(json.dumps(result) + "\n", encoding="utf-8")
    return result


def write_predictions(run_dir: Path, data_dir: Path) -> Path:
    """`R/test_predictions.txt`: the best checkpoint's label of each raw test text, through
    `looptrain predict` (what a user gets), in the order of the test file."""
    out = run_dir / "test_predictions.txt"
    if not out.is_file():
        texts = run_dir / "test_texts.txt"
        texts.write_text("".join(t + "\n" for t in read_examples(
            find_split_file(data_dir, "test")).texts), encoding="utf-8")
        with (run_dir.parent / f"{run_dir.name}.log").open("a", encoding="utf-8") as log, \
                (run_dir / "test_predictions.part").open("w", encoding="utf-8") as labels:
            done = subprocess.run([sys.executable, "-m", "looptrain", "predict", "--run-dir",
                                   str(run_dir), "--file", str(texts)], cwd=ROOT, stdout=labels,
                                  stderr=log)
        if done.returncode:
            raise SystemExit(f"failed ({done.returncode}): looptrain predict --run-dir {run_dir}")
        (run_dir / "test_predictions.part").replace(out)
        texts.unlink()
    return out


def fit_run(config: Path, data_dir: Path, out: Path, seed: int, sets: list[str]) -> dict:
    """The config's model through Keras `fit` (benchmarks/fit_reference.py), cached in `out`."""
    if out.is_file():
        return json.loads(out.read_text(encoding="utf-8"))
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "benchmarks/fit_reference.py", "--config", str(config), "--data-dir",
               str(data_dir), "--seed", str(seed), *[f"--set={s}" for s in sets]]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stderr[-3000:]}")
    out.write_text(done.stdout.strip().splitlines()[-1] + "\n", encoding="utf-8")
    return json.loads(out.read_text(encoding="utf-8"))


def baseline_run(data_dir: Path, out: Path) -> dict:
    """scikit-learn TF-IDF + LR chosen on val (benchmarks/baseline.py), cached in `out`."""
    if out.is_file():
        return json.loads(out.read_text(encoding="utf-8"))
    began = time.perf_counter()
    best, _ = baseline.run_baseline(data_dir, variants=baseline.variants_for(data_dir))
    result = {**asdict(best), "seconds": round(time.perf_counter() - began, 1)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result) + "\n", encoding="utf-8")
    return result


def baseline_predictions(data_dir: Path, best: dict, out: Path) -> list[str]:
    """The reference's test labels (its chosen variant and C refit: deterministic), cached."""
    if not out.is_file():
        labels = baseline.predicted_test_labels(data_dir, best["variant"], best["c"])
        truth = significance.read_labels(find_split_file(data_dir, "test"))
        accuracy = sum(a == b for a, b in zip(labels, truth)) / len(truth)
        if abs(accuracy - best["test_accuracy"]) > 1e-9:
            raise SystemExit(f"the reference refit scores {accuracy} on test, not "
                             f"{best['test_accuracy']} as when it was chosen")
        out.write_text("".join(f"{label}\n" for label in labels), encoding="utf-8")
    return significance.read_labels(out)


def compare_with_reference(data_dir: Path, runs: dict[str, list[Path]],
                           reference: list[str]) -> list[dict]:
    """Each run's test predictions against the reference's, text by text (one row per run)."""
    truth = significance.read_labels(find_split_file(data_dir, "test"))
    rows = []
    for label, run_dirs in runs.items():
        predictions = [significance.read_labels(d / "test_predictions.txt") for d in run_dirs]
        for run_dir, ours in zip(run_dirs, predictions):
            rows.append({"config": label, "run": run_dir.name,
                         **asdict(significance.compare(truth, ours, reference))})
        if len(run_dirs) > 1:
            rows.append({"config": label, "run": f"{len(run_dirs)} seeds",
                         **asdict(significance.compare_seeds(truth, predictions, reference))})
    return rows


def comparison_table(rows: list[dict]) -> str:
    """The text-by-text comparison with the reference as a Markdown table: one row per run
    (McNemar's exact test) and one for all seeds of a config (the sign-flip test)."""
    lines = ["| config | run | test accuracy | TF-IDF + LR | only it right | only LR right | "
             "p (two-sided) | 95 % interval of the difference |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        pooled = "sign_flip_p" in r
        counts = "| – | – |" if pooled else f"| {r['only_a_right']} | {r['only_b_right']} |"
        accuracy = r["mean_accuracy_a"] if pooled else r["accuracy_a"]
        test = f"{r['sign_flip_p']:.3g} (sign flip)" if pooled else f"{r['mcnemar_p']:.3g} (McNemar)"
        lines.append(f"| {r['config']} | {r['run']} | {accuracy:.4f} | {r['accuracy_b']:.4f} "
                     f"{counts} {test} | {100 * r['difference_low']:+.1f} to "
                     f"{100 * r['difference_high']:+.1f} points |")
    return "\n".join(lines)


def summarise(results: list[dict]) -> dict:
    """Mean, sample standard deviation, min and max of each accuracy over seeds; mean seconds."""
    out = {"seeds": len(results), "seconds": round(statistics.mean(r["seconds"] for r in results), 1)}
    for key in ("val_accuracy", "test_accuracy"):
        values = [r[key] for r in results]
        out[key] = {"mean": statistics.mean(values), "sd": statistics.stdev(values) if len(values) > 1
                    else 0.0, "min": min(values), "max": max(values)}
    return out


def _cell(stats: dict) -> str:
    if stats["sd"] == 0.0 and stats["min"] == stats["max"]:
        return f"{stats['mean']:.3f}"
    return f"{stats['mean']:.3f} ± {stats['sd']:.3f} ({stats['min']:.3f}-{stats['max']:.3f})"


def table(name: str, rows: dict, seq_length: int) -> str:
    """One Markdown table: looptrain configs best test accuracy first, then the references."""
    lines = [f"### {name} (data.seq_length={seq_length})", "",
             "| config | val accuracy | test accuracy | seeds | s/run |", "|---|---|---|---|---|"]
    for label, stats in sorted(rows.items(), key=lambda kv: -kv[1]["test_accuracy"]["mean"]):
        lines.append(f"| {label} | {_cell(stats['val_accuracy'])} | {_cell(stats['test_accuracy'])} "
                     f"| {stats['seeds']} | {stats['seconds']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sets", default=",".join(realtext.DEFAULT_SETS),
                   help=f"comma-separated, from {', '.join(realtext.SOURCES)} and synthetic (the "
                        f"embedded generated corpus)")
    p.add_argument("--data-root", default="data/real", help="where the sets are (built if missing)")
    p.add_argument("--configs", default="", help="comma-separated config files (default: all text "
                                                 "configs in configs/)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per config (1, 2, ...)")
    p.add_argument("--rnn-seeds", type=int, default=1, help="seeds for textrnn and birnn configs")
    p.add_argument("--out", default="runs/quality")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra override for every looptrain run (e.g. train.max_steps=20)")
    p.add_argument("--no-fit", action="store_true", help="skip the Keras fit reference")
    args = p.parse_args(argv)
    out, data_root = Path(args.out).resolve(), Path(args.data_root).resolve()
    configs = ([Path(c).resolve() for c in args.configs.split(",")] if args.configs
               else text_configs(ROOT / "configs"))
    began, summary = time.perf_counter(), {}
    for name in args.sets.split(","):
        data_dir = data_root / name
        if name == "synthetic":  # the embedded generated corpus, for comparison
            data_dir = resolve_data_dir("")
        elif not (data_dir / "train.txt").is_file():
            realtext.main(["--out", str(data_root), "--sets", name])
        seq_length = covering_length(data_dir)
        sets = [f"data.seq_length={seq_length}", *args.set]
        rows, compared = {}, {}
        for config in configs:
            model = tomllib.loads(config.read_text(encoding="utf-8"))["model"]["name"]
            seeds = range(1, 1 + (args.rnn_seeds if model in RECURRENT else args.seeds))
            run_dirs = [out / name / config.stem / f"seed{s}" for s in seeds]
            rows[config.stem] = summarise([looptrain_run(config, data_dir, run_dir, s, sets)
                                           for s, run_dir in zip(seeds, run_dirs)])
            if model in COMPARED:
                compared[config.stem] = run_dirs
            print(f"{name} {config.stem}: {rows[config.stem]}", flush=True)
        best = baseline_run(data_dir, out / name / "baseline.json")
        rows[f"TF-IDF + LR, scikit-learn ({best['variant']}, C={best['c']:g})"] = summarise([best])
        reference = baseline_predictions(data_dir, best, out / name / "baseline_predictions.txt")
        comparison = compare_with_reference(data_dir, compared, reference)
        if not args.no_fit:
            reference = ROOT / "configs" / "textcnn.toml"
            rows["textcnn via Keras fit"] = summarise(
                [fit_run(reference, data_dir, out / name / "fit_textcnn" / f"seed{s}.json", s, sets)
                 for s in range(1, 1 + args.seeds)])
        summary[name] = {"seq_length": seq_length, "rows": rows, "versus_reference": comparison}
        print("\n" + table(name, rows, seq_length) + "\n", flush=True)
    minutes = (time.perf_counter() - began) / 60
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality.json").write_text(json.dumps({"minutes": round(minutes, 1), "sets": summary},
                                                 indent=2) + "\n", encoding="utf-8")
    for name, result in summary.items():
        print(table(name, result["rows"], result["seq_length"]) + "\n")
        if result["versus_reference"]:
            print(comparison_table(result["versus_reference"]) + "\n")
    print(f"make quality: {minutes:.1f} minutes; results in {out / 'quality.json'}")


if __name__ == "__main__":
    main()
