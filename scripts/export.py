"""Export a run: `python scripts/export.py --run-dir runs/default --out DIR [--checkpoint best|latest|PATH]`.

Writes a SavedModel whose `serving_default` signature classifies raw UTF-8 strings. See `--help`;
the same as `looptrain export`; the logic lives in `looptrain.cli.export_main`.
"""

from looptrain.cli import export_entry

if __name__ == "__main__":
    export_entry()
