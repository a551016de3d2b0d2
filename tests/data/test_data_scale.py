"""Data beyond memory: memory-mapped arrays, ArrayRecord files, one file per example (with exact
augmentation), TFRecord shards and the encoded-text cache; each resumes where the run stopped."""

from pathlib import Path
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT, assert_same_variables, write_data

import looptrain as lt
from looptrain.data import text_cache
from looptrain.data.corpus import load_corpus

SETTINGS = dict(batch_size=32, checkpoint_every=10, log_every=10, monitor="train/loss",
                num_epochs=10)


def _quiet():
    from rich.console import Console

    return lt.callbacks.Display(Console(file=open(os.devnull, "w")))


def _clusters():
    from examples.custom_step import make_clusters

    return make_clusters(600, seed=1)


def _mixup():
    from examples.custom_step import Mixup

    return Mixup(width=16)


def _final(run):
    return tf.train.latest_checkpoint(str(run / "checkpoints"))


def _split_and_straight(make_task, make_data, tmp_path, *, stop=30, total=70, **extra):
    """Trains `total` steps straight and `stop` + resumed to `total`; returns both run paths."""
    settings = {**SETTINGS, **extra, "display": _quiet()}
    lt.fit(make_task(), train=make_data(), run_dir=tmp_path / "straight", max_steps=total, **settings)
    lt.fit(make_task(), train=make_data(), run_dir=tmp_path / "split", max_steps=stop, **settings)
    result = lt.fit(make_task(), train=make_data(), run_dir=tmp_path / "split", max_steps=total,
                    resume=True, **settings)
    assert result.steps_run == total - stop
    return tmp_path / "straight", tmp_path / "split"


def test_memory_mapped_arrays_train_like_in_memory_ones_and_resume_exactly(tmp_path):
    x, y = _clusters()
    np.save(tmp_path / "x.npy", x)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert isinstance(mapped, np.memmap)
    straight, split = _split_and_straight(_mixup, lambda: (mapped, y), tmp_path)
    assert_same_variables(_final(split), _final(straight))
    # The same stream as the arrays held in memory: the same weights, bit for bit.
    lt.fit(_mixup(), train=(x, y), run_dir=tmp_path / "memory", max_steps=70,
           **SETTINGS, display=_quiet())
    assert_same_variables(_final(tmp_path / "memory"), _final(straight))
    source = lt.data.ArraySource((mapped, y))
    assert source.fingerprint()["files"][0][0] == str(tmp_path / "x.npy")  # no read of the data


def test_array_record_files_are_read_by_index_and_resume_exactly(tmp_path):
    from array_record.python.array_record_module import ArrayRecordWriter

    x, y = _clusters()
    writer = ArrayRecordWriter(str(tmp_path / "train.array_record"), "group_size:1")
    for row, label in zip(x, y):
        writer.write(np.concatenate([row, [label]]).astype(np.float32).tobytes())
    writer.close()

    def parse(records):
        values = tf.io.decode_raw(records, tf.float32)
        return values[:, :32], tf.cast(values[:, 32], tf.int32)

    def records():
        return lt.data.RecordSource([tmp_path / "train.array_record"], parse)

    straight, split = _split_and_straight(_mixup, records, tmp_path)
    assert_same_variables(_final(split), _final(straight))
    lt.fit(_mixup(), train=(x, y), run_dir=tmp_path / "memory", max_steps=70, **SETTINGS,
           display=_quiet())
    assert_same_variables(_final(tmp_path / "memory"), _final(straight))


class Shapes(lt.Task):
    """A small convolutional classifier of 12x12 generated shapes (a user's task)."""

    def build(self):
        self.model = keras.Sequential([keras.layers.Conv2D(4, 3, activation="relu"),
                                       keras.layers.GlobalMaxPooling2D(), keras.layers.Dense(8)])
        self.model(tf.zeros([1, 12, 12, 1]))
        self.optimizer = keras.optimizers.Adam(1e-2)

    def train_step(self, batch):
        images, labels = batch
        with tf.GradientTape() as tape:
            logits = self.model(images, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        return {"loss": loss}


def _augment(batch, seeds):
    """A random 12x12 crop of the image padded by 2, and a random flip, per example."""
    images, labels = batch

    def one(args):
        image, seed = args
        padded = tf.pad(image, [[2, 2], [2, 2], [0, 0]], mode="REFLECT")
        image = tf.image.stateless_random_crop(padded, [12, 12, 1], seed)
        return tf.image.stateless_random_flip_left_right(image, seed + 1)

    return tf.map_fn(one, (images, seeds), fn_output_signature=tf.float32), labels


def _image_files(directory):
    from looptrain.data import images

    x, y = images.make_images(np.random.default_rng(4), images.ImageSpec(size=12), 96)
    directory.mkdir()
    paths = []
    for i, image in enumerate(x):
        paths.append(directory / f"{i:03d}.png")
        paths[-1].write_bytes(tf.io.encode_png(tf.cast(image * 255, tf.uint8)).numpy())
    return paths, y


def test_one_file_per_example_with_augmentation_resumes_exactly(tmp_path):
    paths, labels = _image_files(tmp_path / "images")

    def decode(contents):
        return tf.cast(tf.io.decode_png(contents, channels=1), tf.float32) / 255.0

    def files(transform=_augment):
        return lt.data.FileSource(paths, decode, labels=labels, transform=transform)

    straight, split = _split_and_straight(Shapes, files, tmp_path, stop=10, total=25, batch_size=16)
    assert_same_variables(_final(split), _final(straight))
    # The augmentation changes the examples, the same way each time for an (epoch, example).
    plain = files(None).train_dataset(batch_size=16, seed=1, num_epochs=1)
    first = files().train_dataset(batch_size=16, seed=1, num_epochs=1)
    again = files().train_dataset(batch_size=16, seed=1, num_epochs=2, start_step=0)
    (p, _), (a, _), (b, _) = (next(iter(d)) for d in (plain, first, again))
    assert not np.array_equal(a.numpy(), p.numpy())
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def _tfrecords(directory):
    x, y = _clusters()
    directory.mkdir()
    files = []
    for shard in range(4):
        files.append(str(directory / f"shard-{shard}.tfrecord"))
        with tf.io.TFRecordWriter(files[-1]) as writer:
            for row, label in zip(x[shard::4], y[shard::4]):
                writer.write(np.concatenate([row, [label]]).astype(np.float32).tobytes())
    return files


def _parse(record):
    values = tf.io.decode_raw(record, tf.float32)
    return values[:32], tf.cast(values[32], tf.int32)


def test_tfrecord_shards_resume_exactly_with_the_iterator_in_the_checkpoint(tmp_path):
    files = _tfrecords(tmp_path / "shards")

    def shards():
        return lt.data.TFRecordSource(files, _parse, num_examples=600, shuffle_buffer=256)

    straight, split = _split_and_straight(_mixup, shards, tmp_path)
    assert_same_variables(_final(split), _final(straight))
    log = (split / "train.log").read_text()
    assert "the data iterator's state takes" in log and "bytes of each checkpoint" in log


@pytest.mark.slow
def test_tfrecord_shards_resume_exactly_under_mirrored_by_skipping(tmp_path):
    files = _tfrecords(tmp_path / "shards")
    script = f"""
import sys
sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / 'tests')!r}); sys.path.insert(0, {str(Path(__file__).parent)!r})
from looptrain.engine.distribute import local_devices
local_devices(2)
import looptrain as lt, tensorflow as tf
from test_data_scale import _mixup, _parse, _quiet, SETTINGS
from conftest import assert_same_variables
make = lambda: lt.data.TFRecordSource({files!r}, _parse, num_examples=600, shuffle_buffer=256)
s = dict(SETTINGS, strategy="mirrored", num_devices=2, display=_quiet())
lt.fit(_mixup(), train=make(), run_dir="{tmp_path}/straight", max_steps=50, **s)
lt.fit(_mixup(), train=make(), run_dir="{tmp_path}/split", max_steps=30, **s)
lt.fit(_mixup(), train=make(), run_dir="{tmp_path}/split", max_steps=50, resume=True, **s)
assert_same_variables(tf.train.latest_checkpoint("{tmp_path}/split/checkpoints"),
                      tf.train.latest_checkpoint("{tmp_path}/straight/checkpoints"))
print("same")
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("same")


def test_text_is_encoded_once_into_the_cache_and_memory_mapped_after(tmp_path, monkeypatch):
    data = write_data(tmp_path / "d", "体育\t比赛进球\n财经\t股票基金\n" * 50)
    first = load_corpus(data, seq_length=8, vocab_size=20)
    x, y = first.splits["train"]
    assert isinstance(x, np.memmap) and x.shape == (100, 8) and list(y[:2]) == [0, 1]

    def no_text(*args):
        raise AssertionError("the text was read again")

    monkeypatch.setattr(text_cache, "iter_chunks", no_text)
    again = load_corpus(data, seq_length=8, vocab_size=20)  # vocabulary and encoding from cache
    np.testing.assert_array_equal(again.splits["train"][0], x)
    assert again.fingerprints() == first.fingerprints()
    monkeypatch.undo()
    (data / "train.txt").write_text("体育\t比赛\n财经\t基金\n" * 50, encoding="utf-8")
    changed = load_corpus(data, seq_length=8, vocab_size=20)  # another file: encoded anew
    assert changed.fingerprints()["train"] != first.fingerprints()["train"]


def test_npy_data_dirs_are_memory_mapped_through_the_command_line(tmp_path, capsys):
    from looptrain.cli import run_main, train_main

    x, y = _clusters()
    data = tmp_path / "arrays"
    data.mkdir()
    for split, rows in (("train", slice(0, 400)), ("val", slice(400, 500)), ("test", slice(500, 600))):
        np.save(data / f"{split}_x.npy", x[rows])
        np.save(data / f"{split}_y.npy", y[rows])
    argv = ["--config", str(ROOT / "configs" / "mlp.toml"), "--data-dir", str(data), "--run-dir",
            str(tmp_path / "run"), "--max-steps", "30", "--eval-every", "15", "--set",
            "model.hidden_dim=16"]
    assert run_main(train_main, argv) == 0
    assert "best val/accuracy" in capsys.readouterr().out
    corpus = load_corpus(data, seq_length=1, vocab_size=2)
    assert isinstance(corpus.splits["train"][0], np.memmap)
    np.save(data / "val_x.npy", x[400:500].astype(np.float64))
    from looptrain.errors import DataError

    with pytest.raises(DataError, match="val_x.npy: dtype float64; memory-mapped examples must be "
                                        "stored as float32"):
        load_corpus(data, seq_length=1, vocab_size=2)


@pytest.mark.slow
def test_a_memory_mapped_run_killed_by_sigkill_resumes_bit_identically(tmp_path):
    import signal
    import time

    x, y = _clusters()
    data = tmp_path / "arrays"
    data.mkdir()
    for split in ("train", "val", "test"):
        np.save(data / f"{split}_x.npy", x)
        np.save(data / f"{split}_y.npy", y)
    flags = ["--config", str(ROOT / "configs" / "mlp.toml"), "--data-dir", str(data),
             "--max-steps", "400", "--epochs", "40", "--checkpoint-every", "20", "--eval-every",
             "200", "--set", "model.hidden_dim=16", "--resume=auto"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def train(run):
        return subprocess.Popen([sys.executable, str(ROOT / "scripts" / "train.py"), "--run-dir",
                                 str(run), *flags], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    assert train(tmp_path / "straight").wait(timeout=300) == 0
    proc, run = train(tmp_path / "killed"), tmp_path / "killed"
    while not list((run / "checkpoints").glob("ckpt-100.index")):
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert train(run).wait(timeout=300) == 0
    assert_same_variables(_final(run), _final(tmp_path / "straight"))


def test_a_file_digest_is_remembered_by_its_stat_and_any_change_hashes_again(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOPTRAIN_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "train.txt"
    path.write_text("体育\t比赛\n" * 100, encoding="utf-8")
    fresh = text_cache.file_digest(path)  # written just now: not remembered (racy)
    assert not (tmp_path / "cache" / "digests").exists()
    old = path.stat().st_mtime - 60
    os.utime(path, (old, old))
    assert text_cache.file_digest(path) == fresh  # hashed and remembered
    assert len(list((tmp_path / "cache" / "digests").iterdir())) == 1
    hashed = []
    real_sha256 = text_cache.hashlib.sha256
    monkeypatch.setattr(text_cache.hashlib, "sha256",  # a file's hash starts empty (keys do not)
                        lambda *data: real_sha256(*data) if data else hashed.append(1) or real_sha256())
    assert text_cache.file_digest(path) == fresh and not hashed  # remembered: not read again
    # Same size, same modification time, other bytes: the change time differs, so hashed again.
    path.write_text("财经\t比赛\n" * 100, encoding="utf-8")
    os.utime(path, (old, old))
    changed = text_cache.file_digest(path)
    assert hashed and changed != fresh
    assert changed == real_sha256(path.read_bytes()).hexdigest()
