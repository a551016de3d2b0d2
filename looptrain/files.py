"""Small file helpers shared by the data and run-directory code: atomic writes and line files."""

from __future__ import annotations

import os
import tempfile
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
