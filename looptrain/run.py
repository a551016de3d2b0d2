"""The command line's run directory: the loop's (`engine.rundir`) plus the application's files.

    RUN/config.json     resolved configuration (data.data_dir absolute)
    RUN/vocab.txt       one token per line, <PAD> first (line number - 1 = id); text data only
    RUN/labels.txt      one label per line (line number - 1 = class id); for array data the
                        names stored with it, else the ids themselves
    RUN/data.json       example counts and fingerprints of the encoded train/val splits
    RUN/eval/           report.json, report.txt, confusion_matrix.png of the last evaluation
    RUN/logs/test       evaluation summaries

and, from the loop: fit.json, train.log, checkpoints/, best -> best.<step>/, .lock, logs/.
"""

from __future__ import annotations

import json
from pathlib import Path

from looptrain import config as config_lib
from looptrain.engine import rundir
from looptrain.errors import RunDirError
from looptrain.files import read_lines, write_lines, write_text_atomic


class RunDir(rundir.RunDir):
    """Paths and artifacts of one run directory of the command line."""

    def __init__(self, path: str | Path):
        super().__init__(path)
        self.config_file = self.path / "config.json"
        self.vocab_file = self.path / "vocab.txt"
        self.labels_file = self.path / "labels.txt"
        self.data_file = self.path / "data.json"
        self.eval = self.path / "eval"

    def check_exists(self) -> None:
        """Raises RunDirError unless this looks like a run directory (for evaluation)."""
        if not self.config_file.is_file():
            raise RunDirError(f"{self.path} is not a looptrain run directory (no config.json)")

    def initialize(self, config: config_lib.Config, vocab: list[str] | None, labels: list[str],
                   fingerprints: dict) -> None:
        """Creates the directory and writes config, vocabulary (None: array data has none), labels
        and data fingerprints."""
        self.path.mkdir(parents=True, exist_ok=True)
        if vocab is not None:
            write_lines(self.vocab_file, vocab)
        write_lines(self.labels_file, labels)
        write_text_atomic(self.data_file, json.dumps(fingerprints, indent=2) + "\n")
        self.save_config(config)

    def check_same_data(self, fingerprints: dict, data_dir: str) -> None:
        """Refuses to resume on other data than the run started with.

        Raises:
            RunDirError: a split's examples differ from those recorded in `data.json`.
        """
        try:
            saved = json.loads(self.data_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RunDirError(f"cannot read {self.data_file} ({exc}); the run directory is damaged") from None
        for split, info in fingerprints.items():
            if saved.get(split) != info:
                raise RunDirError(
                    f"--resume: the {split} split in {data_dir} differs from the data this run started "
                    f"with ({self.data_file}); resume with the original --data-dir")

    def save_config(self, config: config_lib.Config) -> None:
        text = json.dumps(config.to_dict(), indent=2, ensure_ascii=False) + "\n"
        write_text_atomic(self.config_file, text)

    def load_config(self) -> config_lib.Config:
        return config_lib.load_json(self.config_file)

    def load_vocab(self) -> list[str] | None:
        """The run's vocabulary, or None for a run on array data (it has no vocab.txt)."""
        if not self.vocab_file.exists() and self.labels_file.exists():
            return None
        return self._read(self.vocab_file)

    def load_labels(self) -> list[str]:
        return self._read(self.labels_file)

    def _read(self, path: Path) -> list[str]:
        try:
            return read_lines(path)
        except OSError as exc:
            raise RunDirError(f"cannot read {path}: {exc.strerror}; the run directory is damaged") from None
        except UnicodeDecodeError as exc:
            raise RunDirError(f"{path}: not valid UTF-8 (byte {exc.start}); the run directory is "
                              f"damaged (was the file cut short or edited?)") from None
