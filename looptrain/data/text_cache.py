"""Text at scale: the vocabulary pass and the encoding stream through the files with bounded memory,
and the encoded splits are written once to an on-disk cache that later runs memory-map.

The cache lives in `$LOOPTRAIN_CACHE` (default `~/.cache/looptrain`), in directories named by a
digest of what determines their content: for a split, the file's bytes, the vocabulary, the
labels and the sequence length; for a vocabulary, the training file's bytes and the vocabulary
size. A second run on the same files (or a resume) reads no text at all: the files' digests are
remembered by their stat (`file_digest`). Entries are written into a temporary directory and
renamed, so a killed run never leaves a half-written entry behind; a damaged entry is simply made
again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from looptrain.data import text
from looptrain.errors import DataError
from looptrain.files import write_text_atomic

_LINES = 65_536  # lines parsed and encoded at a time: the memory bound
_RACY_SECONDS = 2.0  # a file written this recently is hashed again next time (see file_digest)
_VERSION = 1  # bumped when the encoding changes, so old entries are not reused


def cache_root() -> Path:
    return Path(os.environ.get("LOOPTRAIN_CACHE") or Path.home() / ".cache" / "looptrain")


def file_digest(path: Path) -> str:
    """SHA-256 of a data file's bytes (only a regular file: opening a named pipe would wait for a
    writer forever).

    Hashing a 1 GB file took 0.7 s of every start here (quiet; more under load), so the digest is
    remembered in the cache, keyed by the file's identity and stat (device, inode, size,
    modification and change times, as git's index does): any write, `touch`, rename over it or `os.utime` changes the change time and
    the file is hashed again. A file modified within `_RACY_SECONDS` of being hashed is not
    remembered (a second write in the same timestamp tick could leave the stat unchanged).
    """
    _check_regular(path)
    before = _stamp(path)
    entry = cache_root() / "digests" / _key(*before)
    try:
        remembered = entry.read_text(encoding="ascii").strip()
        if len(remembered) == 64:
            return remembered
    except (OSError, UnicodeDecodeError):
        pass
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                digest.update(block)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    if _stamp(path) == before and time.time() - before[4] / 1e9 > _RACY_SECONDS:
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(entry, digest.hexdigest() + "\n")
        except OSError:
            pass  # a read-only or full cache: hashed again next time
    return digest.hexdigest()


def _stamp(path: Path) -> list:
    stat = os.stat(path)
    return [os.path.realpath(path), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns,
            stat.st_ctime_ns]


def _check_regular(path: Path) -> None:
    if not path.is_file():
        raise DataError(f"{path} is not a regular file; data files must be plain files")


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps([_VERSION, *parts], ensure_ascii=False).encode()).hexdigest()[:32]


def iter_chunks(path: Path) -> Iterator[tuple[int, list[str], list[str]]]:
    """`(first line number, labels, texts)` of `_LINES` lines at a time, parsed as
    `text.read_examples` does (the same line ends, BOM rule and error messages)."""
    _check_regular(path)
    labels, texts, number, first = [], [], 0, 1
    try:
        with open(path, "rb") as f:
            for raw in f:
                raw = raw.removeprefix(text.BOM.encode()) if number == 0 else raw
                raw = raw[:-1] if raw.endswith(b"\n") else raw
                raw = raw[:-1] if raw.endswith(b"\r") else raw
                for line in raw.split(b"\r"):  # a lone \r ends a line too (old Mac files)
                    number += 1
                    label, body = text.parse_line(path, number, line)
                    labels.append(label)
                    texts.append(body)
                if len(labels) >= _LINES:
                    yield first, labels, texts
                    labels, texts, first = [], [], number + 1
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    if labels:
        yield first, labels, texts
    elif number == 0:
        raise DataError(f"{path} is empty: expected one label<TAB>text example per line")


def vocabulary(path: Path, digest: str, vocab_size: int) -> tuple[list[str], list[str]]:
    """The vocabulary and labels of a training file, from the cache or one streaming pass."""
    entry = cache_root() / "vocab" / _key(digest, vocab_size)
    try:
        saved = json.loads((entry / "vocab.json").read_text(encoding="utf-8"))
        return saved["vocab"], saved["labels"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    counts = np.zeros(text.MAX_CODEPOINT, dtype=np.int64)
    labels: set[str] = set()
    for _, chunk_labels, texts in iter_chunks(path):
        labels.update(chunk_labels)
        counts += text.codepoint_counts(texts)
    vocab, labels = text.vocab_from_counts(counts, vocab_size), sorted(labels)
    _write(entry, {"vocab.json": json.dumps({"vocab": vocab, "labels": labels}, ensure_ascii=False)})
    return vocab, labels


def encoded_split(path: Path, digest: str, vocab: list[str], labels: list[str],
                  seq_length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """`(ids int32 [n, seq_length] memory-mapped, labels int32 [n], text lengths int32 [n], key)`
    of one split file, encoded once into the cache."""
    key = _key(digest, vocab, labels, seq_length)
    entry = cache_root() / "encoded" / key
    try:
        return (np.load(entry / "x.npy", mmap_mode="r"), np.load(entry / "y.npy"),
                np.load(entry / "lengths.npy"), key)
    except (OSError, ValueError):
        pass
    lookup, index = text.lookup_table(vocab), {label: i for i, label in enumerate(labels)}
    num_lines = sum(len(chunk_labels) for _, chunk_labels, _ in iter_chunks(path))
    tmp = _new_entry(entry)
    try:
        x = np.lib.format.open_memmap(tmp / "x.npy", mode="w+", dtype=np.int32,
                                      shape=(num_lines, seq_length))
        y = np.empty(num_lines, np.int32)
        row = 0
        for first, chunk_labels, texts in iter_chunks(path):
            end = row + len(texts)
            text.encode_into(texts, lookup, x[row:end])
            y[row:end] = text.label_ids(path, first, chunk_labels, index, labels)
            row = end
        x.flush()
        del x
        np.save(tmp / "y.npy", y)
        np.save(tmp / "lengths.npy", _lengths(np.load(tmp / "x.npy", mmap_mode="r")))
        _publish(tmp, entry)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return (np.load(entry / "x.npy", mmap_mode="r"), np.load(entry / "y.npy"),
            np.load(entry / "lengths.npy"), key)


def _lengths(x: np.ndarray) -> np.ndarray:
    """Each row's text length (one past its last non-zero id), a block at a time."""
    from looptrain.data.pipeline import text_lengths

    return np.concatenate([text_lengths(np.asarray(x[i:i + _LINES]))
                           for i in range(0, len(x), _LINES)] or [np.zeros(0, np.int32)])


def _new_entry(entry: Path) -> Path:
    entry.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=entry.parent, prefix=f".{entry.name}."))


def _publish(tmp: Path, entry: Path) -> None:
    """Makes `tmp` the entry (a concurrent run that made the same entry first wins)."""
    try:
        tmp.rename(entry)
    except OSError:
        if not entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
            tmp.rename(entry)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _write(entry: Path, files: dict[str, str]) -> None:
    tmp = _new_entry(entry)
    for name, content in files.items():
        (tmp / name).write_text(content, encoding="utf-8")
    _publish(tmp, entry)
