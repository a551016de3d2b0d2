import json

from conftest import SMALL_SPEC
from looptrain.data import synthetic, text
from looptrain.files import made_from


def test_generation_is_deterministic_and_in_the_data_format(tmp_path):
    a = synthetic.generate(tmp_path / "a", SMALL_SPEC)
    b = synthetic.generate(tmp_path / "b", SMALL_SPEC)
    for split in ("train", "val", "test"):
        assert (a / f"{split}.txt").read_bytes() == (b / f"{split}.txt").read_bytes()
    train = text.read_examples(a / "train.txt")
    assert len(train.labels) == SMALL_SPEC.num_train
    assert set(train.labels) == set(synthetic.CATEGORIES)
    lengths = [len(t) for t in train.texts]
    assert min(lengths) < 60 < max(lengths)  # varied lengths
    assert json.loads((a / "manifest.json").read_text())["synthetic"] is True
    assert (a / "README.txt").read_text(encoding="utf-8").startswith("SYNTHETIC DATA")


def test_other_seed_gives_other_corpus(tmp_path):
    import dataclasses

    a = synthetic.generate(tmp_path / "a", SMALL_SPEC)
    b = synthetic.generate(tmp_path / "b", dataclasses.replace(SMALL_SPEC, seed=12))
    assert (a / "train.txt").read_bytes() != (b / "train.txt").read_bytes()


def test_ensure_generates_once_and_regenerates_incomplete(tmp_path):
    out = synthetic.ensure(tmp_path / "c", SMALL_SPEC)
    stamp = (out / "train.txt").stat().st_mtime_ns
    assert synthetic.ensure(out, SMALL_SPEC) == out
    assert (out / "train.txt").stat().st_mtime_ns == stamp
    (out / "val.txt").unlink()
    synthetic.ensure(out, SMALL_SPEC)
    assert (out / "val.txt").is_file()
    assert not list(tmp_path.glob(".c.*.tmp"))  # no temporary directory left behind


def test_a_directory_of_the_users_is_never_replaced_by_generated_data(tmp_path):
    import pytest

    from looptrain.errors import DataError

    out = tmp_path / "synthetic"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match=r"synthetic holds files looptrain did not generate "
                                        r"\(notes.txt\); move them away, or pass --data-dir"):
        synthetic.ensure(out, SMALL_SPEC)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert not list(tmp_path.glob(".synthetic.*.tmp"))


def test_only_an_own_earlier_output_is_regenerated(tmp_path):
    import dataclasses

    import pytest

    from looptrain.data import images
    from looptrain.errors import DataError

    out = synthetic.generate(tmp_path / "synthetic", SMALL_SPEC)
    other = dataclasses.replace(SMALL_SPEC, seed=12)
    synthetic.ensure(out, other)  # its own output under another spec: replaced
    assert made_from(out, dataclasses.asdict(other), synthetic.FILES)
    (out / "mine.npz").write_bytes(b"user data")  # now it also holds a file of the user's
    with pytest.raises(DataError, match=r"\(mine.npz\)"):
        synthetic.ensure(out, SMALL_SPEC)
    assert (out / "mine.npz").read_bytes() == b"user data"
    with pytest.raises(DataError, match="holds files looptrain did not generate"):
        images.ensure(out)  # another generator's output is not its own either


def test_runs_started_together_generate_once_and_the_waiting_one_reads_that(tmp_path, monkeypatch):
    # Two runs on a fresh checkout (the bench starts five): the second waits for the first's
    # generation and uses it. Before, both generated, and the second's replacing the directory took
    # train.txt away from the first while it read it (FileNotFoundError).
    import dataclasses
    import threading
    import time

    generated, release, real = [], threading.Event(), synthetic.generate

    def slow_generate(out_dir, spec):
        generated.append(out_dir)
        release.wait(30)
        return real(out_dir, spec)

    monkeypatch.setattr(synthetic, "generate", slow_generate)
    out = tmp_path / "synthetic"
    runs = [threading.Thread(target=synthetic.ensure, args=(out, SMALL_SPEC)) for _ in range(2)]
    for run in runs:
        run.start()
    time.sleep(1.0)
    assert len(generated) == 1  # the other waits at the lock
    release.set()
    for run in runs:
        run.join(60)
    assert len(generated) == 1  # and, once it has it, finds the corpus made
    assert made_from(out, dataclasses.asdict(SMALL_SPEC), synthetic.FILES)
