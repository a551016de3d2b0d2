"""benchmarks/baseline.py: scikit-learn TF-IDF + logistic regression, chosen on val (needs the
`bench` extra; skipped without scikit-learn)."""

import sys

import pytest

from conftest import ROOT, write_data

sys.path.insert(0, str(ROOT))
pytest.importorskip("sklearn")
from benchmarks import baseline  # noqa: E402


def small_set(directory):
    topics = {"sport": "goal match team", "money": "bank stock price", "food": "rice soup bread"}
    lines = [f"{label}\t{filler} {word} {filler}\n" for i, filler in enumerate(["the day", "a note", "so it"] * 4)
             for label, words in topics.items() for word in words.split()[i % 3:i % 3 + 1]]
    return write_data(directory, "".join(lines), "".join(lines[::4]), "".join(lines[1::4]))


def test_baseline_chooses_on_val_and_reports_test(tmp_path, capsys, monkeypatch):
    data = small_set(tmp_path / "set")
    best, results = baseline.run_baseline(data, c_grid=(0.01, 10.0))
    assert len(results) == 6 and best.val_accuracy == max(r.val_accuracy for r in results)
    assert best.test_accuracy > 0.9  # 3 classes, one topic word each
    monkeypatch.setattr(baseline, "C_GRID", (10.0,))
    baseline.main(["--data-dir", str(data), "--json"])
    assert '"c": 10.0' in capsys.readouterr().out


def test_word_variants_only_for_languages_with_spaces(tmp_path):
    english = write_data(tmp_path / "en", "a\tthe cat sat\nb\ton the mat\n")
    chinese = write_data(tmp_path / "zh", "a\t猫坐着\nb\t在垫子上\n")
    assert baseline.variants_for(english) == baseline.VARIANTS
    assert baseline.variants_for(chinese) == ("char1-4",)
