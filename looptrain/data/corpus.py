"""A corpus: the encoded train/val/test splits with their vocabulary and labels.

Text data (`label<TAB>text` files, see `text`) becomes int32 token ids with a vocabulary; array
data (`.npz` files, see `arrays`) is used as float32 and has no vocabulary. A directory holding
`train.npz` is array data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from looptrain.data import arrays, images, synthetic, text, text_cache
from looptrain.errors import DataError

# Where the embedded default corpus is generated when no data directory is given (relative to the
# working directory, i.e. the project root when run through make).
DEFAULT_DATA_DIR = Path("data") / "synthetic"
DEFAULT_IMAGE_DIR = Path("data") / "images"


@dataclass(frozen=True)
class Corpus:
    """Encoded splits. `splits[name] = (x [n, ...], y int32 [n])`.

    Text: x is int32 `[n, seq_length]` and `vocab` the token list. Arrays: x is float32 of any
    per-example shape and `vocab` is None.
    """

    vocab: list[str] | None
    labels: list[str]
    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    # Without splits (a trained run's corpus, for evaluation or export): one example's shape and
    # dtype, which the splits give otherwise.
    shape: tuple[int, ...] | None = None
    element_dtype: str | None = None
    # Text from the cache: each split's text lengths (for length bucketing) and its cache key (what
    # determines its content: the file's bytes and the encoding).
    lengths: dict[str, np.ndarray] | None = None
    keys: dict[str, str] | None = None

    @property
    def kind(self) -> str:
        """"text" or "arrays" (the registry matches it against the model's `DATA_KIND`)."""
        return "arrays" if self.vocab is None else "text"

    @property
    def vocab_size(self) -> int:
        return 0 if self.vocab is None else len(self.vocab)

    @property
    def example_shape(self) -> tuple[int, ...]:
        """The shape of one example, e.g. `(seq_length,)` or `(height, width, channels)`."""
        if not self.splits:
            return tuple(self.shape)
        return tuple(next(iter(self.splits.values()))[0].shape[1:])

    @property
    def dtype(self) -> str:
        if not self.splits:
            return self.element_dtype or ("int32" if self.vocab is not None else "float32")
        return next(iter(self.splits.values()))[0].dtype.name

    def fingerprints(self) -> dict[str, dict[str, object]]:
        """Per split: example count and a SHA-256 of the encoded arrays.

        A resumed run compares these with the ones saved at its start: its data position is
        derived from the step, which is only meaningful on the same examples in the same order.
        """
        out = {}
        for name, (x, y) in self.splits.items():
            if self.keys and name in self.keys:
                out[name] = {"num_examples": int(len(y)), "sha256": self.keys[name]}
                continue
            digest = hashlib.sha256()
            for array in (x, y):
                if isinstance(array, np.memmap):  # on disk: its file, not a read of all of it
                    stat = Path(array.filename).stat()
                    digest.update(f"{array.filename}:{stat.st_size}:{stat.st_mtime_ns}".encode())
                    continue
                for start in range(0, len(array), 1 << 16):  # bounded memory
                    digest.update(np.ascontiguousarray(array[start:start + (1 << 16)]).tobytes())
            out[name] = {"num_examples": int(len(y)), "sha256": digest.hexdigest()}
        return out


def resolve_data_dir(data_dir: str, embedded: str = "text") -> Path:
    """Absolute data directory; `""` means the embedded generated data set named by `embedded`
    ("text": the synthetic news corpus, "images": the generated shapes), generated if missing."""
    if not data_dir:
        if embedded == "images":
            return images.ensure(DEFAULT_IMAGE_DIR).resolve()
        return synthetic.ensure(DEFAULT_DATA_DIR).resolve()
    try:
        return Path(data_dir).expanduser().resolve()
    except RuntimeError:  # Python 3.11's resolve() on a loop of symbolic links
        raise DataError(f"--data-dir {data_dir}: a loop of symbolic links; fix the links or give "
                        f"the directory itself") from None


def load_corpus(data_dir: str | Path, *, seq_length: int, vocab_size: int,
                vocab: list[str] | None = None, labels: list[str] | None = None,
                splits: tuple[str, ...] = text.SPLITS) -> Corpus:
    """Reads, checks and encodes the requested splits of `data_dir`.

    Args:
        data_dir: directory holding `train.txt`, `val.txt`, `test.txt` (or `cnews.train.txt` style),
            or `train.npz`, `val.npz`, `test.npz` (array data: `seq_length` and `vocab_size` unused).
        seq_length: padded/truncated length.
        vocab_size: vocabulary size when the vocabulary is built here.
        vocab, labels: those of an existing run (resume, evaluation); built from `train` when None.
            An array run has labels but no vocabulary.
        splits: which splits to encode.

    Raises:
        DataError: a missing/empty file or a malformed line, naming file and line, or data of
            the other kind than the run's (text for an array run, or the reverse).
    """
    if arrays.is_array_dir(data_dir):
        if vocab is not None:
            raise DataError(f"{data_dir} holds array data (train.npz) but this run was trained on "
                            f"text (it has a vocabulary); use the run's own --data-dir")
        labels, splits_xy = arrays.load_arrays(data_dir, labels=labels, splits=splits)
        return Corpus(vocab=None, labels=labels, splits=splits_xy)
    if labels is not None and vocab is None:
        raise DataError(f"{data_dir} holds text data but this run has no vocab.txt (it was trained "
                        f"on array data, or the file was deleted); use the run's own --data-dir")
    files = {name: text.find_split_file(data_dir, name) for name in splits}
    digests = {name: text_cache.file_digest(path) for name, path in files.items()}
    if vocab is None or labels is None:
        train = files["train"] if "train" in files else text.find_split_file(data_dir, "train")
        digest = digests.get("train") or text_cache.file_digest(train)
        built_vocab, built_labels = text_cache.vocabulary(train, digest, vocab_size)
        vocab = vocab if vocab is not None else built_vocab
        labels = labels if labels is not None else built_labels
        if len(labels) < 2:
            raise DataError(f"{train}: every example has the label '{labels[0]}'; a classifier "
                            f"needs at least two labels in the training split")
        if len(labels) > arrays.MAX_CLASSES:
            raise DataError(f"{train}: {len(labels):,} distinct labels; at most "
                            f"{arrays.MAX_CLASSES:,} classes are supported (is the label column "
                            f"really the first, before the tab?)")
    encoded, lengths, keys = {}, {}, {}
    for name, path in files.items():
        x, y, lengths[name], keys[name] = text_cache.encoded_split(
            path, digests[name], vocab, labels, seq_length)
        encoded[name] = (x, y)
    return Corpus(vocab=vocab, labels=labels, splits=encoded, lengths=lengths, keys=keys)
