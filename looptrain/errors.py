"""User-facing errors.

Every mistake a user can make (bad config key, malformed data line, run directory in the wrong state)
raises a subclass of `UserError`. The scripts turn it into one line on stderr and exit status 2, with
no traceback: the message itself must name the file/line/key and say what to do.
"""


class UserError(Exception):
    """A problem with the user's input, reported as one line without a traceback."""


class ConfigError(UserError):
    """An unknown key, a wrong type or an out-of-range value in the configuration."""


class DataError(UserError):
    """A missing, empty or malformed data file."""


class RunDirError(UserError):
    """A run directory that is in the wrong state for the requested action."""
