"""Predict labels: `python scripts/predict.py --run-dir RUN [TEXT ...] [--file F] [--top-k K] [--json]`.

Texts come from the arguments, from --file, or from standard input, one per line. See `--help`; the
logic lives in `looptrain.cli.predict_main`.
"""

from looptrain.cli import predict_entry

if __name__ == "__main__":
    predict_entry()
