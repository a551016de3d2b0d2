"""The bench's variants side by side: one process each, their timed windows taken in turns, and the
ratios between neighbouring windows.

A round starts one process per variant; each warms up (tracing, compilation) and then waits at its
gate (`harness.Gate`). The variants then run their timed windows in turn, A B C, C B A, ..., one at
a time, the others idle. The i-th windows of two variants ran seconds apart, so the host's load
(which on this VM changes over seconds to minutes) weighs on both alike, and a ratio (looptrain
against another variant) is the median of the window-by-window ratios of a round. The bench reports
the median of the rounds' ratios with their range: rounds are fresh processes, so the range also
shows what differs between processes. See docs/performance-bench.md for the measurements behind
this method.
"""

from __future__ import annotations

import json
import statistics
import subprocess

# looptrain's speed over each of these (pipeline: the other way round, its headroom).
VERSUS = ("fit_default", "fit_matched", "bare")


def take_turns(commands: dict[str, list[str]], windows: int) -> dict[str, dict]:
    """Runs one process per variant (`commands[variant]`), all warmed up before the first window,
    then `windows` windows each in turn, odd turns in reverse order; returns each process's figures
    (the JSON of its last stdout line)."""
    processes = {v: subprocess.Popen(c, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                 for v, c in commands.items()}
    try:
        for variant, process in processes.items():
            _expect(process, "@@ready", variant)
        order = list(processes)
        for turn in range(windows):
            for variant in (order if turn % 2 == 0 else order[::-1]):
                process = processes[variant]
                _go(process)
                _expect(process, "@@window", variant)
                _expect(process, "@@ready", variant)  # at its next gate: idle from here on
        for process in processes.values():  # after the last window: the processes finish
            _go(process)
        return {v: _figures(p, v) for v, p in processes.items()}
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


def _go(process: subprocess.Popen) -> None:
    """Tells `process` to go on. One that has ended already (its pipe broken) is named, with its
    exit status, by the read that follows."""
    try:
        process.stdin.write("go\n")
        process.stdin.flush()
    except BrokenPipeError:
        pass


def _expect(process: subprocess.Popen, tag: str, variant: str) -> str:
    """The next line of `process` that starts with `tag` (other output is passed over)."""
    for line in process.stdout:
        if line.startswith(tag):
            return line[len(tag):].strip()
    raise SystemExit(f"bench: the {variant} process ended (exit status {process.wait()}) before "
                     f"its {tag[2:]} line")


def _figures(process: subprocess.Popen, variant: str) -> dict:
    out, _ = process.communicate()
    if process.returncode or not out.strip():
        raise SystemExit(f"bench: the {variant} process failed (exit status {process.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def paired(ours: list[float], theirs: list[float]) -> float:
    """The median of the window-by-window ratios ours/theirs (the i-th windows ran side by side)."""
    return statistics.median(a / b for a, b in zip(ours, theirs, strict=True))


def spread(values: list[float]) -> dict:
    """Median, min, max and every value (rounded), of per-round figures."""
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "runs": [round(v, 3) for v in values]}


def summarise(runs: dict[str, list[dict]]) -> dict:
    """Each variant's median examples/s over rounds (`<variant>_ex_s`, and each round's), the
    rounds' ratios `vs_<variant>` (looptrain over it, each the median of a round's paired windows)
    and `pipeline_headroom`, and the peak RSS."""
    out: dict = {}
    for variant, results in runs.items():
        speeds = [r["ex_s"] for r in results]
        out[f"{variant}_ex_s"] = round(statistics.median(speeds), 1)
        out[f"{variant}_runs"] = speeds
    ours = [r["windows_ex_s"] for r in runs.get("looptrain", [])]
    for variant in VERSUS:
        if ours and variant in runs:
            out[f"vs_{variant}"] = spread([paired(a, r["windows_ex_s"])
                                           for a, r in zip(ours, runs[variant])])
    if ours and "pipeline" in runs:
        out["pipeline_headroom"] = spread([paired(r["windows_ex_s"], a)
                                           for a, r in zip(ours, runs["pipeline"])])
    out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs.get("looptrain", sum(runs.values(), [])))
    return out


def report(results: dict[str, dict], rounds: int, console=None) -> None:
    """Prints the summaries as a rich table: medians, and each ratio's median with its range."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"training throughput, examples/s (median of {rounds} rounds of processes "
                        f"taking turns); ratios: median (min-max in brackets) of the rounds' ratios")
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
