"""Shared fixtures: a small generated corpus and the tiny config pointed at it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The encoded-text cache of this session's runs (and of the processes they start), not the user's.
import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

os.environ["LOOPTRAIN_CACHE"] = tempfile.mkdtemp(prefix="looptrain-test-cache-")
atexit.register(shutil.rmtree, os.environ["LOOPTRAIN_CACHE"], ignore_errors=True)

import pytest  # noqa: E402

from looptrain import config as config_lib  # noqa: E402
from looptrain.data import synthetic  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# Small, and denser in keywords than the default corpus, so the tiny model learns within a few
# dozen steps while every code path (vocab, labels, shuffling, partial batches) is exercised.
SMALL_SPEC = synthetic.SyntheticSpec(seed=11, num_train=250, num_val=60, num_test=60,
                                     num_topic_chars=60, keywords_per_category=6, shared_keywords=1,
                                     keyword_rate=0.15, own_keyword_prob=0.9, median_length=120,
                                     label_noise=0.0)


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    return synthetic.generate(tmp_path_factory.mktemp("data") / "small", SMALL_SPEC)


@pytest.fixture()
def tiny_config(corpus_dir) -> config_lib.Config:
    """configs/tiny.toml on the small corpus (the default config with a few fields changed)."""
    return config_lib.load_toml(ROOT / "configs" / "tiny.toml").replace(
        {"data.data_dir": str(corpus_dir)})


@pytest.fixture()
def quiet_display():
    """A display whose output is captured instead of printed."""
    from rich.console import Console

    from looptrain.callbacks.progress import Display

    return Display(Console(file=open(os.devnull, "w"), force_terminal=False))


def snapshot(directory: Path) -> dict[Path, bytes]:
    """Every file under `directory` with its bytes, to prove an action left it untouched."""
    return {p.relative_to(directory): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def write_data(directory: Path, train: str, val: str | None = None, test: str | None = None) -> Path:
    """Writes a data directory; val/test default to the train content."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in (("train", train), ("val", val or train), ("test", test or train)):
        (directory / f"{name}.txt").write_text(content, encoding="utf-8")
    return directory


def assert_same_variables(checkpoint: str, reference: str) -> list[str]:
    """Asserts every variable of two checkpoints bit-for-bit equal; returns the names compared."""
    import numpy as np
    import tensorflow as tf

    names = [n for n, _ in tf.train.list_variables(reference)
             if n.endswith("VARIABLE_VALUE") and not n.startswith("save_counter")]
    assert names == [n for n, _ in tf.train.list_variables(checkpoint)
                     if n.endswith("VARIABLE_VALUE") and not n.startswith("save_counter")]
    for name in names:
        np.testing.assert_array_equal(tf.train.load_variable(checkpoint, name),
                                      tf.train.load_variable(reference, name), err_msg=name)
    return names


@pytest.fixture(scope="session")
def trained_run(corpus_dir, tmp_path_factory) -> Path:
    """One tiny run (60 steps, histograms every 20) shared by the evaluate/predict/export tests.

    Tests must not change it; those that write into a run directory copy it first.
    """
    from rich.console import Console

    from looptrain.app.experiment import train_and_evaluate
    from looptrain.callbacks.progress import Display

    config = config_lib.load_toml(ROOT / "configs" / "tiny.toml").replace(
        {"data.data_dir": str(corpus_dir), "train.histogram_every": 20})
    run = tmp_path_factory.mktemp("trained") / "run"
    console = Console(file=open(os.devnull, "w"), force_terminal=False)
    train_and_evaluate(config, run, display=Display(console))
    return run


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory) -> Path:
    """A tiny generated image set (12x12, 8 classes) as train/val/test .npz array data."""
    from looptrain.data import images

    spec = images.ImageSpec(seed=5, num_train=120, num_val=40, num_test=40, size=12)
    return images.generate(tmp_path_factory.mktemp("data") / "images", spec)


@pytest.fixture(scope="session")
def tiny_run(corpus_dir, tmp_path_factory) -> Path:
    """configs/tiny.toml trained once (60 steps): the uninterrupted reference for resume tests.

    Tests must not change it.
    """
    from rich.console import Console

    from looptrain.app.experiment import train_and_evaluate
    from looptrain.callbacks.progress import Display

    config = config_lib.load_toml(ROOT / "configs" / "tiny.toml").replace(
        {"data.data_dir": str(corpus_dir)})
    run = tmp_path_factory.mktemp("tiny") / "run"
    train_and_evaluate(config, run, display=Display(Console(file=open(os.devnull, "w"))))
    return run


def given_task(model, optimizer, *, loss_fn=None, num_micro_batches=1):
    """The built-in classifier's step around a model, optimizer and loss a test made itself."""
    from looptrain.tasks.classification import Classification
    from looptrain.tasks.losses import cross_entropy
    from looptrain.task import Task

    class Given(Classification):
        def __init__(self, model, optimizer, loss_fn, num_micro_batches):
            Task.__init__(self)
            self.model, self.optimizer = model, optimizer
            self.loss_fn = loss_fn or cross_entropy
            self.num_micro_batches = num_micro_batches

        def build(self):
            self.optimizer.build(self.model.trainable_variables)

    return Given(model, optimizer, loss_fn, num_micro_batches)


def make_call(task, dataset, *, skip_nonfinite=False, jit_compile=False):
    """`task` built and a `TrainCall` of its step over `dataset`: `(call, iterator)`."""
    import tensorflow as tf

    from looptrain.engine.call import TrainCall

    task.build()
    iterator = iter(dataset)
    call = TrainCall(task, iterator, step=tf.Variable(0, dtype=tf.int64),
                     skip_nonfinite=skip_nonfinite, jit_compile=jit_compile)
    return call, iterator


def step_losses(call, iterator, num_steps):
    """The loss of each of `num_steps` steps, one compiled call per step."""
    return [call(iterator, 1, log=True).logs["train/loss"] for _ in range(num_steps)]


def untracked(model) -> dict:
    """What `tf.train.Checkpoint` does not reach through a task holding `model` (the loop saves it
    explicitly): `{key: variable}`."""
    import tensorflow as tf

    from looptrain.task import task_variables_untracked

    holder = tf.Module()
    holder.model = model
    return task_variables_untracked(holder)


def shown_python(cwd: Path = ROOT) -> str:
    """This Python as a hint of a command run in `cwd` names it (looptrain.app.hints): relative
    when it is below `cwd` (`.venv/bin/python` in a checkout), else its whole path."""
    relative = os.path.relpath(sys.executable, cwd)
    return sys.executable if relative.startswith("..") else relative
