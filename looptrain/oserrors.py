"""The machine's refusals as one line: a full disk, a read-only or unwritable directory, a name too
long, a file where a directory should be, memory exhausted.

Python reports them as `OSError` (an errno and the file name); TensorFlow's file operations as an
`OpError` whose message holds the path and the C library's description (`PATH; No space left on
device`, `PATH is not a directory`), and its allocator as `OOM when allocating tensor with shape`.
`as_user_error` recognises all of them and says what happened to which path and what to do.
`run_main` (the scripts) and `lt.fit`/`lt.evaluate` (`reported`) use it, so none of them ends in a
traceback for a cause outside the program. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import functools
import os
import re
from pathlib import Path

from looptrain.errors import UserError
from looptrain.files import temp_target

_AGAIN = "and run the command again"
_RESUME = ("and run it again with --resume=auto (resume='auto' in lt.fit): it continues from the "
           "last complete checkpoint")
_FULL = "free space on that file system, or choose a directory on another one, "
_WRITE = "choose a directory you can write to"
# errno -> (what happened, what to do); _AGAIN becomes _RESUME for a training run.
KINDS = {
    errno.ENOSPC: ("no space left on the device", _FULL + _AGAIN),
    errno.EDQUOT: ("disk quota exceeded", _FULL + _AGAIN),
    errno.EFBIG: ("file too large for the file system or the file-size limit (ulimit -f)",
                  "raise the limit or choose another file system, " + _AGAIN),
    errno.EROFS: ("read-only file system", f"{_WRITE} (or remount it read-write)"),
    errno.EACCES: ("permission denied", f"check its permissions, or {_WRITE}"),
    errno.EPERM: ("operation not permitted", f"check its permissions, or {_WRITE}"),
    errno.ENAMETOOLONG: ("file name too long", "choose a shorter name"),
    errno.ENOTDIR: ("a file stands where a directory is needed", "move the file or choose another path"),
    errno.EISDIR: ("a directory stands where a file is needed", "choose another path"),
    errno.ELOOP: ("a loop of symbolic links", "fix the links or choose another path"),
    errno.EMFILE: ("too many open files", "raise the limit (ulimit -n)"),
    errno.EIO: ("input/output error", "check the device (a failing disk or network file system?) "
                                      + _AGAIN),
}
_BY_DESCRIPTION = {os.strerror(code): code for code in KINDS}
_TF_PATH = re.compile(r"(?:\{\{[^}]*\}\}\s*)?(?P<path>\S.*?)(?:; (?P<description>"
                      + "|".join(map(re.escape, _BY_DESCRIPTION)) + r")| (?P<notdir>is not a directory))")
_TF_TEMP = re.compile(r"(?P<name>.+)_temp(_[0-9a-f]+)?")
_OOM = re.compile(r"OOM when allocating tensor with shape\s*\[(?P<shape>[^\]]*)\] and type (?P<dtype>\w+)")
_BYTES = {"float": 4, "int32": 4, "int64": 8, "double": 8, "half": 2, "bfloat16": 2, "bool": 1}


class FileSystemError(UserError):
    """The file system refused: no space, read-only, no permission, a name too long, ..."""


class OutOfMemory(UserError):
    """An allocation failed: the model, the batch or the data does not fit in memory."""


def as_user_error(exc: BaseException, *, training: bool = False) -> UserError | None:
    """The one-line error for a failure of the machine, or None when `exc` is not one.

    Args:
        exc: an `OSError`, a TensorFlow `OpError`, a `MemoryError` or anything else.
        training: whether it happened in a training run (what to do then: resume it).
    """
    if isinstance(exc, UserError):
        return exc
    if isinstance(exc, MemoryError):
        detail = f" ({str(exc).rstrip('.')})" if str(exc) else ""
        return OutOfMemory(f"out of memory{detail}; {_SMALLER}")
    error = None
    if isinstance(exc, OSError) and exc.errno in KINDS:
        error = _file_system(exc.errno, exc.filename)
    message = getattr(exc, "message", None)
    if type(exc).__module__.startswith("tensorflow") and isinstance(message, str):
        error = _tensorflow(message)
    if isinstance(error, FileSystemError) and training:
        error = FileSystemError(str(error).replace(_AGAIN, _RESUME))
    return error


_SMALLER = ("it does not fit in this machine's memory: reduce the model's sizes, data.seq_length or "
            "train.batch_size")


def _tensorflow(message: str) -> UserError | None:
    oom = _OOM.search(message)
    if oom:
        dims = [int(d) for d in oom.group("shape").split(",") if d.strip().isdigit()]
        size = _BYTES.get(oom.group("dtype"), 4)
        for d in dims:
            size *= d
        return OutOfMemory(f"out of memory allocating a tensor of shape [{oom.group('shape')}] "
                           f"({size / 2**30:.1f} GiB); {_SMALLER}")
    match = _TF_PATH.search(message)
    if not match:
        return None
    code = errno.ENOTDIR if match.group("notdir") else _BY_DESCRIPTION[match.group("description")]
    return _file_system(code, match.group("path"))


def refusal(code: int, path) -> FileSystemError:
    """The error for an `errno` code of `KINDS` at `path`, for a check made before the write."""
    return _file_system(code, path)


def _file_system(code: int, path) -> FileSystemError:
    what, todo = KINDS[code]
    where = f"{public_path(os.fsdecode(path))}: " if path else ""
    return FileSystemError(f"{where}{what}; {todo}")


def public_path(path: str) -> str:
    """The path a user knows for one of looptrain's or TensorFlow's temporary names:
    `RUN/checkpoints/ckpt-20_temp/part-0.data.tempstate1` -> `RUN/checkpoints/ckpt-20`,
    `eval/.report.json.12-ab12cd34.x1.tmp` -> `eval/report.json`."""
    parts = Path(path).parts
    for i, part in enumerate(parts):
        name = temp_target(part)
        tf_temp = _TF_TEMP.fullmatch(part)
        if name is None and tf_temp:
            name = tf_temp.group("name")
        if name is not None:
            return str(Path(*parts[:i], name))
    return path


def reported(function=None, *, training: bool = False):
    """Decorates a public entry point (`lt.fit`, `lt.evaluate`): a failure of the machine leaves
    it as the `UserError` of `as_user_error`, with the original as its cause."""
    if function is None:
        return functools.partial(reported, training=training)

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except UserError:
            raise
        except Exception as exc:  # OSError, MemoryError, TensorFlow's OpError
            error = as_user_error(exc, training=training)
            if error is None:
                raise
            raise error from exc
    return wrapper
