"""Train on N local workers, as a cluster launcher would (the same as `looptrain launch`):

    python scripts/launch_local.py --num-workers 2 [--grace-seconds 60] -- --config configs/tiny.toml \
        --run-dir runs/dist

Every worker runs `python -m looptrain train` with the arguments after `--` (plus
`--strategy multiworker` unless they name a strategy) and its own `TF_CONFIG`.
`looptrain.command.launch_main` parses, `looptrain.launch` does the work and explains how to do the
same on real hosts.
"""

import functools
import sys

from looptrain.cli import run_main
from looptrain.command import launch_main

main = functools.partial(launch_main, prog="launch_local.py")

if __name__ == "__main__":
    sys.exit(run_main(main))
