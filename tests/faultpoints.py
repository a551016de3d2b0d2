"""Fault injection for the tests: runs a looptrain script in this process and, at the N-th change
it makes to the file system under a directory, SIGKILLs itself (or from then on lets no file grow
past a size, as a full disk would).

    python tests/faultpoints.py --under DIR [--match TEXT]... --at N [--fsize BYTES] -- SCRIPT ARGS

SCRIPT is train, evaluate, predict or export; `--match` counts only paths that contain TEXT.

A change is whatever Python or TensorFlow's Python layer does to a path under DIR: a file opened
for writing, a rename, link, symlink, removal or new directory (Python's audit events), TensorFlow's
file functions (`file_io`: atomic writes, renames, deletions) and its checkpoint ops (`SaveV2`
writes a checkpoint's temporary files, `MergeV2Checkpoints` its final ones). Each is counted before
it happens, so "kill at N" leaves the state after N - 1 changes (a TensorFlow function that calls
another counts once). Every change is logged on stderr
as `faultpoints: N op path`; a run that ends before change N says `faultpoints: done after M`.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import sys
from pathlib import Path

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
AUDITED = {"os.rename", "os.link", "os.symlink", "os.remove", "os.rmdir", "os.mkdir",
           "shutil.rmtree", "os.truncate"}
TF_FILE_FUNCTIONS = ("write_string_to_file", "rename", "rename_v2", "delete_file", "delete_file_v2",
                     "delete_recursively", "delete_recursively_v2", "recursive_create_dir",
                     "recursive_create_dir_v2", "create_dir", "create_dir_v2", "copy", "copy_v2")


class Injector:
    def __init__(self, under: str, at: int, fsize: int | None, match: list[str]):
        self.under, self.at, self.fsize, self.count = os.path.abspath(under), at, fsize, 0
        self.match, self.depth = match, 0

    def event(self, op: str, *paths) -> None:
        paths = [os.path.abspath(os.fsdecode(p)) for p in paths if isinstance(p, (str, bytes, os.PathLike))]
        if not any(p == self.under or p.startswith(self.under + os.sep) for p in paths):
            return
        if self.match and not any(m in p for m in self.match for p in paths):
            return
        self.count += 1
        print(f"faultpoints: {self.count} {op} {paths[-1]}", file=sys.stderr, flush=True)
        if self.count == self.at:
            if self.fsize is None:
                os.kill(os.getpid(), signal.SIGKILL)
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.fsize, resource.getrlimit(
                resource.RLIMIT_FSIZE)[1]))

    def audit(self, name: str, args: tuple) -> None:
        if name == "open":
            path, mode, flags = args
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & WRITE_FLAGS)
            if writes:
                self.event("open", path)
        elif name in AUDITED:
            self.event(name, *args[:2])

    def install(self) -> None:
        sys.addaudithook(self.audit)
        from tensorflow.python.lib.io import file_io
        from tensorflow.python.ops import gen_io_ops, io_ops

        for name in TF_FILE_FUNCTIONS:
            if hasattr(file_io, name):
                setattr(file_io, name, self._wrap(getattr(file_io, name), f"tf.{name}"))
        io_ops.save_v2 = self._wrap(io_ops.save_v2, "tf.SaveV2")
        gen_io_ops.merge_v2_checkpoints = self._wrap(gen_io_ops.merge_v2_checkpoints,
                                                     "tf.MergeV2Checkpoints", argument=1)

    def _wrap(self, function, op: str, argument: int = 0):
        def wrapper(*args, **kwargs):
            if self.depth == 0:
                path = args[argument] if len(args) > argument else next(iter(kwargs.values()), None)
                if hasattr(path, "numpy"):
                    path = path.numpy()
                    path = path.reshape(-1)[0] if hasattr(path, "reshape") else path
                self.event(op, path)
            self.depth += 1
            try:
                return function(*args, **kwargs)
            finally:
                self.depth -= 1
        return wrapper


def main() -> int:
    cut = sys.argv.index("--")
    parser = argparse.ArgumentParser()
    parser.add_argument("--under", required=True)
    parser.add_argument("--at", type=int, required=True)
    parser.add_argument("--fsize", type=int)
    parser.add_argument("--match", action="append", default=[])
    args = parser.parse_args(sys.argv[1:cut])
    script, argv = sys.argv[cut + 1], sys.argv[cut + 2:]
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from looptrain import cli

    injector = Injector(args.under, args.at, args.fsize, args.match)
    injector.install()
    status = cli.run_main(getattr(cli, f"{script}_main"), argv)
    print(f"faultpoints: done after {injector.count}", file=sys.stderr, flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
