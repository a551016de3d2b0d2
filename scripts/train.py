"""Train a model: `python scripts/train.py [--config configs/textcnn.toml] [--run-dir runs/x] ...`.

See `--help`; the same as `looptrain train`; the logic lives in `looptrain.cli.train_main`.
"""

from looptrain.cli import train_entry

if __name__ == "__main__":
    train_entry()
