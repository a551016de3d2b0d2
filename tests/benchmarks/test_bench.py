"""`make bench` end to end on tiny widths (a smoke run: the figures themselves come from the real run)."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow  # subprocesses of minutes: `make test-slow`


def test_bench_prints_a_table_and_every_figure_as_the_last_json_line():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick",
                           "--workloads", "mlp,task"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    result = json.loads(lines[-1])["workloads"]
    assert set(result) == {"mlp", "task"}
    for figures in result.values():
        for variant in ("looptrain", "fit_default", "fit_matched", "bare", "pipeline"):
            assert figures[f"{variant}_ex_s"] > 0, variant
        assert figures["peak_rss_mb"] > 100
    assert "training throughput" in done.stdout and "vs fit default" in done.stdout


def test_compare_runs_each_variant_and_reports_the_cost():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick",
                           "--workloads", "task", "--compare", "train.ema_decay=0.9",
                           "--repeats", "1"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["compare"] == ["train.ema_decay=0.9"]
    figures = result["workloads"]["task"]
    assert len(figures["without"]["looptrain_ex_s"]) == len(figures["with"]["vs_bare"]) == 1
    assert "cost_vs_bare" in figures and "task cost:" in done.stdout
