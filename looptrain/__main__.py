"""`python -m looptrain COMMAND ...`: the `looptrain` command (see `looptrain.command`)."""

from looptrain.command import entry

entry()
