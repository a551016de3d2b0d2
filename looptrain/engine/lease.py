"""A read lease on a checkpoint: hard links that a trainer's pruning cannot take away.

A trainer running on the same directory replaces `best` and deletes old checkpoints at any moment
(`keep_checkpoints`), so evaluation, prediction or export of a running run could find its
checkpoint gone halfway through reading it. A reader therefore first links the checkpoint's files
into a private directory of the run, `RUN/.readers/.lease.<pid>-<host>.<random>.tmp/`: deleting a
file only removes one of its names, so the linked files stay readable until the reader drops them.
Linking takes microseconds, however often the trainer saves; if the checkpoint vanishes before its
files are linked, the reader looks it up again.

Where links cannot be made (read-only storage, a file system without hard links, checkpoints on
another file system) the reader reads the files in place: no trainer can be writing a read-only
run, and elsewhere the lookup is repeated if the checkpoint vanishes while it is read.
"""

from __future__ import annotations

import errno
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from looptrain.files import remove_stale_temps, temp_dir

READERS = ".readers"
# Errors that mean "links cannot be made here", as opposed to "the checkpoint is gone".
_NO_LINKS = {errno.EROFS, errno.EACCES, errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOSPC,
             errno.EDQUOT, errno.ENOTSUP}


def checkpoint_files(prefix: str) -> list[Path]:
    """The files of the checkpoint `prefix`: its index and every data shard it names.

    Raises:
        FileNotFoundError: the index or a shard is missing.
    """
    index = Path(f"{prefix}.index")
    if not index.is_file():
        raise FileNotFoundError(errno.ENOENT, "checkpoint removed", str(index))
    shards = sorted(index.parent.glob(f"{index.name[:-len('.index')]}.data-*-of-*"))
    count = int(shards[0].name.rsplit("-of-", 1)[1]) if shards else 1
    if len(shards) != count:
        raise FileNotFoundError(errno.ENOENT, "checkpoint data removed", f"{prefix}.data-*")
    return [index, *shards]


@contextmanager
def lease(prefix: str, run_path: str | Path):
    """Yields a prefix to read the checkpoint `prefix` from that no trainer can remove meanwhile
    (see the module docstring): hard links in `RUN/.readers/`, removed on exit, or `prefix`
    itself where links cannot be made.

    Raises:
        FileNotFoundError: the checkpoint was removed before its files were linked.
    """
    readers = Path(run_path) / READERS
    try:
        readers.mkdir(exist_ok=True)
        remove_stale_temps(readers)  # the leases of killed readers
        private = temp_dir(readers, "lease")
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
        checkpoint_files(prefix)
        yield prefix
        return
    try:
        linked = _link(prefix, private)
        yield linked
    finally:
        shutil.rmtree(private, ignore_errors=True)
        try:
            readers.rmdir()  # only when no other reader holds a lease
        except OSError:
            pass


def _link(prefix: str, private: Path) -> str:
    name = Path(prefix).name
    for path in checkpoint_files(prefix):
        try:
            os.link(path, private / f"{name}{path.name[len(name):]}")
        except FileNotFoundError:
            raise
        except OSError as exc:
            if exc.errno not in _NO_LINKS:
                raise
            return prefix  # cannot link here: read in place
    checkpoint_files(str(private / name))  # every shard linked (none vanished in between)
    return str(private / name)
