"""Seconds from a command's start to its first output line (make's own echo of the recipe left
out), median of N runs: `python benchmarks/first_line.py N 'COMMAND' ['PREPARE']`.

PREPARE runs before each run (e.g. removing the run directory). With `--contains TEXT`, the first
line containing TEXT is timed instead. docs/what-you-see.md has the figures.
"""

import argparse
import statistics
import subprocess
import time


def first_line(command: str, contains: str = "") -> tuple[float, float, str]:
    """(seconds to the first line, seconds to the end, that line)."""
    began = time.perf_counter()
    proc = subprocess.Popen(command, shell=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    found = None
    for line in proc.stdout:
        if found is None and line.strip() and contains in line and "scripts/" not in line[:40]:
            found = (time.perf_counter() - began, line.rstrip())
    proc.wait()
    if found is None:
        raise SystemExit(f"no line{f' containing {contains!r}' if contains else ''} from {command}")
    return found[0], time.perf_counter() - began, found[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=int)
    parser.add_argument("command")
    parser.add_argument("prepare", nargs="?", default="")
    parser.add_argument("--contains", default="")
    args = parser.parse_args()
    firsts = []
    for _ in range(args.runs):
        if args.prepare:
            subprocess.run(args.prepare, shell=True, check=True)
        first, total, line = first_line(args.command, args.contains)
        firsts.append(first)
        print(f"first line after {first:.2f}s (all done after {total:.2f}s): {line[:70]}")
    print(f"median {statistics.median(firsts):.2f}s over {args.runs} runs")


if __name__ == "__main__":
    main()
