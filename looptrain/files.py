"""Small file helpers shared by the data and run-directory code: atomic writes and line files."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


def write_lines(path: str | Path, items: list[str]) -> None:
    """Writes one item per line atomically (temp file + rename), so a kill never leaves half a file."""
    write_text_atomic(path, "".join(f"{item}\n" for item in items))


def read_lines(path: str | Path) -> list[str]:
    """Reads a file written by `write_lines`; splits on `\\n` only, as vocab entries may be spaces."""
    with open(path, encoding="utf-8", newline="") as f:  # newline="": keep a "\r" token intact
        text = f.read()
    return text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")


def write_text_atomic(path: str | Path, text: str) -> None:
    """Writes `text` to `path` via a temporary file in the same directory and `os.replace`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the mode a plain open() would
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_directory(out_dir: str | Path):
    """Yields a temporary sibling directory that replaces `out_dir` when the block succeeds.

    An interrupted or failed write never leaves a partial directory behind.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        yield tmp
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def made_from(out_dir: str | Path, spec: dict, files: list[str]) -> bool:
    """True when `out_dir` holds all `files` and its `manifest.json` records `spec`."""
    out_dir = Path(out_dir)
    try:
        manifest = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return manifest.get("spec") == spec and all((out_dir / f).is_file() for f in files)
