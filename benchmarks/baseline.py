"""The reference a practitioner would pick: scikit-learn TF-IDF + logistic regression.

    python benchmarks/baseline.py --data-dir data/real/en_polarity

Features (`TfidfVectorizer`, sublinear tf, fit on the training split only): character 1-4-grams,
word 1-2-grams, or both side by side. Classifier: `LogisticRegression` (L2, lbfgs). The feature
variant and the inverse regularisation strength C are chosen together on the validation split;
the test accuracy is reported for that choice only. Needs the `bench` extra (scikit-learn).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from looptrain.data.text import find_split_file, read_examples

C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
VARIANTS = ("char1-4", "word1-2", "char1-4+word1-2")


@dataclass(frozen=True)
class BaselineResult:
    variant: str
    c: float
    val_accuracy: float
    test_accuracy: float


def make_features(variant: str):
    """The (unfitted) vectorizer of a variant."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion

    char = TfidfVectorizer(analyzer="char", ngram_range=(1, 4), sublinear_tf=True)
    # Single-character words count too (Chinese has no spaces; "a", "i" matter in English).
    word = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True,
                           token_pattern=r"(?u)\b\w+\b")
    return {"char1-4": char, "word1-2": word,
            "char1-4+word1-2": FeatureUnion([("char", char), ("word", word)])}[variant]


def variants_for(data_dir: str | Path) -> tuple[str, ...]:
    """All variants for a language written with spaces (at least 5 % of the training characters),
    character n-grams only otherwise: a Chinese "word" would be a whole clause, and fitting the
    word variants there costs minutes for nothing."""
    texts = read_examples(find_split_file(data_dir, "train")).texts
    spaces = sum(t.count(" ") for t in texts) / max(1, sum(len(t) for t in texts))
    return VARIANTS if spaces >= 0.05 else ("char1-4",)


def run_baseline(data_dir: str | Path, *, variants=VARIANTS, c_grid=None,
                 verbose: bool = False) -> tuple[BaselineResult, list[BaselineResult]]:
    """Fits every (variant, C) on train; returns the one best on val and all of them."""
    from sklearn.linear_model import LogisticRegression

    ex = {s: read_examples(find_split_file(data_dir, s)) for s in ("train", "val", "test")}
    results = []
    for variant in variants:
        features = make_features(variant)
        x_train = features.fit_transform(ex["train"].texts)
        x_val, x_test = features.transform(ex["val"].texts), features.transform(ex["test"].texts)
        for c in c_grid or C_GRID:
            model = LogisticRegression(C=c, max_iter=3000).fit(x_train, ex["train"].labels)
            result = BaselineResult(variant, c, float(model.score(x_val, ex["val"].labels)),
                                    float(model.score(x_test, ex["test"].labels)))
            if verbose:
                print(f"{variant:>16} C={c:<6g} val {result.val_accuracy:.4f} "
                      f"test {result.test_accuracy:.4f}")
            results.append(result)
    # Ties on val go to the stronger regularisation (smaller C), listed first per variant.
    best = max(results, key=lambda r: r.val_accuracy)
    return best, results


def predicted_test_labels(data_dir: str | Path, variant: str, c: float) -> list[str]:
    """The test labels predicted by one (variant, C), fit on train as in `run_baseline`."""
    from sklearn.linear_model import LogisticRegression

    ex = {s: read_examples(find_split_file(data_dir, s)) for s in ("train", "test")}
    features = make_features(variant)
    model = LogisticRegression(C=c, max_iter=3000).fit(features.fit_transform(ex["train"].texts),
                                                       ex["train"].labels)
    return [str(label) for label in model.predict(features.transform(ex["test"].texts))]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", required=True, help="directory with train/val/test label<TAB>text")
    p.add_argument("--json", action="store_true", help="print the chosen result as one JSON line")
    args = p.parse_args(argv)
    best, _ = run_baseline(args.data_dir, variants=variants_for(args.data_dir), verbose=not args.json)
    if args.json:
        print(json.dumps(asdict(best)))
    else:
        print(f"TF-IDF + logistic regression: {best.variant}, C={best.c:g} chosen on val: "
              f"val {best.val_accuracy:.4f} test {best.test_accuracy:.4f}")


if __name__ == "__main__":
    main()
