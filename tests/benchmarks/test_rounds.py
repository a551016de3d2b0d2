"""The bench's processes taking turns and its ratios between neighbouring windows (no TF: the
children here are small Python scripts speaking the gate's protocol, `harness.Gate`)."""

import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import rounds  # noqa: E402

# A child: at each gate it says @@ready and waits for "go"; a window appends its name to the log.
CHILD = """
import json, sys
name, windows, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
print("some other output", flush=True)
for i in range(windows):
    print("@@ready", flush=True)
    assert sys.stdin.readline().strip() == "go"
    with open(log, "a") as f:
        f.write(name + "\\n")
    print(f"@@window {0.001 * (i + 1)}", flush=True)
print("@@ready", flush=True)
assert sys.stdin.readline().strip() == "go"
print(json.dumps({"ex_s": 1.0, "windows_ex_s": [1.0] * windows, "name": name}))
"""


def test_the_processes_take_turns_one_window_at_a_time_reversed_every_other_turn(tmp_path):
    log = tmp_path / "log"
    commands = {name: [sys.executable, "-c", CHILD, name, "3", str(log)] for name in "abc"}
    figures = rounds.take_turns(commands, 3)
    assert log.read_text().split() == ["a", "b", "c", "c", "b", "a", "a", "b", "c"]
    assert {name: f["name"] for name, f in figures.items()} == {"a": "a", "b": "b", "c": "c"}


# A child that ends after its ready line; the second closes its stdin first, so that the "go"
# written to it always meets a broken pipe (the first meets one when it is quick to exit: a
# BrokenPipeError traceback in CI instead of the message).
@pytest.mark.parametrize("ends", ["import sys; print('@@ready'); sys.exit(7)",
                                  "import os, sys; os.close(0); print('@@ready', flush=True); "
                                  "sys.exit(7)"])
def test_a_process_that_ends_early_is_named(tmp_path, ends):
    commands = {"good": [sys.executable, "-c", CHILD, "good", "2", str(tmp_path / "log")],
                "broken": [sys.executable, "-c", ends]}
    with pytest.raises(SystemExit, match=r"^bench: the broken process ended \(exit status 7\) "
                                         r"before its window line$"):
        rounds.take_turns(commands, 2)


def _run(windows, peak=400):
    return {"ex_s": sorted(windows)[len(windows) // 2], "windows_ex_s": windows, "peak_rss_mb": peak}


def test_a_rounds_ratio_is_the_median_of_its_paired_windows():
    # The machine slows down and speeds up within a round; paired windows do not see it, and the
    # one disturbed pair (the third) does not move the median.
    runs = {"looptrain": [_run([90, 45, 30, 180, 90], 500), _run([180, 90, 90, 90, 90], 510)],
            "bare": [_run([100, 50, 100, 200, 100]), _run([200, 100, 100, 100, 100])],
            "fit_matched": [_run([80, 40, 80, 160, 80], 450), _run([200, 100, 100, 100, 100], 450)],
            "pipeline": [_run([900, 450, 900, 1800, 900], 300), _run([1800, 900, 900, 900, 900], 300)]}
    summary = rounds.summarise(runs)
    assert summary["vs_bare"] == {"median": 0.9, "min": 0.9, "max": 0.9, "runs": [0.9, 0.9]}
    assert summary["vs_fit_matched"]["runs"] == [1.125, 0.9]
    assert summary["vs_fit_matched"]["median"] == 1.012  # (1.125 + 0.9) / 2, rounded
    assert "vs_fit_default" not in summary
    assert summary["pipeline_headroom"]["median"] == 10.0
    assert summary["looptrain_ex_s"] == 90 and summary["peak_rss_mb"] == 510


def test_paired_windows_must_be_as_many_on_both_sides():
    with pytest.raises(ValueError):
        rounds.paired([1.0, 2.0], [1.0])
