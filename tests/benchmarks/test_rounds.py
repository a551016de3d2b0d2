"""The bench's alternation of processes and its ratios between the runs of a round (no TF)."""

import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import rounds  # noqa: E402


def test_rounds_alternate_the_variants_and_reverse_every_other_round():
    order = []
    runs = rounds.alternate(lambda v: order.append(v) or {"ex_s": len(order)}, ["a", "b", "c"], 3)
    assert order == ["a", "b", "c", "c", "b", "a", "a", "b", "c"]
    assert [r["ex_s"] for r in runs["a"]] == [1, 6, 7]


def test_ratios_are_taken_within_a_round_and_reported_with_their_range():
    # The machine runs twice as fast in round 2: the ratios of a round do not see it.
    runs = {"looptrain": [{"ex_s": 90, "peak_rss_mb": 500}, {"ex_s": 180, "peak_rss_mb": 510}],
            "bare": [{"ex_s": 100, "peak_rss_mb": 400}, {"ex_s": 200, "peak_rss_mb": 400}],
            "fit_matched": [{"ex_s": 80, "peak_rss_mb": 450}, {"ex_s": 200, "peak_rss_mb": 450}],
            "pipeline": [{"ex_s": 900, "peak_rss_mb": 300}, {"ex_s": 1800, "peak_rss_mb": 300}]}
    summary = rounds.summarise(runs)
    assert summary["vs_bare"] == {"median": 0.9, "min": 0.9, "max": 0.9, "runs": [0.9, 0.9]}
    assert summary["vs_fit_matched"]["runs"] == [1.125, 0.9]
    assert summary["vs_fit_matched"]["median"] == 1.012  # (1.125 + 0.9) / 2, rounded
    assert "vs_fit_default" not in summary
    assert summary["pipeline_headroom"]["median"] == 10.0
    assert summary["looptrain_ex_s"] == 135 and summary["peak_rss_mb"] == 510
