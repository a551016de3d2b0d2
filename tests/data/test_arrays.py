"""Array data (.npz): loading and its errors, the generated image set, and array runs end to end
through the same script entry points as text (train, resume, evaluate)."""

import json

import numpy as np
import pytest

from conftest import ROOT
from looptrain.cli import evaluate_main, run_main, train_main
from looptrain.data import images
from looptrain.data.arrays import load_arrays
from looptrain.data.corpus import load_corpus
from looptrain.errors import DataError


def write_npz(directory, **splits):
    """Writes `<split>.npz` for each `split=dict(arrays)`; val/test default to train's arrays."""
    directory.mkdir(parents=True, exist_ok=True)
    train = splits["train"]
    for name in ("train", "val", "test"):
        arrays = splits.get(name, train)
        np.savez(directory / f"{name}.npz", **arrays)
    return directory


def vectors(n=12, features=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(n, features)), "y": np.arange(n) % classes}


def test_image_set_loads_as_float_images_with_class_names(image_dir):
    labels, splits = load_arrays(image_dir)
    assert labels == list(images.CLASSES)
    x, y = splits["train"]
    assert x.shape == (120, 12, 12, 1) and x.dtype == np.float32 and y.dtype == np.int32
    assert 0.0 <= x.min() and x.max() <= 1.0 and set(np.unique(y)) <= set(range(8))
    corpus = load_corpus(image_dir, seq_length=5, vocab_size=5, splits=("train", "val"))
    assert (corpus.kind, corpus.vocab, corpus.vocab_size) == ("arrays", None, 0)
    assert corpus.example_shape == (12, 12, 1) and corpus.dtype == "float32"


def test_image_set_is_reproducible_and_labelled_as_generated(image_dir, tmp_path):
    spec = images.ImageSpec(seed=5, num_train=120, num_val=40, num_test=40, size=12)
    again = images.generate(tmp_path / "again", spec)
    for split in ("train", "val", "test"):
        with np.load(image_dir / f"{split}.npz") as a, np.load(again / f"{split}.npz") as b:
            np.testing.assert_array_equal(a["x"], b["x"])
            np.testing.assert_array_equal(a["y"], b["y"])
    assert "SYNTHETIC" in (image_dir / "README.txt").read_text()
    assert json.loads((image_dir / "manifest.json").read_text())["synthetic"] is True
    # Every class occurs: the set is balanced up to chance.
    assert len(np.unique(load_arrays(image_dir)[1]["train"][1])) == 8


def test_without_names_the_labels_are_the_class_ids(tmp_path):
    labels, splits = load_arrays(write_npz(tmp_path / "d", train=vectors()))
    assert labels == ["0", "1", "2"] and splits["val"][0].dtype == np.float32


@pytest.mark.parametrize("splits, message", [
    ({"train": {"x": np.zeros((4, 2))}}, r"train.npz: no array 'y' \(it holds x\)"),
    ({"train": {"x": np.zeros((4, 2)), "y": np.zeros(3, int)}}, "'x' has 4 examples but 'y' has 3"),
    ({"train": {"x": np.zeros((4, 2)), "y": np.zeros(4)}}, "'y' must be a 1-D array of integer class ids"),
    ({"train": {"x": np.zeros((4, 2)), "y": np.array([0, 1, -1, 0])}}, r"train.npz: y\[2\] = -1"),
    ({"train": {"x": np.zeros(4), "y": np.array([0, 1, 1, 0])}}, "expected \\[examples, features...\\]"),
    ({"train": {"x": np.zeros((4, 0)), "y": np.array([0, 1, 1, 0])}},
     r"'x' has shape \[4, 0\]; expected \[examples, features...\] with at least one example and one"),
    ({"train": {"x": np.zeros((4, 2)), "y": np.array([0, 1, 2**32 + 1, 0])}},
     r"train.npz: y\[2\] = 4294967297; class ids must be below 10,000"),
    ({"train": {"x": np.array([[0.0], [np.nan], [1], [2]]), "y": np.array([0, 1, 1, 0])}},
     r"train.npz: x\[1\] holds NaN or infinity"),
    ({"train": {"x": np.zeros((4, 2)), "y": np.zeros(4, int)}}, "1 class\\(es\\); a classifier needs"),
    ({"train": vectors(), "val": {"x": np.zeros((2, 5)), "y": np.array([1, 3])}},
     r"val.npz: y\[1\] = 3 is not a class id of this run \(0..2\)"),
    ({"train": vectors(), "test": {"x": np.zeros((2, 6)), "y": np.array([1, 0])}},
     r"test.npz: examples have shape \[6\], but those of val.npz have \[5\]"),
])
def test_bad_array_files_are_one_line_errors_naming_the_file(tmp_path, splits, message):
    directory = write_npz(tmp_path / "d", **splits)
    with pytest.raises(DataError, match=message) as err:
        load_arrays(directory)
    assert "\n" not in str(err.value)


def test_a_missing_or_unreadable_split_is_named(tmp_path):
    directory = write_npz(tmp_path / "d", train=vectors())
    (directory / "test.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"test.npz: not a readable .npz file"):
        load_arrays(directory)
    (directory / "val.npz").unlink()
    with pytest.raises(DataError, match=r"no val.npz; array data needs train.npz, val.npz and test.npz"):
        load_arrays(directory, splits=("val",))


def _args(config, data, run, *extra):
    return ["--config", str(ROOT / "configs" / config), "--data-dir", str(data), "--run-dir", str(run),
            *extra]


def test_mlp_trains_resumes_and_evaluates_on_arrays_through_the_scripts(image_dir, tmp_path, capsys):
    run = tmp_path / "run"
    small = ["--set", "model.hidden_dim=16", "--set", "train.log_every=4", "--eval-every", "4"]
    assert run_main(train_main, _args("mlp.toml", image_dir, run, "--max-steps", "8", *small)) == 0
    assert not (run / "vocab.txt").exists()
    assert (run / "labels.txt").read_text().split() == list(images.CLASSES)
    assert run_main(train_main, ["--run-dir", str(run), "--resume", "--max-steps", "12"]) == 0
    assert "step 12" in capsys.readouterr().out
    assert run_main(evaluate_main, ["--run-dir", str(run)]) == 0
    out = capsys.readouterr().out
    assert "test loss" in out and "40 examples" in out
    # Evaluating the array run on text data is refused in one line.
    text_dir = tmp_path / "text"
    text_dir.mkdir()
    (text_dir / "test.txt").write_text("a\tb\n")
    assert run_main(evaluate_main, ["--run-dir", str(run), "--data-dir", str(text_dir)]) == 2
    assert "holds text data but this run has no vocab.txt" in capsys.readouterr().err


def test_convnet_config_trains_on_arrays(image_dir, tmp_path, capsys):
    run = tmp_path / "run"
    args = _args("convnet.toml", image_dir, run, "--max-steps", "3", "--eval-every", "3",
                 "--set", "model.num_filters=4", "--set", "model.hidden_dim=8")
    assert run_main(train_main, args) == 0
    assert "step 3" in capsys.readouterr().out


def test_a_text_model_on_arrays_is_refused_before_anything_is_written(image_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert run_main(train_main, _args("textcnn.toml", image_dir, run)) == 2
    err = capsys.readouterr().err
    assert ("'model.name' is 'textcnn', a model for text (label<TAB>text files), but the data is "
            "arrays (.npz files); models for it: convnet, mlp") in err and err.count("\n") == 1
    assert not run.exists()


def test_an_image_model_on_vectors_is_refused(tmp_path, capsys):
    data = write_npz(tmp_path / "d", train=vectors())
    run = tmp_path / "run"
    assert run_main(train_main, _args("convnet.toml", data, run)) == 2
    assert "expects examples of rank 3" in capsys.readouterr().err
    assert not run.exists()
