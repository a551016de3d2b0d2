"""Is one classifier better than another on the same test texts? Paired tests on their predictions.

    python benchmarks/significance.py --labels data/real/en_polarity/test.txt \
        --a runs/quality/en_polarity/tfidf/seed*/test_predictions.txt \
        --b runs/quality/en_polarity/baseline_predictions.txt

Both classifiers labelled the same texts, so the comparison is paired: only the texts where exactly
one of them is right say anything about which is better. Two tests of that:

- McNemar's exact test: of the `n` texts where they disagree in correctness, `b` go to A; under
  "equally accurate" `b` is Binomial(n, 1/2). The p-value is two-sided.
- A paired bootstrap of the accuracy difference: texts resampled with replacement (the same draw
  for both), the 2.5th and 97.5th percentiles of A's accuracy minus B's, and the share of draws
  in which A is not ahead (a one-sided p-value).

Both treat the test texts as a sample from the population the set was drawn from; neither covers
the spread between training seeds. `compare_seeds` does: A is a training procedure run with several
seeds, and a text's gain is the share of A's runs that get it right minus whether B does (in -1..1).
Its mean is the difference of A's mean accuracy and B's; the bootstrap resamples texts as above,
and the two-sided p-value is that of a paired sign-flip (randomisation) test: under "A and B are
equally good on each text" each text's gain is as likely to have either sign.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Comparison:
    accuracy_a: float
    accuracy_b: float
    only_a_right: int  # texts A gets right and B wrong
    only_b_right: int
    mcnemar_p: float  # exact, two-sided
    difference_low: float  # 95 % paired-bootstrap interval of accuracy(A) - accuracy(B)
    difference_high: float
    bootstrap_p: float  # share of bootstrap draws with A not ahead of B (one-sided)


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: twice the smaller binomial tail at p = 1/2, at most 1."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def compare(labels, predictions_a, predictions_b, *, draws: int = 10_000,
            seed: int = 0) -> Comparison:
    """McNemar and the paired bootstrap of A's predictions against B's on the same labels.

    Raises:
        ValueError: the three sequences differ in length.
    """
    labels, a, b = (np.asarray(v) for v in (labels, predictions_a, predictions_b))
    if not len(labels) == len(a) == len(b):
        raise ValueError(f"{len(labels)} labels, {len(a)} and {len(b)} predictions")
    right_a, right_b = a == labels, b == labels
    only_a, only_b = int(np.sum(right_a & ~right_b)), int(np.sum(right_b & ~right_a))
    gain = right_a.astype(np.int8) - right_b.astype(np.int8)  # per text: +1, 0 or -1
    means = _bootstrap_means(gain, draws, np.random.default_rng(seed))
    low, high = np.percentile(means, [2.5, 97.5])
    return Comparison(float(right_a.mean()), float(right_b.mean()), only_a, only_b,
                      mcnemar_exact(only_a, only_b), float(low), float(high),
                      float(np.mean(means <= 0)))


def _bootstrap_means(gain: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    """Means of `draws` resamples (with replacement) of the per-text gains."""
    means = np.empty(draws)
    for start in range(0, draws, 1000):  # in blocks: 1000 x n indices at a time
        picks = rng.integers(0, len(gain), (min(1000, draws - start), len(gain)))
        means[start:start + len(picks)] = gain[picks].mean(axis=1)
    return means


@dataclass(frozen=True)
class SeedsComparison:
    runs: int
    mean_accuracy_a: float
    accuracy_b: float
    difference_low: float  # 95 % paired-bootstrap interval of mean accuracy(A) - accuracy(B)
    difference_high: float
    sign_flip_p: float  # two-sided


def compare_seeds(labels, runs_a, predictions_b, *, draws: int = 10_000,
                  seed: int = 0) -> SeedsComparison:
    """A's runs (one prediction list per training seed) against B's predictions, text by text."""
    labels, b = np.asarray(labels), np.asarray(predictions_b)
    right_a = np.stack([np.asarray(run) == labels for run in runs_a]).mean(axis=0)
    gain = right_a - (b == labels)
    rng = np.random.default_rng(seed)
    low, high = np.percentile(_bootstrap_means(gain, draws, rng), [2.5, 97.5])
    flipped = np.empty(draws)
    for start in range(0, draws, 1000):
        signs = rng.choice([-1.0, 1.0], (min(1000, draws - start), len(gain)))
        flipped[start:start + len(signs)] = (signs * gain).mean(axis=1)
    p = float(np.mean(np.abs(flipped) >= abs(gain.mean()) - 1e-12))
    return SeedsComparison(len(runs_a), float(right_a.mean()), float((b == labels).mean()),
                           float(low), float(high), p)


def read_labels(path: str | Path) -> list[str]:
    """One label per line (a predictions file), or the labels of a `label<TAB>text` file."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.split("\t", 1)[0] for line in lines if line]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--labels", required=True, help="the test split (label<TAB>text)")
    p.add_argument("--a", required=True, nargs="+",
                   help="A's predicted labels, one per line (several files: one per seed)")
    p.add_argument("--b", required=True, help="B's predicted labels, one per line")
    args = p.parse_args(argv)
    labels, b = read_labels(args.labels), read_labels(args.b)
    runs = [read_labels(path) for path in args.a]
    results = [(path, compare(labels, run, b)) for path, run in zip(args.a, runs)]
    if len(runs) > 1:
        results.append(("all of --a", compare_seeds(labels, runs, b)))
    for name, result in results:
        print(name + "\n" + "\n".join(f"  {key}: {value:.4f}" if isinstance(value, float)
                                       else f"  {key}: {value}" for key, value in
                                       asdict(result).items()))


if __name__ == "__main__":
    main()
