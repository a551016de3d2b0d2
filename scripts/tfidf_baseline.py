"""TF-IDF + logistic regression baseline for a text data directory, in numpy (no scikit-learn).

    python scripts/tfidf_baseline.py [--data-dir DIR] [--subsample OUT --num-train 3000 --max-chars 100]

Features: character 1- and 2-grams seen in at least 2 training texts, weighted by sublinear tf
(1 + log tf) times smoothed idf (log((1 + n) / (1 + df)) + 1), each text L2-normalised (scikit-learn's
TfidfVectorizer(analyzer="char", ngram_range=(1, 2), min_df=2, sublinear_tf=True) recipe).
Classifier: multinomial logistic regression, mean cross-entropy + l2/2 * |W|^2, full-batch Adam;
`l2` is chosen on the validation split and the test accuracy is reported for that choice.

`--subsample OUT` first writes a small data directory of short texts (the first `--num-train`
training texts and `--num-eval` val/test texts, each cut to its first `--max-chars` characters) and
runs the baseline on it, so that a model can be trained on exactly the same files:
`scripts/train.py --config configs/fasttext.toml --data-dir OUT`.
"""

import argparse
import math
from collections import Counter
from pathlib import Path

import numpy as np

from looptrain.data.corpus import resolve_data_dir
from looptrain.data.text import SPLITS, find_split_file, read_examples


def subsample(data_dir: Path, out: Path, num_train: int, num_eval: int, max_chars: int) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        ex = read_examples(find_split_file(data_dir, split))
        count = num_train if split == "train" else num_eval
        lines = [f"{label}\t{text[:max_chars]}\n" for label, text in zip(ex.labels[:count], ex.texts[:count])]
        (out / f"{split}.txt").write_text("".join(lines), encoding="utf-8")
    return out


def ngrams(text: str) -> Counter:
    return Counter(list(text) + [text[i:i + 2] for i in range(len(text) - 1)])


def tfidf(train: list[str], others: list[list[str]]):
    """Sparse (rows, cols, values, num_rows) TF-IDF matrices for train and each other text list."""
    counts = [ngrams(t) for t in train]
    df = Counter(g for c in counts for g in c)
    index = {g: i for i, g in enumerate(sorted(g for g, d in df.items() if d >= 2))}
    idf = np.array([math.log((1 + len(train)) / (1 + df[g])) + 1 for g in index])

    def matrix(docs):
        rows, cols, vals = [], [], []
        for r, c in enumerate(docs):
            kept = [(index[g], 1 + math.log(n)) for g, n in c.items() if g in index]
            rows += [r] * len(kept)
            cols += [j for j, _ in kept]
            vals += [v for _, v in kept]
        rows, cols = np.array(rows, np.int64), np.array(cols, np.int64)
        vals = np.array(vals) * idf[cols]
        norms = np.sqrt(np.bincount(rows, weights=vals ** 2, minlength=len(docs)))
        return rows, cols, vals / np.maximum(norms[rows], 1e-12), len(docs)

    return len(index), matrix(counts), [matrix([ngrams(t) for t in o]) for o in others]


def logits(m, w, b):
    rows, cols, vals, n = m
    return np.stack([np.bincount(rows, weights=vals * w[cols, c], minlength=n)
                     for c in range(w.shape[1])], axis=1) + b


def fit(m, y, num_features, num_classes, l2, steps=300, lr=0.05):
    rows, cols, vals, n = m
    w, b = np.zeros((num_features, num_classes)), np.zeros(num_classes)
    state = [np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b)]
    onehot = np.eye(num_classes)[y]
    for t in range(1, steps + 1):
        z = logits(m, w, b)
        p = np.exp(z - z.max(1, keepdims=True))
        d = (p / p.sum(1, keepdims=True) - onehot) / n
        gw = np.stack([np.bincount(cols, weights=vals * d[rows, c], minlength=num_features)
                       for c in range(num_classes)], axis=1) + l2 * w
        for param, grad, m1, m2 in ((w, gw, state[0], state[1]), (b, d.sum(0), state[2], state[3])):
            m1 += 0.1 * (grad - m1)
            m2 += 0.001 * (grad ** 2 - m2)
            param -= lr * (m1 / (1 - 0.9 ** t)) / (np.sqrt(m2 / (1 - 0.999 ** t)) + 1e-8)
    return w, b


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default="", help="text data directory (default: embedded corpus)")
    p.add_argument("--subsample", help="write a short-text subsample here and use it")
    p.add_argument("--num-train", type=int, default=3000)
    p.add_argument("--num-eval", type=int, default=1000)
    p.add_argument("--max-chars", type=int, default=100)
    args = p.parse_args()
    data_dir = resolve_data_dir(args.data_dir)
    if args.subsample:
        data_dir = subsample(data_dir, Path(args.subsample), args.num_train, args.num_eval, args.max_chars)
    ex = {s: read_examples(find_split_file(data_dir, s)) for s in SPLITS}
    labels = sorted(set(ex["train"].labels))
    y = {s: np.array([labels.index(label) for label in e.labels]) for s, e in ex.items()}
    num_features, train, (val, test) = tfidf(ex["train"].texts, [ex["val"].texts, ex["test"].texts])
    print(f"{data_dir}: {len(y['train'])} train texts, {num_features} char 1-2-gram features")
    results = []
    for l2 in (1e-5, 1e-4, 1e-3):
        w, b = fit(train, y["train"], num_features, len(labels), l2)
        acc = {s: float(np.mean(logits(m, w, b).argmax(1) == y[s])) for s, m in (("val", val),
                                                                                    ("test", test))}
        print(f"l2 {l2:g}: val accuracy {acc['val']:.4f}  test accuracy {acc['test']:.4f}")
        results.append((acc["val"], l2, acc["test"]))
    best = max(results)
    print(f"TF-IDF + logistic regression: val {best[0]:.4f} test {best[2]:.4f} "
          f"(l2 {best[1]:g} chosen on val)")


if __name__ == "__main__":
    main()
