"""predict.py: texts from arguments, files or stdin -> one label per line, top-k, JSON, errors."""

import io
import json
import sys

import numpy as np
import pytest

from looptrain.cli import predict_main, run_main
from looptrain.data.text import read_examples
from looptrain.app.evaluation import evaluate_run
from looptrain.app.predict import Predictor


@pytest.fixture(scope="module")
def test_split(corpus_dir):
    return read_examples(corpus_dir / "test.txt")


@pytest.fixture(scope="module")
def labels(trained_run):
    return (trained_run / "labels.txt").read_text(encoding="utf-8").split()


def _predict(capsys, *argv):
    code = run_main(predict_main, list(argv))
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def test_one_label_per_argument(trained_run, test_split, labels, capsys):
    texts = test_split.texts[:3]
    code, lines, err = _predict(capsys, "--run-dir", str(trained_run), *texts)
    assert code == 0 and err == ""
    assert len(lines) == 3 and all(line in labels for line in lines)


def test_file_and_stdin_read_lines_like_data_files(trained_run, test_split, tmp_path, capsys,
                                                   monkeypatch):
    texts = test_split.texts[:4]
    _, expected, _ = _predict(capsys, "--run-dir", str(trained_run), *texts)
    path = tmp_path / "in.txt"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(texts).encode() + b"\r\n")  # BOM and CRLF
    code, lines, _ = _predict(capsys, "--run-dir", str(trained_run), "--file", str(path))
    assert code == 0 and lines == expected
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("\n".join(texts).encode())))
    code, lines, _ = _predict(capsys, "--run-dir", str(trained_run))
    assert code == 0 and lines == expected


def test_top_k_and_json(trained_run, test_split, labels, capsys):
    texts = test_split.texts[:2]
    code, lines, _ = _predict(capsys, "--run-dir", str(trained_run), "--top-k", "3", *texts)
    assert code == 0 and len(lines) == 2
    for line in lines:
        label, *pairs = line.split("\t")
        probabilities = [float(pair.rsplit(" ", 1)[1]) for pair in pairs]
        assert len(pairs) == 3 and pairs[0].startswith(label + " ")
        assert probabilities == sorted(probabilities, reverse=True)

    code, lines, _ = _predict(capsys, "--run-dir", str(trained_run), "--json", *texts)
    records = [json.loads(line) for line in lines]
    assert [r["text"] for r in records] == texts
    for record in records:
        assert set(record["probabilities"]) == set(labels)  # all of them without --top-k
        assert sum(record["probabilities"].values()) == pytest.approx(1, abs=1e-5)
        assert record["label"] == max(record["probabilities"], key=record["probabilities"].get)
        assert record["characters_used"] > 0


def test_a_text_without_known_characters_gets_a_defined_answer(trained_run, labels, capsys):
    code, lines, err = _predict(capsys, "--run-dir", str(trained_run), "--json", "xyz ☃", "§")
    assert code == 0 and "argument 1: no character of this text is in the vocabulary" in err
    first, second = (json.loads(line) for line in lines)
    assert first["characters_used"] == 0 and first["label"] in labels
    assert first["probabilities"] == second["probabilities"]  # both are the all-padding input


@pytest.mark.parametrize("content, argv, message", [
    (b"a\n\nb\n", [], "{file}:2: empty text; give one non-empty text per line"),
    (b"a\n \t\n", [], "{file}:2: empty text"),
    (b"a\n\xff\n", [], "{file}:2: not valid UTF-8"),
    (b"", [], "{file}: no texts; give TEXT arguments, --file F, or one text per line"),
    (None, ["text", ""], "argument 2: empty text"),
    (None, ["--top-k", "0", "x"], "--top-k must be at least 1, got 0"),
    (None, ["--top-k", "11", "x"], "--top-k 11: this run has only 10 labels"),
    (None, ["--file", "nope.txt"], "cannot read --file nope.txt"),
    (b"x\n", ["y"], "give texts as arguments or with --file, not both"),
])
def test_bad_input_is_one_line_and_exit_2(trained_run, tmp_path, capsys, content, argv, message):
    path = tmp_path / "in.txt"
    if content is not None:
        path.write_bytes(content)
        argv = [*argv, "--file", str(path)]
    code, lines, err = _predict(capsys, "--run-dir", str(trained_run), *argv)
    assert code == 2 and lines == []
    assert err.startswith(f"error: {message.format(file=path)}") and err.count("\n") == 1


def test_missing_run_directory(tmp_path, capsys):
    code, _, err = _predict(capsys, "--run-dir", str(tmp_path / "none"), "x")
    assert code == 2 and "is not a looptrain run directory" in err


def test_predictions_on_the_test_split_reproduce_the_evaluation(trained_run, test_split, labels):
    predictor = Predictor.from_run(trained_run)
    predicted = [p.label for p in predictor.predict(test_split.texts)]
    accuracy = np.mean([p == t for p, t in zip(predicted, test_split.labels)])
    assert accuracy == evaluate_run(trained_run).accuracy
