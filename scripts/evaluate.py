"""Evaluate a run: `python scripts/evaluate.py --run-dir runs/default [--checkpoint best|latest|PATH]`.

See `--help`; the same as `looptrain evaluate`; the logic lives in `looptrain.cli.evaluate_main`.
"""

from looptrain.cli import evaluate_entry

if __name__ == "__main__":
    evaluate_entry()
