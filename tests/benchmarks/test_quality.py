"""benchmarks/quality.py end to end on a tiny set: looptrain through its command line, the
scikit-learn reference, one table (a smoke run; needs scikit-learn, the `bench` extra)."""

import json
import sys
import tomllib

import pytest

from conftest import ROOT, write_data

sys.path.insert(0, str(ROOT))
pytest.importorskip("sklearn")
from benchmarks import quality  # noqa: E402


def test_text_configs_are_the_shipped_text_models():
    names = [p.stem for p in quality.text_configs(ROOT / "configs")]
    assert {"textcnn", "textrnn", "multicnn", "birnn", "fasttext", "tfidf", "fasttext_ngrams"} <= set(names)
    assert not {"tiny", "mlp", "convnet"} & set(names)
    for path in quality.text_configs(ROOT / "configs"):
        assert tomllib.loads(path.read_text(encoding="utf-8"))["model"]["name"] != "mlp"


@pytest.mark.slow  # 25 s: the benchmarks' smoke runs are make test-slow's
def test_quality_trains_evaluates_and_prints_one_table_per_set(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(quality.baseline, "C_GRID", (10.0,))
    lines = "".join(f"{label}\t{word} {i}\n" for i in range(12)
                    for label, word in (("a", "球队"), ("b", "股票"), ("c", "米饭")))
    corpus_dir = write_data(tmp_path / "data" / "small", lines)
    out = tmp_path / "quality"
    quality.main(["--sets", corpus_dir.name, "--data-root", str(corpus_dir.parent), "--configs",
                  str(ROOT / "configs" / "tfidf.toml"), "--seeds", "1", "--no-fit", "--out", str(out),
                  "--set", "train.max_steps=8"])
    printed = capsys.readouterr().out
    assert f"### {corpus_dir.name} (data.seq_length=" in printed
    assert "| tfidf |" in printed and "TF-IDF + LR, scikit-learn (char1-4, C=10)" in printed
    rows = json.loads((out / "quality.json").read_text())["sets"][corpus_dir.name]["rows"]
    assert 0.0 < rows["tfidf"]["test_accuracy"]["mean"] <= 1.0
    run = out / corpus_dir.name / "tfidf" / "seed1"
    assert json.loads((run / "eval" / "report.json").read_text())["split"] == "test"
    assert json.loads((run / "config.json").read_text())["train"]["seed"] == 1
    # The run's test predictions (through predict.py) against the reference's, text by text.
    predictions = (run / "test_predictions.txt").read_text(encoding="utf-8").split()
    assert len(predictions) == 36 and set(predictions) <= {"a", "b", "c"}
    assert len((out / corpus_dir.name / "baseline_predictions.txt").read_text().split()) == 36
    (versus,) = json.loads((out / "quality.json").read_text())["sets"][corpus_dir.name][
        "versus_reference"]
    assert versus["config"] == "tfidf" and versus["run"] == "seed1"
    assert versus["accuracy_a"] == pytest.approx(rows["tfidf"]["test_accuracy"]["mean"])
    assert "| tfidf | seed1 |" in printed and "(McNemar)" in printed
