"""export.py: a SavedModel on raw strings that agrees with predict.py and needs no looptrain."""

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from looptrain.cli import export_main, run_main
from looptrain.data.text import encode_texts, read_examples
from looptrain.app.export import encode_strings, make_vocab_table
from looptrain.app.predict import Predictor


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("export") / "model"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert run_main(export_main, ["--run-dir", str(trained_run), "--out", str(out_dir)]) == 0
    assert f"to {out_dir} (" in out.getvalue() and " MB)" in out.getvalue()
    return out_dir


def test_exported_model_agrees_with_predict_on_the_whole_test_split(exported, trained_run, corpus_dir):
    texts = read_examples(corpus_dir / "test.txt").texts
    serve = tf.saved_model.load(str(exported)).signatures["serving_default"]
    outputs = serve(texts=tf.constant(texts))
    predictions = Predictor.from_run(trained_run).predict(texts)
    assert [label.decode() for label in outputs["label"].numpy()] == [p.label for p in predictions]
    labels = (trained_run / "labels.txt").read_text(encoding="utf-8").split()
    expected = np.array([[p.probabilities[label] for label in labels] for p in predictions])
    np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, rtol=1e-5, atol=1e-6)


def test_signature_takes_strings_and_returns_label_and_probabilities(exported):
    serve = tf.saved_model.load(str(exported)).signatures["serving_default"]
    (spec,) = serve.structured_input_signature[1].values()
    assert spec.dtype == tf.string and spec.shape.as_list() == [None]
    outputs = serve.structured_outputs
    assert outputs["label"].dtype == tf.string and outputs["label"].shape.as_list() == [None]
    assert outputs["probabilities"].dtype == tf.float32
    assert outputs["probabilities"].shape.as_list() == [None, 10]
    empty = serve(texts=tf.constant([], tf.string))  # an empty batch is fine too
    assert empty["probabilities"].shape == (0, 10)


def test_in_graph_encoding_is_encode_texts():
    # Non-BMP characters, a space, a tab and "\r" in the vocabulary; texts longer than seq_length,
    # with unknown characters, only unknown characters, or nothing at all.
    vocab = ["<PAD>", "a", "𠀀", " ", "é", "\r", "\t", "中", "😀"]
    texts = ["", "a 中", "zzz", "𠀀a😀b\r", "x" * 3 + "a" * 20 + "中", "é\té", "e\u0301", "中" * 7]
    seq_length = 6
    got = encode_strings(tf.constant(texts), make_vocab_table(vocab), seq_length).numpy()
    np.testing.assert_array_equal(got, encode_texts(texts, vocab, seq_length))
    # Invalid UTF-8 decodes to U+FFFD, which is not in the vocabulary: dropped like any unknown.
    broken = encode_strings(tf.constant([b"a\xff\xfe\xe4\xb8\xad"]), make_vocab_table(vocab), 6)
    np.testing.assert_array_equal(broken.numpy(), encode_texts(["a中"], vocab, 6))


def test_serving_needs_neither_looptrain_nor_the_run_directory(exported, trained_run, tmp_path):
    model_dir = tmp_path / "elsewhere"
    shutil.copytree(exported, model_dir)
    assert not list((model_dir / "assets").iterdir())  # no vocabulary file travels with it
    texts = ["体育", "xyz"]
    code = ("import json, sys, tensorflow as tf\n"
            f"m = tf.saved_model.load({str(model_dir)!r})\n"
            f"out = m.signatures['serving_default'](texts=tf.constant({texts!r}))\n"
            "print(json.dumps([[b.decode() for b in out['label'].numpy()], "
            "'looptrain' in sys.modules]))\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    served, imported = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not imported
    assert served == [p.label for p in Predictor.from_run(trained_run).predict(texts)]


def test_export_refuses_a_non_empty_out_directory(exported, trained_run, capsys):
    before = sorted(p.name for p in exported.iterdir())
    assert run_main(export_main, ["--run-dir", str(trained_run), "--out", str(exported)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: --out {exported} already exists and is not empty; choose another " \
                  f"directory or delete it\n"
    assert sorted(p.name for p in exported.iterdir()) == before
