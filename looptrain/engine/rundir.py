"""The run directory as the loop sees it: its layout and the guards that keep a run from being
clobbered.

    RUN/fit.json        what the run is: the task, its hyper-parameters, the settings fixed for
                        its life, the training data's fingerprint, its identity (written first)
    RUN/train.log       time-stamped log lines of every session of the run (start, evals, stops)
    RUN/checkpoints/    ckpt-<step>.* and the `checkpoint` index (latest few)
    RUN/best            -> best.<step>/: the weights of the best monitored value and best.json
                        (a symlink, swapped atomically when a better model is found)
    RUN/.lock           held (flock) by the trainer running on this directory
    RUN/logs/<split>    TensorBoard event files (train, val; RUN/logs itself: hparams)

Applications add their own files (the command line: config.json, vocab.txt, labels.txt,
data.json and eval/; see `looptrain.run`).
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

from looptrain import oserrors
from looptrain.errors import RunDirError
from looptrain.files import listing, write_text_atomic
from looptrain.lock import RunLock

# What a start writes before its first checkpoint: a directory holding only these (and no
# fit.json), the lock among them, is an unfinished start of looptrain's own that a new run may
# take over.
START_FILES = {".lock", "vocab.txt", "labels.txt", "data.json", "config.json"}


class RunDir:
    """Paths and guards of one run directory."""

    def __init__(self, path: str | Path):
        if not isinstance(path, (str, os.PathLike)):
            raise RunDirError(f"run_dir must be a path (a str or pathlib.Path), got "
                              f"{type(path).__name__} {path!r}")
        self.path = Path(path)
        self.fit_file = self.path / "fit.json"
        self.log_file = self.path / "train.log"
        self.checkpoints = self.path / "checkpoints"
        self.best = self.path / "best"
        self.logs = self.path / "logs"

    def has_checkpoint(self) -> bool:
        return (self.checkpoints / "checkpoint").is_file() or any(self.checkpoints.glob("ckpt-*.index"))

    def has_run(self) -> bool:
        """Whether a run was started here (its record or a checkpoint exists)."""
        return self.fit_file.is_file() or self.has_checkpoint()

    def check_location(self) -> None:
        """Refuses a run directory that cannot be a run's own: `/`, the current or home directory
        (which `--run-dir ""` or `.` name), a file, or a dangling symlink; or that could not be
        written (under a file, a name too long, read-only or not permitted).

        Raises:
            RunDirError, FileSystemError: naming the path and what to do.
        """
        path = self.path
        if path.is_symlink() and not path.exists():
            raise RunDirError(f"--run-dir {path} is a symlink to a missing directory; fix the link "
                              f"or choose another --run-dir")
        if path.exists() and not path.is_dir():
            raise RunDirError(f"--run-dir {path} is a file, not a directory; choose another "
                              f"--run-dir")
        self._check_writable()
        resolved = path.resolve()
        for special, what in ((Path("/"), "the root directory"), (Path.cwd(), "the current directory"),
                              (Path.home(), "your home directory")):
            if resolved == special.resolve():
                raise RunDirError(f"--run-dir '{path}' is {what}; a run needs a directory of its own, "
                                  f"e.g. --run-dir runs/NAME")

    def _check_writable(self) -> None:
        """Refuses, before anything starts, a run directory that could not be written: under a
        file, with a name too long, on read-only storage or without write permission."""
        path, missing = self.path.absolute(), []
        while not path.exists() and path != path.parent:
            missing.append(path.name)
            path = path.parent
        if not path.is_dir():
            raise RunDirError(f"--run-dir {self.path}: {path} is a file, not a directory; choose "
                              f"another --run-dir")
        if any(len(os.fsencode(name)) > os.pathconf(path, "PC_NAME_MAX") for name in missing):
            raise oserrors.refusal(errno.ENAMETOOLONG, self.path)
        if not os.access(path, os.W_OK | os.X_OK):
            read_only = os.statvfs(path).f_flag & os.ST_RDONLY
            raise oserrors.refusal(errno.EROFS if read_only else errno.EACCES, path)

    def check_new(self, *, resume_hint: str = "--resume", other: str = "another --run-dir") -> None:
        """Refuses to start a fresh run where one already exists or where files of someone else's
        are (nothing is overwritten): the directory must be missing, empty, or hold only an
        unfinished start of looptrain's own (its lock file and start files, no fit.json).

        Raises:
            RunDirError: the directory holds a run, or other files.

        `resume_hint` and `other` are how the messages say to continue the run or choose another
        directory (the command line's `make resume RUN=x` / `another RUN=`).
        """
        self.check_location()
        if self.has_checkpoint():
            raise RunDirError(f"{self.path} already holds a run with checkpoints: continue it with "
                              f"{resume_hint}, or choose {other}")
        if self.fit_file.exists():
            raise RunDirError(f"{self.path} already holds a run that stopped before its first checkpoint: "
                              f"continue it with {resume_hint}, or choose {other}")
        if self.path.is_dir():
            names = {p.name for p in self.path.iterdir()}
            ours = ".lock" in names and names <= START_FILES
            if names and not ours:
                raise RunDirError(f"{self.path} is not empty and is not a looptrain run (it holds "
                                  f"{listing(names)}); choose a new or empty --run-dir")

    def check_resumable(self) -> None:
        """Raises RunDirError unless there is a run to resume.

        A run killed before its first checkpoint was complete resumes from step 0.
        """
        self.check_location()
        if not self.path.is_dir():
            raise RunDirError(f"--resume: run directory {self.path} does not exist")
        if not self.has_run():
            raise RunDirError(f"--resume: nothing to resume in {self.path} (no fit.json); start it "
                              f"without --resume")

    def lock(self) -> RunLock:
        """The exclusive lock a trainer holds on this directory while it runs (creates the directory)."""
        return RunLock(self.path)

    def write_record(self, record: dict) -> None:
        """Writes `fit.json` (atomically)."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.fit_file, json.dumps(record, indent=2, ensure_ascii=False) + "\n")

    def read_record(self) -> dict:
        """`fit.json` as written by `write_record`.

        Raises:
            RunDirError: it is missing or unreadable.
        """
        try:
            record = json.loads(self.fit_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RunDirError(f"cannot read {self.fit_file} ({exc}); the run directory is damaged") from None
        if not isinstance(record, dict):
            raise RunDirError(f"{self.fit_file} is not a run record; the run directory is damaged")
        return record

    def remove_if_unused(self) -> None:
        """Removes the directory if nothing but the lock file got into it."""
        if self.path.is_dir() and {p.name for p in self.path.iterdir()} <= {".lock"}:
            (self.path / ".lock").unlink(missing_ok=True)
            self.path.rmdir()
