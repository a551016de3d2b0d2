"""Train on N local workers, as a cluster launcher would:

    python scripts/launch_local.py --num-workers 2 [--grace-seconds 60] -- --config configs/tiny.toml \
        --run-dir runs/dist

Every worker runs `scripts/train.py` with the arguments after `--` (plus `--strategy multiworker`
unless they name a strategy) and its own `TF_CONFIG`. `looptrain.launch` does the work and explains
how to do the same on real hosts.
"""

import sys
from typing import Sequence

from looptrain import launch
from looptrain.cli import Parser, run_main
from looptrain.errors import UserError

EXAMPLE = "launch_local.py --num-workers 2 -- --config configs/tiny.toml --run-dir runs/dist"


def parser() -> Parser:
    p = Parser(prog="launch_local.py", usage="%(prog)s --num-workers N [--grace-seconds S] -- TRAIN_ARGS...",
                description="Run scripts/train.py as N workers on localhost, each with its own TF_CONFIG.")
    p.add_argument("--num-workers", type=int, required=True, metavar="N",
                   help="how many workers (worker 0 is the chief)")
    p.add_argument("--grace-seconds", type=float, default=60, metavar="S",
                   help="seconds stopped workers get to checkpoint before SIGKILL (default 60)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Split at the first "--" ourselves: argparse's handling of later "--" varies between versions.
    cut = argv.index("--") if "--" in argv else len(argv)
    args, unknown = parser().parse_known_args(argv[:cut])
    if unknown:
        raise UserError(f"unknown arguments {' '.join(unknown)}; give the train.py arguments after --, "
                        f"e.g. {EXAMPLE}")
    if args.num_workers < 1:
        raise UserError(f"--num-workers must be at least 1, got {args.num_workers}")
    if args.grace_seconds < 0:
        raise UserError(f"--grace-seconds must be at least 0, got {args.grace_seconds:g}")
    train_args = argv[cut + 1:]
    if not train_args:
        raise UserError(f"give the train.py arguments after --, e.g. {EXAMPLE}")
    return launch.launch(args.num_workers, launch.worker_command(train_args),
                         grace_seconds=args.grace_seconds)


if __name__ == "__main__":
    sys.exit(run_main(main))
