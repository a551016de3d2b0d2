"""User-facing errors and the ways a training session can end early.

Every mistake a user can make (bad config key, malformed data line, run directory in the wrong state)
raises a subclass of `UserError`. The scripts turn it into one line on stderr and a non-zero exit
status (`exit_code`, 2 unless said otherwise), with no traceback: the message itself must name the
file/line/key and say what to do.
"""


class UserError(Exception):
    """A problem with the user's input, reported as one line without a traceback."""

    exit_code = 2


class ConfigError(UserError):
    """An unknown key, a wrong type or an out-of-range value in the configuration."""


class DataError(UserError):
    """A missing, empty or malformed data file."""


class RunDirError(UserError):
    """A run directory that is in the wrong state for the requested action, or in use."""


class TrainingDiverged(UserError):
    """A non-finite loss or gradient; the last good checkpoint is left as it was."""

    exit_code = 3


class WorkerLost(UserError):
    """Another worker of a multi-worker run is gone; this one stops without saving (exit 4)."""

    exit_code = 4


class Stopped(Exception):
    """Training stopped on SIGINT/SIGTERM after writing a checkpoint; exit status 128 + signal."""

    def __init__(self, message: str, signum: int, *, logged: bool = False):
        super().__init__(message)
        self.exit_code = 128 + signum
        self.logged = logged  # already shown by the loop's log: the command line says it once


class TimeLimitReached(Exception):
    """Training stopped at its time limit (`train.time_limit`) after writing a checkpoint: exit
    status 75 (EX_TEMPFAIL, "try again"): run the same command with `--resume=auto` to continue."""

    exit_code = 75


class TaskError(UserError):
    """A task whose step, outputs or state the loop cannot use (e.g. a non-scalar train output)."""
