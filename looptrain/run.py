"""The run directory: its layout, its artifacts, and the guards that keep a run from being clobbered.

    RUN/config.json     resolved configuration (data.data_dir absolute)
    RUN/vocab.txt       one token per line, <PAD> first (line number - 1 = id); text data only
    RUN/labels.txt      one label per line (line number - 1 = class id); for array data the
                        names stored with it, else the ids themselves
    RUN/data.json       example counts and fingerprints of the encoded train/val splits
    RUN/train.log       time-stamped log lines of every session of the run (start, evals, stops)
    RUN/checkpoints/    ckpt-<step>.* and the `checkpoint` index (latest few)
    RUN/best            -> best.<step>/: best-<step>.* weights of the best validation accuracy and
                        best.json (a symlink, swapped atomically when a better model is found)
    RUN/.lock           held (flock) by the trainer running on this directory
    RUN/logs/train|val  TensorBoard event files (RUN/logs itself: the hparams record; logs/test:
                        evaluation summaries)
    RUN/eval/           report.json, report.txt, confusion_matrix.png of the last evaluation
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from looptrain import config as config_lib
from looptrain.errors import RunDirError
from looptrain.files import listing, read_lines, write_lines, write_text_atomic
from looptrain.lock import RunLock


# What a start writes before config.json (see `initialize`): a directory holding only these, the
# lock among them, is an unfinished start of looptrain's own that a new run may take over.
_START_FILES = {".lock", "vocab.txt", "labels.txt", "data.json"}



def run_identity(config: config_lib.Config, vocab: list[str] | None, labels: list[str]) -> str:
    """What the weights of a run mean: a digest of its model config, input encoding, vocabulary
    and labels. Checkpoints record it (a checkpoint restored by path must carry the same)."""
    meaning = {"model": config.to_dict()["model"], "seq_length": config.data.seq_length,
               "vocab": vocab, "labels": labels}
    return hashlib.sha256(json.dumps(meaning, ensure_ascii=False).encode()).hexdigest()


class RunDir:
    """Paths and artifacts of one run directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config_file = self.path / "config.json"
        self.vocab_file = self.path / "vocab.txt"
        self.labels_file = self.path / "labels.txt"
        self.data_file = self.path / "data.json"
        self.log_file = self.path / "train.log"
        self.checkpoints = self.path / "checkpoints"
        self.best = self.path / "best"
        self.logs = self.path / "logs"
        self.eval = self.path / "eval"

    def has_checkpoint(self) -> bool:
        return (self.checkpoints / "checkpoint").is_file() or any(self.checkpoints.glob("ckpt-*.index"))

    def check_location(self) -> None:
        """Refuses a run directory that cannot be a run's own: `/`, the current or home directory
        (which `--run-dir ""` or `.` name), a file, or a dangling symlink.

        Raises:
            RunDirError: naming the path and what to do.
        """
        path = self.path
        if path.is_symlink() and not path.exists():
            raise RunDirError(f"--run-dir {path} is a symlink to a missing directory; fix the link "
                              f"or choose another --run-dir")
        if path.exists() and not path.is_dir():
            raise RunDirError(f"--run-dir {path} is a file, not a directory; choose another "
                              f"--run-dir")
        resolved = path.resolve()
        for special, what in ((Path("/"), "the root directory"), (Path.cwd(), "the current directory"),
                              (Path.home(), "your home directory")):
            if resolved == special.resolve():
                raise RunDirError(f"--run-dir '{path}' is {what}; a run needs a directory of its own, "
                                  f"e.g. --run-dir runs/NAME")

    def check_new(self) -> None:
        """Refuses to start a fresh run where one already exists or where files of someone else's
        are (nothing is overwritten): the directory must be missing, empty, or hold only an
        unfinished start of looptrain's own (its lock file and run files, no config.json).

        Raises:
            RunDirError: the directory holds a run's config or checkpoints, or other files.
        """
        self.check_location()
        if self.has_checkpoint():
            raise RunDirError(f"{self.path} already holds a run with checkpoints: continue it with "
                              f"--resume, or choose another --run-dir")
        if self.config_file.exists():
            raise RunDirError(f"{self.path} already holds a run that stopped before its first checkpoint: "
                              f"continue it with --resume, or choose another --run-dir")
        if self.path.is_dir():
            names = {p.name for p in self.path.iterdir()}
            ours = ".lock" in names and names <= _START_FILES
            if names and not ours:
                raise RunDirError(f"{self.path} is not empty and is not a looptrain run (it holds "
                                  f"{listing(names)}); choose a new or empty --run-dir")

    def check_resumable(self) -> None:
        """Raises RunDirError unless there is a run (its config) to resume.

        A run killed before its first checkpoint was complete resumes from step 0.
        """
        self.check_location()
        if not self.path.is_dir():
            raise RunDirError(f"--resume: run directory {self.path} does not exist")
        if not self.config_file.is_file():
            raise RunDirError(f"--resume: nothing to resume in {self.path} (no config.json); start it "
                              f"without --resume")

    def lock(self) -> RunLock:
        """The exclusive lock a trainer holds on this directory while it runs (creates the directory)."""
        return RunLock(self.path)

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
