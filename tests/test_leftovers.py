"""All or nothing: what an interrupted save leaves is removed by the next start, and only that;
an export appears whole or not at all."""

import errno
import os
import shutil
from pathlib import Path

import pytest
import tensorflow as tf
from conftest import snapshot

from looptrain.app import export as export_lib
from looptrain.cli import export_main, run_main
from looptrain.engine.leftovers import remove_leftovers
from looptrain.files import HOST, remove_stale_temps, temp_prefix


def _dead_pid() -> int:
    """A process id that no process has now."""
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def _stale(name: str) -> str:
    return f".{name}.{_dead_pid()}-{HOST}.abc123.tmp"


def test_a_start_removes_exactly_what_interrupted_saves_left(tmp_path):
    run = tmp_path / "run"
    checkpoints = run / "checkpoints"
    checkpoints.mkdir(parents=True)
    keep = ["checkpoints/ckpt-20.index", "checkpoints/ckpt-20.data-00000-of-00001",
            "checkpoints/checkpoint", "best.40/best-40.index", "best.legacy/x", "notes_temp.txt",
            f"{temp_prefix('config.json')}mine.tmp", f".config.json.1-{'0' * 8}.x.tmp"]
    gone = ["checkpoints/ckpt-40_temp/part-00000-of-00001.data-00000-of-00001.tempstate1",
            "checkpoints/ckpt-60.data-00000-of-00001", "checkpoints/ckpt-40.index.tempstate9",
            "checkpoints/checkpoint.tmp1a2b", "best.20/best-20.index",
            "best.60/best-60_temp/part-00000-of-00001.data-00000-of-00001", _stale("fit.json")]
    for name in keep + gone:
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text("x")
    os.symlink("best.40", run / "best")
    os.symlink("best.60", run / ".best.tmp")  # a link swap killed before its rename
    removed = remove_leftovers(run)
    assert sorted(str(p.relative_to(run)) for p in removed) == sorted(
        [".best.tmp", "best.20", "best.60", "checkpoints/ckpt-40_temp", *gone[1:4], gone[-1]])
    assert all((run / name).exists() for name in keep)  # live writers' temporaries, other hosts'
    assert (run / "best").is_symlink()


def test_a_dangling_best_link_keeps_every_best_copy(tmp_path):
    (tmp_path / "best.20").mkdir()
    os.symlink("best.99", tmp_path / "best")
    assert remove_leftovers(tmp_path) == []


def test_stale_temporaries_of_one_target_only(tmp_path):
    for name in (_stale("model"), _stale("other"), "model"):
        (tmp_path / name).mkdir()
    assert [p.name for p in remove_stale_temps(tmp_path, "model")] == [_stale("model")]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([_stale("other"), "model"])


def test_an_export_that_fails_halfway_leaves_nothing_and_the_retry_works(trained_run, tmp_path,
                                                                         monkeypatch, capsys):
    out = tmp_path / "out" / "model"
    save = tf.saved_model.save

    def full_disk(module, path, signatures):
        Path(path, "variables").mkdir()
        Path(path, "variables", "variables.index").write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device", str(Path(path, "saved_model.pb")))

    monkeypatch.setattr(tf.saved_model, "save", full_disk)
    assert run_main(export_main, ["--run-dir", str(trained_run), "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {out}: no space left on the device;")
    assert list((tmp_path / "out").iterdir()) == []
    (tmp_path / "out" / _stale("model")).mkdir()  # what a SIGKILLed export leaves
    monkeypatch.setattr(tf.saved_model, "save", save)
    assert run_main(export_main, ["--run-dir", str(trained_run), "--out", str(out)]) == 0
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["model"]
    assert oct(out.stat().st_mode & 0o777) == oct(0o777 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_an_export_into_an_empty_directory_or_a_link_to_one(trained_run, tmp_path):
    (tmp_path / "empty").mkdir()
    export_lib.export_run(trained_run, tmp_path / "empty")
    assert (tmp_path / "empty" / "saved_model.pb").is_file()
    (tmp_path / "target").mkdir()
    os.symlink("target", tmp_path / "link")
    export_lib.export_run(trained_run, tmp_path / "link")
    assert (tmp_path / "link").is_symlink() and (tmp_path / "target" / "saved_model.pb").is_file()


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("x"), "--out {p} is a file, not a directory; choose another directory"),
    (lambda p: os.symlink("nowhere", p), "--out {p} is a symlink to a missing directory; fix the link"),
])
def test_an_out_that_cannot_be_a_directory_is_one_line(trained_run, tmp_path, make, message, capsys):
    out = tmp_path / "out"
    make(out)
    before = snapshot(tmp_path)
    assert run_main(export_main, ["--run-dir", str(trained_run), "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith("error: " + message.format(p=out))
    assert snapshot(tmp_path) == before
    shutil.rmtree(tmp_path / "out", ignore_errors=True)
