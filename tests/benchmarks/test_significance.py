"""benchmarks/significance.py: McNemar's exact test and the paired bootstrap on predictions."""

import math
import sys

import numpy as np
import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT))
from benchmarks import significance  # noqa: E402


def test_mcnemar_exact_is_the_two_sided_binomial_tail():
    assert significance.mcnemar_exact(0, 0) == 1.0
    assert significance.mcnemar_exact(5, 5) == 1.0
    # 10 discordant texts, all to one side: 2 * 0.5**10.
    assert significance.mcnemar_exact(10, 0) == pytest.approx(2 * 0.5**10)
    assert significance.mcnemar_exact(3, 9) == pytest.approx(
        2 * sum(math.comb(12, i) for i in range(4)) / 2**12)


def test_compare_counts_the_discordant_texts_and_brackets_the_difference():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 2000)
    a = np.where(rng.random(2000) < 0.85, labels, (labels + 1) % 3)  # about 85 % right
    b = np.where(rng.random(2000) < 0.75, labels, (labels + 1) % 3)  # about 75 % right
    result = significance.compare(labels, a, b, draws=2000)
    assert result.only_a_right - result.only_b_right == round(2000 * (result.accuracy_a -
                                                                      result.accuracy_b))
    assert result.difference_low < result.accuracy_a - result.accuracy_b < result.difference_high
    assert result.difference_low > 0.05 and result.mcnemar_p < 1e-6 and result.bootstrap_p == 0.0
    same = significance.compare(labels, a, a, draws=100)
    assert (same.mcnemar_p, same.difference_low, same.difference_high) == (1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="3 labels, 2 and 3 predictions"):
        significance.compare([0, 1, 2], [0, 1], [0, 1, 2])


def test_labels_are_read_from_predictions_and_from_split_files(tmp_path):
    (tmp_path / "p.txt").write_text("x\ny\n", encoding="utf-8")
    (tmp_path / "test.txt").write_text("x\tsome text\ny\tother\ttext\n", encoding="utf-8")
    assert significance.read_labels(tmp_path / "p.txt") == ["x", "y"]
    assert significance.read_labels(tmp_path / "test.txt") == ["x", "y"]


def test_compare_seeds_averages_the_runs_text_by_text():
    labels = np.array([0, 1, 0, 1] * 50)
    b = labels.copy()
    b[:40] = 1 - labels[:40]  # B: 160 of 200 right
    runs = [labels.copy(), labels.copy(), labels.copy()]
    runs[0][:10] = 1 - labels[:10]  # one run misses 10 texts: mean accuracy (190 + 2 * 200) / 600
    result = significance.compare_seeds(labels, runs, b, draws=2000)
    assert result.runs == 3 and result.accuracy_b == 0.8
    assert result.mean_accuracy_a == pytest.approx((190 + 400) / 600)
    assert 0 < result.difference_low < result.mean_accuracy_a - 0.8 < result.difference_high
    assert result.sign_flip_p < 0.001
    level = significance.compare_seeds(labels, [b, b], b, draws=200)
    assert (level.difference_low, level.difference_high, level.sign_flip_p) == (0.0, 0.0, 1.0)
