"""train.py --fast-dev-run: train, evaluate, checkpoint, resume and an exactness check in a scratch
directory, for a user task and for the built-in classifier; nothing is left behind."""

import os

from conftest import ROOT
from user_tasks import regression_file

from looptrain.cli import run_main, train_main

PARTS = ("train       steps 1-2:", "evaluate    step 2: val/", "checkpoint  ",
         "resume      from step 2 to step 4",
         "best copy   best-", "exactness   the resumed run equals the uninterrupted one bit for bit")


def test_a_user_task_is_checked_end_to_end_and_nothing_is_left(tmp_path, capsys):
    task = f"{regression_file(tmp_path / 'mine')}:Regression"
    argv = ["--task", task, "--run-dir", str(tmp_path / "never"), "--fast-dev-run",
            "--set", "task.width=8", "--set", "train.ema_decay=0.9"]
    assert run_main(train_main, argv) == 0
    out = capsys.readouterr().out
    assert "fast dev run: OK" in out
    for part in PARTS:
        assert part in out, part
    assert not (tmp_path / "never").exists()
    scratch = out.split("checkpoint  ", 1)[1].split("/run/checkpoints", 1)[0]
    assert "looptrain-fast-dev-run-" in scratch and not os.path.exists(scratch)


def test_the_builtin_classifier_too(corpus_dir, tmp_path, capsys):
    argv = ["--config", str(ROOT / "configs" / "tiny.toml"), "--data-dir", str(corpus_dir),
            "--run-dir", str(tmp_path / "never"), "--fast-dev-run"]
    assert run_main(train_main, argv) == 0
    out = capsys.readouterr().out
    assert "val/accuracy" in out and "train/accuracy" in out
    for part in PARTS:
        assert part in out, part


def test_a_task_whose_state_escapes_the_checkpoint_is_caught(tmp_path, capsys):
    path = regression_file(tmp_path / "mine")
    source = path.read_text().replace(
        "loss = tf.reduce_mean(tf.square(self.model(x, training=True)[:, 0] - y))",
        "loss = tf.reduce_mean(tf.square(self.model(x + tf.random.uniform(tf.shape(x)), "
        "training=True)[:, 0] - y))")
    path.write_text(source)
    assert run_main(train_main, ["--task", f"{path}:Regression", "--fast-dev-run"]) == 2
    err = capsys.readouterr().err
    assert "error: --fast-dev-run: the resumed run differs from the uninterrupted one" in err
    assert "tf.random.uniform" in err
