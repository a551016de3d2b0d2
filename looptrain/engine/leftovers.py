"""What an interrupted save leaves in a run directory, and where the best copy is.

A kill or a full disk in the middle of a save leaves TensorFlow's temporary files, a data file
without its index, or a `best.<step>` directory the `best` link does not point to yet. The trainer
that takes the run's lock removes them before its checkpoint manager lists the directory (it must
not take a leftover for a checkpoint); readers never do.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from looptrain.files import remove_stale_temps


def remove_leftovers(run_path: Path) -> list[Path]:
    """Removes what an interrupted save (a kill, a full disk) left in a run directory; returns it.

    Only the trainer holding the run's lock calls this: TensorFlow's `ckpt-<n>_temp` directories
    and `*.tempstate*` files, data files whose index was never written, `checkpoint.tmp*` index
    drafts, `best.<step>` directories that `best` does not point to, and looptrain's own temporary
    files of a process that is gone (`files.remove_stale_temps`).
    """
    run_path, removed = Path(run_path), []
    checkpoints = run_path / "checkpoints"
    found = [*checkpoints.glob("*_temp*"), *checkpoints.glob("*.tempstate*"),
             *checkpoints.glob("checkpoint.tmp*"),
             *(p for p in checkpoints.glob("ckpt-*.data-*")
               if not p.with_name(p.name.split(".data-")[0] + ".index").exists())]
    current = best_copy(run_path)
    if current is not None or not (run_path / "best").is_symlink():  # a dangling link: keep all
        found += [p for p in run_path.glob("best.*") if re.fullmatch(r"best\.\d+", p.name)
                  and p.is_dir() and not p.is_symlink() and p != current]
    found += [p for p in [run_path / ".best.tmp"] if p.is_symlink()]
    for path in sorted(set(found)):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        removed.append(path)
    return removed + remove_stale_temps(run_path)


def best_copy(run_path: Path) -> Path | None:
    """The directory `RUN/best` points to (or `RUN/best` itself, written by looptrain 0.1), if it
    exists."""
    best = Path(run_path) / "best"
    if best.is_symlink():
        target = best.parent / os.readlink(best)
        return target if target.is_dir() else None
    return best if best.is_dir() else None
