"""The embedded default corpus: a seeded, generated stand-in for the Chinese news data set.

The real THUCNews/cnews files cannot be downloaded here, so `make train` runs on a corpus this module
writes in exactly the same `label<TAB>text` format. It is SYNTHETIC: random Chinese characters, not
language. What makes it a fair workload rather than a toy:
- a shared background of ~2000 characters with a Zipf-like frequency, which dominates every document;
- per category, multi-character "keywords" built from one shared pool of topic characters, so single
  characters say little and the model has to learn character n-grams (what TextCNN's filters do);
- paired categories (体育/游戏, 财经/房产, ...) share part of their keywords, and every document also
  carries keywords of random other categories;
- document lengths vary widely (short documents carry little evidence) and a few labels are flipped.
Validation accuracy therefore climbs over several evaluations instead of saturating at once.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

CATEGORIES = ("体育", "财经", "房产", "家居", "教育", "科技", "时尚", "时政", "游戏", "娱乐")
# Pairs whose vocabularies overlap, as related news sections do.
_SIBLINGS = ((0, 8), (1, 2), (3, 6), (4, 5), (7, 9))
_CJK_FIRST, _CJK_LAST = 0x4E00, 0x9FA5


@dataclass(frozen=True)
class SyntheticSpec:
    """Everything that determines the generated corpus; the same spec always gives the same bytes."""

    seed: int = 20240601
    num_train: int = 8000
    num_val: int = 1000
    num_test: int = 1000
    num_background: int = 2000
    num_topic_chars: int = 400
    keywords_per_category: int = 40
    shared_keywords: int = 15
    keyword_rate: float = 0.035
    own_keyword_prob: float = 0.6
    median_length: int = 220
    label_noise: float = 0.03


def generate(out_dir: str | Path, spec: SyntheticSpec = SyntheticSpec()) -> Path:
    """Writes `train.txt`, `val.txt`, `test.txt` and `manifest.json` into `out_dir`, atomically.

    The files are written into a temporary sibling directory which is then renamed, so an interrupted
    generation never leaves a partial corpus behind.

    Returns:
        The output directory.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    vocab = _make_vocabulary(rng, spec)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        for split, count in (("train", spec.num_train), ("val", spec.num_val), ("test", spec.num_test)):
            lines = [_document(rng, spec, vocab) for _ in range(count)]
            (tmp / f"{split}.txt").write_text("".join(lines), encoding="utf-8")
        manifest = {"synthetic": True, "categories": list(CATEGORIES), "spec": asdict(spec)}
        (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n",
                                           encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def ensure(out_dir: str | Path, spec: SyntheticSpec = SyntheticSpec()) -> Path:
    """Generates the corpus into `out_dir` unless its manifest says it was made from `spec`."""
    out_dir = Path(out_dir)
    try:
        manifest = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
        complete = all((out_dir / f"{s}.txt").is_file() for s in ("train", "val", "test"))
        if complete and manifest.get("spec") == asdict(spec):
            return out_dir
    except (OSError, ValueError):
        pass
    return generate(out_dir, spec)


@dataclass(frozen=True)
class _Vocabulary:
    background: np.ndarray  # characters
    background_p: np.ndarray  # their probabilities
    keywords: list[list[str]]  # per category


def _make_vocabulary(rng: np.random.Generator, spec: SyntheticSpec) -> _Vocabulary:
    pool = rng.choice(np.arange(_CJK_FIRST, _CJK_LAST + 1), spec.num_background + spec.num_topic_chars,
                      replace=False)
    background = np.array([chr(c) for c in pool[: spec.num_background]])
    ranks = np.arange(1, spec.num_background + 1)
    weights = 1.0 / (ranks + 5.0)
    topic = [chr(c) for c in pool[spec.num_background:]]
    own = [[_keyword(rng, topic) for _ in range(spec.keywords_per_category)] for _ in CATEGORIES]
    keywords = [list(words) for words in own]
    for a, b in _SIBLINGS:  # each sibling also uses some of the other's keywords
        keywords[a] += own[b][: spec.shared_keywords]
        keywords[b] += own[a][: spec.shared_keywords]
    return _Vocabulary(background, weights / weights.sum(), keywords)


def _keyword(rng: np.random.Generator, topic: list[str]) -> str:
    return "".join(rng.choice(topic, size=int(rng.integers(2, 5))))


def _document(rng: np.random.Generator, spec: SyntheticSpec, vocab: _Vocabulary) -> str:
    label = int(rng.integers(len(CATEGORIES)))
    length = int(np.clip(rng.lognormal(np.log(spec.median_length), 0.7), 20, 2000))
    pieces = list(rng.choice(vocab.background, size=length, p=vocab.background_p))
    for pos in np.flatnonzero(rng.random(length) < spec.keyword_rate):
        source = label if rng.random() < spec.own_keyword_prob else int(rng.integers(len(CATEGORIES)))
        words = vocab.keywords[source]
        pieces[pos] = words[int(rng.integers(len(words)))]
    for pos in range(int(rng.integers(8, 30)), length, 25):  # sentence punctuation
        pieces[pos] = "，" if rng.random() < 0.7 else "。"
    if rng.random() < spec.label_noise:
        label = int(rng.integers(len(CATEGORIES)))
    return f"{CATEGORIES[label]}\t{''.join(pieces)}\n"
