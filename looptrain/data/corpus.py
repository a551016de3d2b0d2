"""A corpus: the encoded train/val/test splits with their vocabulary and labels."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from looptrain.data import synthetic, text
from looptrain.errors import DataError

# Where the embedded default corpus is generated when no data directory is given (relative to the
# working directory, i.e. the project root when run through make).
DEFAULT_DATA_DIR = Path("data") / "synthetic"


@dataclass(frozen=True)
class Corpus:
    """Encoded splits. `splits[name] = (x int32 [n, seq_length], y int32 [n])`."""

    vocab: list[str]
    labels: list[str]
    splits: dict[str, tuple[np.ndarray, np.ndarray]]

    def fingerprints(self) -> dict[str, dict[str, object]]:
        """Per split: example count and a SHA-256 of the encoded arrays.

        A resumed run compares these with the ones saved at its start: its data position is
        derived from the step, which is only meaningful on the same examples in the same order.
        """
        out = {}
        for name, (x, y) in self.splits.items():
            digest = hashlib.sha256(np.ascontiguousarray(x).tobytes())
            digest.update(np.ascontiguousarray(y).tobytes())
            out[name] = {"num_examples": int(len(y)), "sha256": digest.hexdigest()}
        return out


def resolve_data_dir(data_dir: str) -> Path:
    """Absolute data directory; `""` means the embedded synthetic corpus, generated if missing."""
    if not data_dir:
        return synthetic.ensure(DEFAULT_DATA_DIR).resolve()
    return Path(data_dir).expanduser().resolve()


def load_corpus(data_dir: str | Path, *, seq_length: int, vocab_size: int,
                vocab: list[str] | None = None, labels: list[str] | None = None,
                splits: tuple[str, ...] = text.SPLITS) -> Corpus:
    """Reads, checks and encodes the requested splits of `data_dir`.

    Args:
        data_dir: directory holding `train.txt`, `val.txt`, `test.txt` (or `cnews.train.txt` style).
        seq_length: padded/truncated length.
        vocab_size: vocabulary size when the vocabulary is built here.
        vocab, labels: those of an existing run (resume, evaluation); built from `train` when None.
        splits: which splits to encode.

    Raises:
        DataError: a missing/empty file or a malformed line, naming file and line.
    """
    examples = {name: text.read_examples(text.find_split_file(data_dir, name)) for name in splits}
    if vocab is None or labels is None:
        train = examples["train"] if "train" in examples else text.read_examples(
            text.find_split_file(data_dir, "train"))
        vocab = vocab if vocab is not None else text.build_vocab(train.texts, vocab_size)
        labels = labels if labels is not None else text.build_labels(train.labels)
        if len(labels) < 2:
            raise DataError(f"{train.path}: every example has the label '{labels[0]}'; a classifier "
                            f"needs at least two labels in the training split")
    encoded = {
        name: (text.encode_texts(ex.texts, vocab, seq_length), text.encode_labels(ex, labels))
        for name, ex in examples.items()
    }
    return Corpus(vocab=vocab, labels=labels, splits=encoded)
