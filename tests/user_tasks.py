"""A user's task defined outside the package, for the tests of the loop's extras: a copy of
`examples/regression.py` in a temporary directory, imported by file path as `--task` does."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from conftest import ROOT


def regression_file(directory: Path) -> Path:
    """`directory/my_regression.py`, a copy of examples/regression.py."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "my_regression.py"
    shutil.copy(ROOT / "examples" / "regression.py", path)
    return path


def regression_class(directory: Path):
    """The `Regression` task class of a copy in `directory`, imported from its file."""
    from looptrain.user_code import import_attr

    return import_attr(f"{regression_file(directory)}:Regression", "test")


def quiet():
    """A display that prints nothing."""
    from rich.console import Console

    from looptrain.callbacks import Display

    return Display(Console(file=open(os.devnull, "w")))
