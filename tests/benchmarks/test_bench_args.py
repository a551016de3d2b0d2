"""`bench.py --cpus`: the CPU lists it reads, and the one-line error for one it cannot use."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import bench  # noqa: E402


@pytest.mark.parametrize("text, cpus", [("0", {0}), ("0-3", {0, 1, 2, 3}), ("0,2", {0, 2}),
                                        ("0-1,3", {0, 1, 3})])
def test_cpu_lists_read_as_sets(text, cpus):
    assert bench._cpu_list(text) == cpus


@pytest.mark.parametrize("text", ["x", "", "0-", "-1", "1-0", str(max(os.sched_getaffinity(0)) + 1)])
def test_cpus_it_cannot_use_are_refused_before_any_process_starts(text):
    # (An unknown workload too: were the CPUs accepted, it fails at once, not after a whole bench.)
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--cpus", text,
                           "--workloads", "nope"],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2 and done.stdout == ""
    usable = ",".join(map(str, sorted(os.sched_getaffinity(0))))
    assert done.stderr.strip().splitlines()[-1] == (
        f"bench.py: error: argument --cpus: {text!r} is not a list of this machine's CPUs "
        f"({usable}), e.g. 0, 0-1, 0,1 or all")


def test_all_and_this_machines_cpus_are_accepted():
    assert bench._cpus_argument("all") == "all"
    first = min(os.sched_getaffinity(0))
    assert bench._cpus_argument(str(first)) == str(first)
