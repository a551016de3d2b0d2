"""Alternated runs of the bench's variants, one process each, and their ratios between neighbours.

A round runs every variant once, each in a fresh process; rounds alternate their order (A B C, then
C B A, ...), so a drift of the machine's load over a round weighs on both sides of a ratio alike.
A ratio (looptrain against another variant) is taken between the two runs of the same round, and
the bench reports the median of those ratios over the rounds with their range: the spread says how
far one round's ratio can be trusted. See docs/performance-bench.md for why (in one process the
variants disturbed each other) and for the figures.
"""

from __future__ import annotations

import statistics
from typing import Callable

# looptrain's speed over each of these (pipeline: the other way round, its headroom).
VERSUS = ("fit_default", "fit_matched", "bare")


def alternate(run: Callable[[str], dict], variants: list[str], rounds: int) -> dict[str, list[dict]]:
    """Runs `run(variant)` for every variant in every round, odd rounds in reverse order."""
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    for r in range(rounds):
        for variant in (variants if r % 2 == 0 else variants[::-1]):
            runs[variant].append(run(variant))
    return runs


def spread(values: list[float]) -> dict:
    """Median, min, max and every value (rounded), of per-round figures."""
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "runs": [round(v, 3) for v in values]}


def summarise(runs: dict[str, list[dict]]) -> dict:
    """Each variant's median examples/s (`<variant>_ex_s`) and per-round runs, the per-round
    ratios `vs_<variant>` (looptrain over it) and `pipeline_headroom`, and the peak RSS."""
    out: dict = {}
    for variant, results in runs.items():
        speeds = [r["ex_s"] for r in results]
        out[f"{variant}_ex_s"] = round(statistics.median(speeds), 1)
        out[f"{variant}_runs"] = speeds
    ours = [r["ex_s"] for r in runs.get("looptrain", [])]
    for variant in VERSUS:
        if ours and variant in runs:
            out[f"vs_{variant}"] = spread([a / r["ex_s"] for a, r in zip(ours, runs[variant])])
    if ours and "pipeline" in runs:
        out["pipeline_headroom"] = spread([r["ex_s"] / a for a, r in zip(ours, runs["pipeline"])])
    out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs.get("looptrain", sum(runs.values(), [])))
    return out


def report(results: dict[str, dict], rounds: int, console=None) -> None:
    """Prints the summaries as a rich table: medians, and each ratio's median with its range."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"training throughput, examples/s (median of {rounds} alternated "
                        f"process rounds); ratios: median (min-max in brackets) of the rounds' ratios")
    for column in ("workload", "looptrain", "fit default", "fit matched", "bare loop", "pipeline",
                   "vs fit default", "vs fit matched", "vs bare", "pipeline / looptrain",
                   "peak RSS MB"):
        table.add_column(column, justify="left" if column == "workload" else "right")
    for name, r in results.items():
        speeds = [f"{r[f'{v}_ex_s']:,.0f}" if f"{v}_ex_s" in r else "-"
                  for v in ("looptrain", "fit_default", "fit_matched", "bare", "pipeline")]
        ratios = [_cell(r.get(f"vs_{v}")) for v in VERSUS] + [_cell(r.get("pipeline_headroom"), 1)]
        table.add_row(name, *speeds, *ratios, f"{r['peak_rss_mb']:,.0f}")
    # Wide enough for every column even when piped (rich assumes 80 columns then).
    (console or Console(width=max(Console().width, 170))).print(table)


def _cell(figure: dict | None, digits: int = 2) -> str:
    if figure is None:
        return "-"
    return (f"{figure['median']:.{digits}f}x [{figure['min']:.{digits}f}-"
            f"{figure['max']:.{digits}f}]")
