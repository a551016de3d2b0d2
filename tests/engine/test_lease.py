"""engine.lease: a reader's hard links keep a checkpoint readable while a trainer prunes it."""

import errno
import os
import shutil
import subprocess
import sys

import pytest
import tensorflow as tf

from looptrain.app.trained import load_trained
from looptrain.engine import checkpoint as checkpoint_lib
from looptrain.engine.lease import READERS, checkpoint_files, lease
from looptrain.files import temp_prefix, temp_target
from looptrain.run import RunDir


@pytest.fixture()
def run(trained_run, tmp_path):
    return shutil.copytree(trained_run, tmp_path / "run", symlinks=True)


def test_a_leased_checkpoint_stays_readable_after_the_trainer_deletes_it(run):
    prefix = str(run / "checkpoints" / "ckpt-60")
    with lease(prefix, run) as readable:
        assert readable != prefix and os.path.dirname(readable).startswith(str(run / READERS))
        for path in checkpoint_files(prefix):  # pruned, as CheckpointManager does
            path.unlink()
        assert tf.train.load_variable(readable, "step/.ATTRIBUTES/VARIABLE_VALUE") == 60
    assert not (run / READERS).exists()  # the lease and its directory are gone


def test_a_checkpoint_gone_before_its_lease_is_an_error_the_reader_retries_on(run):
    with pytest.raises(FileNotFoundError):
        with lease(str(run / "checkpoints" / "ckpt-999"), run):
            pass
    assert not (run / READERS).exists()


def test_where_links_cannot_be_made_the_checkpoint_is_read_in_place(run, monkeypatch):
    def no_links(*args, **kwargs):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    prefix = str(run / "checkpoints" / "ckpt-60")
    with lease(prefix, run) as readable:
        assert readable == prefix


def test_the_lease_of_a_killed_reader_is_removed_by_the_next(run):
    code = ("import os, sys, signal; from looptrain.engine.lease import lease\n"
            "with lease(sys.argv[1], sys.argv[2]):\n    os.kill(os.getpid(), signal.SIGKILL)")
    subprocess.run([sys.executable, "-c", code, str(run / "checkpoints" / "ckpt-60"), str(run)],
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    (left,) = (run / READERS).iterdir()
    assert left.name.startswith(".lease.") and len(list(left.iterdir())) == 2  # index and data
    assert load_trained(run).step == 60
    assert not (run / READERS).exists()


def test_a_checkpoint_pruned_between_lookup_and_lease_is_looked_up_again(run, monkeypatch):
    locate, calls = checkpoint_lib._locate, []

    def stale_first(run_, which):  # the first lookup names a checkpoint pruned right after
        calls.append(which)
        if len(calls) == 2:  # (the first call is load_trained's fail-fast check)
            return str(run / "checkpoints" / "ckpt-20"), str(run / "checkpoints" / "ckpt-gone")
        return locate(run_, which)

    monkeypatch.setattr(checkpoint_lib, "_locate", stale_first)
    assert load_trained(run, checkpoint="latest").step == 60
    assert len(calls) == 3


def test_best_is_read_where_its_link_pointed_when_it_was_looked_up(run):
    path, source = checkpoint_lib._locate(RunDir(run), "best")
    assert path == str(run / "best" / "best-60") and source == str(run / "best.60" / "best-60")


def test_the_checkpoint_index_is_read_as_tensorflow_reads_it(tmp_path):
    directory = tmp_path / 'd é"q'
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=tf.Variable(1.0)), str(directory), 2)
    manager.save()
    manager.save()
    assert checkpoint_lib._state(directory) == tf.train.get_checkpoint_state(
        str(directory)).model_checkpoint_path
    (directory / "checkpoint").write_text('model_checkpoint_path: "ckpt-2"\nall_mo')  # half written
    assert checkpoint_lib._state(directory) == str(directory / "ckpt-2")


def test_temporary_names_carry_their_writer_and_their_target(tmp_path):
    name = f"{temp_prefix('report.json')}x1y2.tmp"
    assert name.startswith(f".report.json.{os.getpid()}-") and temp_target(name) == "report.json"
    assert temp_target("report.json") is None and temp_target(".report.json.x1y2.tmp") is None
