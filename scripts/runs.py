"""List the runs under a directory: `python scripts/runs.py [runs]` (`make runs`).

See `looptrain.app.runs` for the columns and how each run's state is read from its files.
"""

import sys

from looptrain.app.runs import main

if __name__ == "__main__":
    sys.exit(main())
