"""Text classification files: `label<TAB>text` lines, the character vocabulary, labels and encoding.

Conventions (documented in the README):
- A file is UTF-8 with one example per line: the label, a tab, the text (further tabs belong to the text).
  Lines end with `\\n`, `\\r\\n` or `\\r` (old Mac files), as Python's universal newlines read them;
  a byte-order mark is accepted at the start of the file only (inside, it means two files were joined
  with `cat`); anything else malformed is an error naming file and line.
- The vocabulary is `<PAD>` (id 0) followed by the `vocab_size - 1` most frequent characters of the
  training split, ties broken by code point so it is reproducible.
- Characters not in the vocabulary are dropped (as in the reference classifier), so the text keeps its
  known characters in order; a text with no known character encodes to all padding.
- Sequences keep their first `seq_length` characters and are padded with 0 at the end ("post"),
  which keeps the start of a news article and suits masked RNNs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from looptrain.errors import DataError

PAD = "<PAD>"
SPLITS = ("train", "val", "test")
MAX_CODEPOINT = 0x110000
_CHUNK = 4096  # texts encoded per vectorised pass


@dataclass(frozen=True)
class Examples:
    """The raw examples of one file, in file order."""

    path: Path
    labels: list[str]
    texts: list[str]


def find_split_file(data_dir: str | Path, split: str) -> Path:
    """Finds `<split>.txt` or a prefixed name such as `cnews.<split>.txt` in `data_dir`.

    Raises:
        DataError: the directory or the file is missing, or several files match.
    """
    data_dir = Path(data_dir)
    if data_dir.exists() and not data_dir.is_dir():
        raise DataError(f"data directory {data_dir} is a file, not a directory (pass --data-dir DIR)")
    if not data_dir.is_dir():
        raise DataError(f"data directory {data_dir} does not exist (pass --data-dir DIR)")
    exact = data_dir / f"{split}.txt"
    if exact.exists():
        return exact
    matches = sorted(data_dir.glob(f"*.{split}.txt"))
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = ", ".join(m.name for m in matches)
        raise DataError(f"{data_dir}: several {split} files ({names}); keep one")
    raise DataError(f"{data_dir}: no {split}.txt (or *.{split}.txt) file; expected label<TAB>text lines")


def read_examples(path: str | Path) -> Examples:
    """Reads one `label<TAB>text` file.

    Raises:
        DataError: naming the file and line of the first malformed line, or an empty file.
    """
    path = Path(path)
    lines = split_lines(_read_regular(path))
    labels, texts = [], []
    for number, line in enumerate(lines, start=1):
        label, text = parse_line(path, number, line)
        labels.append(label)
        texts.append(text)
    if not labels:
        raise DataError(f"{path} is empty: expected one label<TAB>text example per line")
    return Examples(path, labels, texts)


BOM = "\ufeff"


def split_lines(raw: bytes) -> list[bytes]:
    """A file's lines without their ends (`\\n`, `\\r\\n` or `\\r`) and without a leading BOM."""
    raw = raw.removeprefix(BOM.encode())
    lines = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the newline that ends the last line
    return lines


def _read_regular(path: Path) -> bytes:
    """A data file's bytes; a named pipe or device would block or never end, so only regular files."""
    try:
        if not path.is_file():
            raise DataError(f"{path} is not a regular file; data files must be plain files")
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None


def parse_line(path: Path, number: int, line: bytes) -> tuple[str, str]:
    where = f"{path}:{number}"
    try:
        decoded = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{where}: not valid UTF-8 (byte {exc.start}); re-encode the file as UTF-8") from None
    if BOM in decoded:
        raise DataError(f"{where}: a byte-order mark (U+FEFF) inside the file, where two files were "
                        f"probably joined with cat; remove it (only the first line may start with one)")
    label, tab, text = decoded.partition("\t")
    if not tab:
        what = "is empty" if not decoded.strip() else "has no tab"
        raise DataError(f"{where}: line {what}; every line must be label<TAB>text")
    if not label.strip():
        raise DataError(f"{where}: empty label before the tab")
    if not text.strip():
        raise DataError(f"{where}: empty text after label '{label.strip()}'")
    return label.strip(), text


def codepoint_counts(texts: list[str]) -> np.ndarray:
    """How often each code point occurs in `texts` (int64 `[MAX_CODEPOINT]`), a chunk at a time."""
    counts = np.zeros(MAX_CODEPOINT, dtype=np.int64)
    for start in range(0, len(texts), _CHUNK):
        counts += np.bincount(_codepoints("".join(texts[start:start + _CHUNK])),
                              minlength=MAX_CODEPOINT)
    return counts


def vocab_from_counts(counts: np.ndarray, vocab_size: int) -> list[str]:
    """`[PAD] + the vocab_size - 1 most frequent characters`, ties broken by code point."""
    present = np.flatnonzero(counts)
    # Sort by descending count, then ascending code point: deterministic for equal counts.
    order = np.lexsort((present, -counts[present]))
    chosen = present[order[: vocab_size - 1]]
    return [PAD] + [chr(c) for c in chosen]


def build_vocab(texts: list[str], vocab_size: int) -> list[str]:
    """Returns `[PAD] + the vocab_size - 1 most frequent characters`, ties broken by code point."""
    return vocab_from_counts(codepoint_counts(texts), vocab_size)


def build_labels(labels: list[str]) -> list[str]:
    """The sorted distinct labels of the training split (never a hard-coded list)."""
    return sorted(set(labels))


def lookup_table(vocab: list[str]) -> np.ndarray:
    """Code point -> id (`-1` for characters outside the vocabulary)."""
    lookup = np.full(MAX_CODEPOINT, -1, dtype=np.int32)
    lookup[[ord(ch) for ch in vocab[1:]]] = np.arange(1, len(vocab), dtype=np.int32)
    return lookup


def encode_texts(texts: list[str], vocab: list[str], seq_length: int) -> np.ndarray:
    """Encodes texts to an int32 `[len(texts), seq_length]` array (see the module conventions).

    Vectorised: one table lookup over all code points of a chunk of texts, no Python loop per
    character; chunking keeps memory bounded for large corpora.
    """
    out = np.zeros((len(texts), seq_length), dtype=np.int32)
    encode_into(texts, lookup_table(vocab), out)
    return out


def encode_into(texts: list[str], lookup: np.ndarray, out: np.ndarray) -> None:
    """Encodes `texts` into the rows of `out` (zeros first), a chunk of texts at a time."""
    out[...] = 0
    for start in range(0, len(texts), _CHUNK):
        _encode_chunk(texts[start:start + _CHUNK], lookup, out[start:start + _CHUNK])


def _encode_chunk(texts: list[str], lookup: np.ndarray, out: np.ndarray) -> None:
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    ids = lookup[_codepoints("".join(texts))]
    doc = np.repeat(np.arange(len(texts)), lengths)
    known = ids >= 0
    ids, doc = ids[known], doc[known]
    # Position of each kept character inside its document, after unknowns were dropped.
    kept_per_doc = np.bincount(doc, minlength=len(texts))
    starts = np.concatenate([[0], np.cumsum(kept_per_doc)[:-1]])
    position = np.arange(len(ids)) - starts[doc]
    inside = position < out.shape[1]
    out[doc[inside], position[inside]] = ids[inside]


def encode_labels(examples: Examples, labels: list[str]) -> np.ndarray:
    """Maps label strings to ids in `labels` order.

    Raises:
        DataError: a label that the training split does not have, naming file and line.
    """
    index = {label: i for i, label in enumerate(labels)}
    return label_ids(examples.path, 1, examples.labels, index, labels)


def label_ids(path: Path, first_line: int, names: list[str], index: dict[str, int],
              labels: list[str]) -> np.ndarray:
    """The ids of `names` (lines `first_line`, `first_line + 1`, ... of `path`) in `index`.

    Raises:
        DataError: a label that the training split does not have, naming file and line.
    """
    out = np.empty(len(names), dtype=np.int32)
    for offset, label in enumerate(names):
        if label not in index:
            raise DataError(
                f"{path}:{first_line + offset}: label '{label}' does not occur in the training split "
                f"(known: {', '.join(labels)})")
        out[offset] = index[label]
    return out


def _codepoints(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
