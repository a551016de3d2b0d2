"""Every bad input of the error table (docs/fault-tolerance.md): exit status 2, one line naming the culprit, no
traceback, and nothing lost (an existing run directory is left byte-for-byte as it was)."""

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, snapshot, write_data

from looptrain.cli import evaluate_main, export_main, predict_main, run_main, train_main

GOOD = "体育\t比赛进球\n财经\t股票基金\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, corpus_dir):
    """A trained tiny run, a second one with another architecture, and a run with no checkpoint."""
    base = tmp_path_factory.mktemp("runs")
    tiny = ["--config", str(ROOT / "configs" / "tiny.toml"), "--data-dir", str(corpus_dir),
            "--max-steps", "5", "--eval-every", "5"]
    assert run_main(train_main, [*tiny, "--run-dir", str(base / "run")]) == 0
    assert run_main(train_main, [*tiny, "--run-dir", str(base / "other"),
                                 "--set", "model.embedding_dim=4"]) == 0
    (base / "empty").mkdir()
    (base / "empty" / "config.json").write_bytes((base / "run" / "config.json").read_bytes())
    return base


def _data(tmp_path, **files):
    return ["--data-dir", str(write_data(tmp_path / "d", **files))]


def _lines(tmp_path):
    (tmp_path / "texts.txt").write_text("比赛进球\n股票基金\n\n芯片\n", encoding="utf-8")
    return tmp_path / "texts.txt"


def _train(tmp_path, *argv):
    """train.py on the tiny config into `tmp_path/new` (a later --run-dir in `argv` wins)."""
    return train_main, ["--config", str(ROOT / "configs" / "tiny.toml"), "--run-dir",
                        str(tmp_path / "new"), *argv]


# (case, how to provoke it, the message). `{d}` = the data dir, `{r}` = the runs dir; the message is
# a regular expression after formatting. The "When something is wrong" table of
# docs/fault-tolerance.md shows these.
CASES = {
    "data line without a tab": (
        lambda t, r: _train(t, *_data(t, train=GOOD + "财经股票\n")),
        "{d}/train.txt:3: line has no tab; every line must be label<TAB>text"),
    "unknown label in val/test": (
        lambda t, r: _train(t, *_data(t, train=GOOD, val="科技\t芯片\n")),
        "{d}/val.txt:1: label '科技' does not occur in the training split \\(known: 体育, 财经\\)"),
    "empty text": (
        lambda t, r: _train(t, *_data(t, train=GOOD + "体育\t  \n")),
        "{d}/train.txt:3: empty text after label '体育'"),
    "bytes that are not UTF-8": (
        lambda t, r: _train(t, *_data(t, train=GOOD, val=GOOD + "体育\t\xff\n")),
        None),  # re-written as raw bytes below
    "missing data file": (
        lambda t, r: (train_main, ["--run-dir", str(t / "new"), "--data-dir", str(t / "nowhere")]),
        "data directory {t}/nowhere does not exist \\(pass --data-dir DIR\\)"),
    "empty data file": (
        lambda t, r: _train(t, *_data(t, train="")),
        "{d}/train.txt is empty: expected one label<TAB>text example per line"),
    "missing config file": (
        lambda t, r: (train_main, ["--config", str(t / "nope.toml"), "--run-dir", str(t / "new")]),
        "config file {t}/nope.toml does not exist \\(see configs/ for examples\\)"),
    "--num-devices without --strategy mirrored": (
        lambda t, r: _train(t, "--num-devices", "2"),
        "train.num_devices = 2 needs train.strategy = mirrored \\(--strategy mirrored --num-devices 2\\)"),
    "--strategy multiworker without TF_CONFIG": (
        lambda t, r: _train(t, "--strategy", "multiworker"),
        "train.strategy = multiworker needs the TF_CONFIG environment variable \\(cluster and task "
        "index\\); start the workers with looptrain launch or set TF_CONFIG on each host"),
    "unknown config key": (
        lambda t, r: _train(t, "--set", "train.bach_size=8"),
        "--set train.bach_size=8: unknown config key 'train.bach_size'; did you mean "
        "'train.batch_size'\\?"),
    "invalid value": (
        lambda t, r: _train(t, "--batch-size", "-5"),
        "--batch-size: 'train.batch_size' must be >= 1, got -5"),
    "--resume with nothing to resume": (
        lambda t, r: (train_main, ["--run-dir", str(t / "nothing"), "--resume"]),
        "--resume: run directory {t}/nothing does not exist"),
    "--resume changing the architecture": (
        lambda t, r: (train_main, ["--run-dir", str(r / "run"), "--resume",
                                   "--set", "model.embedding_dim=77"]),
        "--set: cannot change 'model.embedding_dim' of a resumed run \\(saved 8, given 77\\); start a "
        "new --run-dir to train with a different value"),
    "a new run in an existing run directory": (
        lambda t, r: _train(t.parent, "--run-dir", str(r / "run")),
        "{r}/run already holds a run with checkpoints: continue it with \\S+ scripts/train.py "
        "--run-dir {r}/run --resume, or choose another --run-dir"),
    "evaluate a run directory that does not exist": (
        lambda t, r: (evaluate_main, ["--run-dir", str(t / "missing")]),
        "{t}/missing is not a looptrain run directory \\(no config.json\\)"),
    "evaluate a run with no checkpoint": (
        lambda t, r: (evaluate_main, ["--run-dir", str(r / "empty")]),
        "{r}/empty: no best checkpoint in {r}/empty/best \\(no evaluation has finished yet; try "
        "--checkpoint latest\\)"),
    "predict with a run directory that does not exist": (
        lambda t, r: (predict_main, ["--run-dir", str(t / "missing"), "体育比赛"]),
        "{t}/missing is not a looptrain run directory \\(no config.json\\)"),
    "predict with a run that has no checkpoint": (
        lambda t, r: (predict_main, ["--run-dir", str(r / "empty"), "体育比赛"]),
        "{r}/empty: no best checkpoint in {r}/empty/best \\(no evaluation has finished yet; try "
        "--checkpoint latest\\)"),
    "an empty line given to predict": (
        lambda t, r: (predict_main, ["--run-dir", str(r / "run"), "--file", str(_lines(t))]),
        "{t}/texts.txt:3: empty text; give one non-empty text per line"),
    "evaluate a checkpoint of another run": (
        lambda t, r: (evaluate_main, ["--run-dir", str(r / "run"), "--checkpoint",
                                      str(r / "other" / "checkpoints" / "ckpt-5")]),
        "checkpoint {r}/other/checkpoints/ckpt-5 belongs to another run \\(its task, hyper-parameters, "
        "vocabulary or labels differ from this run's\\); use one of this run's checkpoints"),
    "a new run in a directory holding other files": (
        lambda t, r: _train(t, "--run-dir", str(_notes(t))),
        "{t}/mine is not empty and is not a looptrain run \\(it holds labels.txt, notes.txt\\); "
        "choose a new or empty --run-dir"),
    "--run-dir naming the current directory": (
        lambda t, r: _train(t, "--run-dir", ""),
        "--run-dir '.' is the current directory; a run needs a directory of its own, e.g. "
        "--run-dir runs/NAME"),
    "--run-dir naming a file": (
        lambda t, r: _train(t, "--run-dir", str(_notes(t) / "notes.txt")),
        "--run-dir {t}/mine/notes.txt is a file, not a directory; choose another --run-dir"),
    "a byte-order mark inside a data file": (
        lambda t, r: _train(t, *_data(t, train=GOOD + "\ufeff体育\t比赛\n")),
        "{d}/train.txt:3: a byte-order mark \\(U\\+FEFF\\) inside the file, where two files were "
        "probably joined with cat; remove it \\(only the first line may start with one\\)"),
    "--resume with a saved config missing a key": (
        lambda t, r: (train_main, ["--run-dir", str(_without_seed(t, r)), "--resume"]),
        "{t}/copy/config.json: no 'train.seed'; a run's saved config must hold every key \\(was it "
        "edited by hand or written by another looptrain version\\?\\); add 'train.seed' with the "
        "value the run was started with, or start a new --run-dir"),
    # Sizes and models that cannot run on the data: refused before anything is allocated.
    "--seed beyond 2**31 - 1": (
        lambda t, r: _train(t, "--seed", str(2**32)),
        "--seed: 'train.seed' must be <= 2147483647, got 4294967296"),
    "a sequence length beyond 100,000": (
        lambda t, r: _train(t, "--set", "data.seq_length=100000000"),
        "--set: 'data.seq_length' must be <= 100000, got 100000000"),
    "more devices than any host has": (
        lambda t, r: _train(t, "--strategy", "mirrored", "--num-devices", "5000"),
        "--num-devices: 'train.num_devices' must be <= 64, got 5000"),
    "data.seq_length shorter than the convolution": (
        lambda t, r: _train(t, *_data(t, train=GOOD), "--set", "data.seq_length=2"),
        "'model.kernel_size' is 3, wider than 'data.seq_length' 2: the convolution has no position "
        "to slide to; lower model.kernel_size or raise data.seq_length"),
    # Data files that are not what they seem.
    "a named pipe as a data file": (
        lambda t, r: _train(t, "--data-dir", str(_fifo(t))),
        "{t}/pipe/cnews.train.txt is not a regular file; data files must be plain files"),
    "a symlink loop as --data-dir": (
        lambda t, r: _train(t, "--data-dir", str(_loop(t))),
        "--data-dir {t}/a: a loop of symbolic links; fix the links or give the directory itself"),
    "a .npy file named train.npz": (
        lambda t, r: _train(t, "--data-dir", str(_arrays(t, npy=True))),
        "{t}/arrays/train.npz: one array in .npy format, not an .npz archive of 'x' and 'y'; save it "
        "with np.savez\(path, x=..., y=...\)"),
    "array labels beyond 10,000 classes": (
        lambda t, r: _train(t, "--data-dir", str(_arrays(t, y_max=2 * 10**7))),
        "{t}/arrays/train.npz: y\[3\] = 20000000; class ids must be below 10,000 \(0..C-1 for C "
        "classes\)"),
    "arrays with zero features": (
        lambda t, r: _train(t, "--data-dir", str(_arrays(t, features=0))),
        "{t}/arrays/train.npz: 'x' has shape \[4, 0\]; expected \[examples, features...\] with at "
        "least one example and one feature"),
    # Run directories that cannot be written, or are damaged.
    "--run-dir under a file": (
        lambda t, r: _train(t, "--run-dir", str(_notes(t) / "notes.txt" / "run")),
        "--run-dir {t}/mine/notes.txt/run: {t}/mine/notes.txt is a file, not a directory; choose "
        "another --run-dir"),
    "--run-dir with a name too long": (
        lambda t, r: _train(t, "--run-dir", str(t / ("x" * 300))),
        "{t}/x{{300}}: file name too long; choose a shorter name"),
    "--resume after the checkpoints were deleted": (
        lambda t, r: (train_main, ["--run-dir", str(_copy(t, r, "checkpoints")), "--resume"]),
        "{t}/copy/checkpoints holds no complete checkpoint, but the run has a best copy "
        "\({t}/copy/best.5\): its checkpoints were deleted or damaged, and starting again from step "
        "0 would replace that copy; start a new run directory \(the best copy stays where it is\)"),
    "a best link pointing nowhere": (
        lambda t, r: (evaluate_main, ["--run-dir", str(_copy(t, r, "best.5"))]),
        "{t}/copy/best points to best.5, which does not exist \(the run directory is damaged\); try "
        "--checkpoint latest"),
    "a run file cut short": (
        lambda t, r: (predict_main, ["--run-dir", str(_copy(t, r, cut="vocab.txt")), "体育"]),
        "{t}/copy/vocab.txt: not valid UTF-8 \(byte \d+\); the run directory is damaged \(was the "
        "file cut short or edited\?\)"),
    "--checkpoint naming a directory": (
        lambda t, r: (evaluate_main, ["--run-dir", str(r / "run"), "--checkpoint",
                                      str(r / "run" / "checkpoints")]),
        "--checkpoint {r}/run/checkpoints is a directory; give a checkpoint's path prefix \(e.g. "
        "{r}/run/checkpoints/ckpt-100\), best or latest"),
    "export --out naming a file": (
        lambda t, r: (export_main, ["--run-dir", str(r / "run"), "--out", str(_notes(t) / "notes.txt")]),
        "--out {t}/mine/notes.txt is a file, not a directory; choose another directory"),
}


def _fifo(tmp_path):
    os.mkfifo(write_data(tmp_path / "pipe", train=GOOD) / "cnews.train.txt")
    (tmp_path / "pipe" / "train.txt").unlink()
    return tmp_path / "pipe"


def _loop(tmp_path):
    os.symlink(tmp_path / "b", tmp_path / "a")
    os.symlink(tmp_path / "a", tmp_path / "b")
    return tmp_path / "a"


def _arrays(tmp_path, *, npy=False, y_max=1, features=2):
    """An array data directory whose train.npz is broken as asked."""
    directory = tmp_path / "arrays"
    directory.mkdir()
    y = np.array([0, 1, 0, y_max])
    for split in ("train", "val", "test"):
        if npy:
            with open(directory / f"{split}.npz", "wb") as f:
                np.save(f, np.zeros((4, 2)))
        else:
            np.savez(directory / f"{split}.npz", x=np.zeros((4, features)), y=y)
    return directory


def _copy(tmp_path, runs, remove=None, *, cut=None):
    """A copy of the trained run with `remove` deleted or the file `cut` cut inside a character."""
    copy = shutil.copytree(runs / "run", tmp_path / "copy", symlinks=True)
    if remove:
        shutil.rmtree(copy / remove)
    if cut:
        (copy / cut).write_bytes((copy / cut).read_bytes()[:-2])
    return copy


def _notes(tmp_path):
    """A directory of the user's own: their notes and a labels.txt that a run must not overwrite."""
    (tmp_path / "mine").mkdir(exist_ok=True)
    (tmp_path / "mine" / "notes.txt").write_text("mine\n")
    (tmp_path / "mine" / "labels.txt").write_text("mine too\n")
    return tmp_path / "mine"


def _without_seed(tmp_path, runs):
    """A copy of the trained run whose config.json lost its train.seed (a hand edit)."""
    import json

    copy = shutil.copytree(runs / "run", tmp_path / "copy", symlinks=True)
    config = json.loads((copy / "config.json").read_text())
    del config["train"]["seed"]
    (copy / "config.json").write_text(json.dumps(config))
    return copy


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_and_loses_nothing(case, tmp_path, runs, capsys):
    provoke, message = CASES[case]
    main, argv = provoke(tmp_path, runs)
    if case == "bytes that are not UTF-8":
        (tmp_path / "d" / "val.txt").write_bytes(GOOD.encode() + "体育\t".encode() + b"\xff\xfe\n")
        message = "{d}/val.txt:3: not valid UTF-8 \\(byte 7\\); re-encode the file as UTF-8"
    before = snapshot(runs)
    capsys.readouterr()

    assert run_main(main, argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1
    expected = message.format(d=tmp_path / "d", t=tmp_path, r=runs)
    assert re.fullmatch(f"error: {expected}\n", err), err
    assert snapshot(runs) == before
    assert not (tmp_path / "new").exists()
    if (tmp_path / "mine").exists():  # the user's own files are untouched and nothing was added
        assert snapshot(tmp_path / "mine") == {Path("labels.txt"): b"mine too\n",
                                               Path("notes.txt"): b"mine\n"}


def test_the_error_table_lists_every_case():
    page = (ROOT / "docs" / "fault-tolerance.md").read_text(encoding="utf-8")
    table = page.split("## When something is wrong", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")}
    assert set(CASES) <= rows, set(CASES) - rows


def test_paths_in_messages_are_the_ones_given(tmp_path):
    assert Path(tmp_path).is_absolute()  # messages above are matched against absolute paths
