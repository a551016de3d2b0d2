"""Small file helpers shared by the data and run-directory code: atomic writes and line files.

Every temporary file or directory looptrain writes before a rename is a hidden sibling of its
target named `.<target>.<pid>-<host>.<random>.tmp`: a kill leaves nothing but such a name, which
`remove_stale_temps` recognises (its writer is gone) and removes on the next start.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path

from looptrain.errors import DataError


def write_lines(path: str | Path, items: list[str]) -> None:
    """Writes one item per line atomically (temp file + rename), so a kill never leaves half a file."""
    write_text_atomic(path, "".join(f"{item}\n" for item in items))


def read_lines(path: str | Path) -> list[str]:
    """Reads a file written by `write_lines`; splits on `\\n` only, as vocab entries may be spaces."""
    with open(path, encoding="utf-8", newline="") as f:  # newline="": keep a "\r" token intact
        text = f.read()
    return text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")


def write_text_atomic(path: str | Path, text: str) -> None:
    """Writes `text` (UTF-8) to `path` atomically (see `write_bytes_atomic`)."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Writes `data` to `path` via a temporary file in the same directory and `os.replace`, so a
    kill or a full disk leaves the old file or the new one, never half of one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path.name), suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the mode a plain open() would
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)  # a failed write() names no file: the message must
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Which host wrote a temporary name: a process id means something only on its own host.
HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
TEMP_NAME = re.compile(r"\.(?P<target>.+)\.(?P<pid>\d+)-(?P<host>[0-9a-f]{8})\.[A-Za-z0-9_]+\.tmp")


def temp_dir(parent: str | Path, name: str) -> Path:
    """A new temporary sibling directory for `parent/name` (see the module docstring), with the
    mode a plain `mkdir` would give it (`mkdtemp` makes it private)."""
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=temp_prefix(name), suffix=".tmp"))
    os.chmod(tmp, 0o777 & ~_umask())
    return tmp


def temp_prefix(name: str) -> str:
    """The `prefix` for `tempfile.mkstemp`/`mkdtemp` (with `suffix=".tmp"`) of a temporary sibling
    of `name` (see the module docstring)."""
    return f".{name}.{os.getpid()}-{HOST}."


def temp_target(name: str) -> str | None:
    """The target a temporary name stands for (`.report.json.12-ab12cd34.x1y2.tmp` ->
    `report.json`), or None for any other name."""
    match = TEMP_NAME.fullmatch(name)
    return match.group("target") if match else None


def remove_stale_temps(directory: str | Path, target: str | None = None) -> list[Path]:
    """Removes the temporary files and directories in `directory` (only those of `target`, when
    given) whose writer, a process of this host, is gone: what a kill or a full disk left behind.
    Returns what was removed; a directory that cannot be listed or written is left alone."""
    removed = []
    try:
        entries = list(Path(directory).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = TEMP_NAME.fullmatch(entry.name)
        if not match or match.group("host") != HOST or _alive(int(match.group("pid"))):
            continue
        if target is not None and match.group("target") != target:
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError:
            continue
        removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


@contextmanager
def atomic_directory(out_dir: str | Path, *, foreign=lambda old: [p.name for p in old.iterdir()]):
    """Yields a temporary sibling directory that replaces `out_dir` when the block succeeds.

    An interrupted or failed write never leaves a partial directory behind. An existing `out_dir`
    is replaced only when `foreign(out_dir)`, the names in it that the same writer did not create,
    is empty (by default: when it is empty): looptrain never deletes what it did not create.

    Raises:
        DataError: `out_dir` exists and is not a directory, or holds foreign files (checked
            before anything is written).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() or out_dir.is_symlink():
        if not out_dir.is_dir() or out_dir.is_symlink():
            raise DataError(f"{out_dir} exists and is not a directory; move it away (looptrain "
                            f"writes generated data there)")
        names = foreign(out_dir)
        if names:
            raise DataError(f"{out_dir} holds files looptrain did not generate ({listing(names)}); "
                            f"move them away, or pass --data-dir to use your own data")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out_dir.parent, out_dir.name)
    tmp = temp_dir(out_dir.parent, out_dir.name)
    try:
        yield tmp
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def listing(names, limit: int = 3) -> str:
    """`a, b, c and 4 more`: the first few of `names` (sorted) for an error message."""
    names = sorted(names)
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def not_generated_by(out_dir: str | Path, generator: str, files: list[str]) -> list[str]:
    """The names in `out_dir` that `generator` did not write: all of them unless its
    `manifest.json` names `generator`, else those other than `files`, the manifest and
    `README.txt` (what a generator writes; anything else is the user's)."""
    out_dir = Path(out_dir)
    names = [p.name for p in out_dir.iterdir()]
    try:
        manifest = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return names
    if not isinstance(manifest, dict):
        return names
    # Manifests written before looptrain recorded the generator carry only "synthetic": true.
    if manifest.get("generator", generator if manifest.get("synthetic") is True else None) != generator:
        return names
    allowed = {*files, "manifest.json", "README.txt"}
    return [name for name in names if name not in allowed or not (out_dir / name).is_file()
            or (out_dir / name).is_symlink()]


def made_from(out_dir: str | Path, spec: dict, files: list[str]) -> bool:
    """True when `out_dir` holds all `files` and its `manifest.json` records `spec`."""
    out_dir = Path(out_dir)
    try:
        manifest = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return manifest.get("spec") == spec and all((out_dir / f).is_file() for f in files)


def ensure_generated(out_dir: str | Path, spec: dict, files: list[str], generate) -> Path:
    """`out_dir`, made by `generate()` unless its manifest records `spec` (`made_from`).

    One process generates at a time (an `flock` on the hidden sibling `.<name>.lock`, which the
    kernel drops if its holder dies), and a process that waited checks again: runs started together
    on a fresh checkout (the bench's five processes) each generated the embedded data, and the last
    one's replacing the directory took the files away from a run already reading them.
    """
    out_dir = Path(out_dir)
    if made_from(out_dir, spec, files):
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(out_dir.parent / f".{out_dir.name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
        if not made_from(out_dir, spec, files):
            generate()
    return out_dir


def point_symlink(link: Path, target: str) -> None:
    """Makes `link` point at `target` with one atomic rename (a reader sees old or new, never none)."""
    link = Path(link)
    if link.is_dir() and not link.is_symlink():  # a best/ directory written by looptrain 0.1
        link.rename(link.with_name(f"{link.name}.legacy"))
    tmp = link.with_name(f".{link.name}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)
