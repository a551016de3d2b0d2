"""scripts/tfidf_baseline.py: the numpy TF-IDF + logistic regression baseline and its subsample."""

import os
import re
import subprocess
import sys

from conftest import ROOT


def test_baseline_writes_a_short_subsample_and_learns_it(corpus_dir, tmp_path):
    out = tmp_path / "short"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "tfidf_baseline.py"), "--data-dir", str(corpus_dir),
         "--subsample", str(out), "--num-train", "200", "--num-eval", "50", "--max-chars", "60"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    lines = (out / "train.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 200 and max(len(line.split("\t", 1)[1]) for line in lines) == 60
    assert len((out / "test.txt").read_text(encoding="utf-8").splitlines()) == 50
    found = re.search(r"logistic regression: val ([\d.]+) test ([\d.]+)", proc.stdout)
    val, test = map(float, found.groups())
    assert val > 0.3 and test > 0.3  # 10 classes: chance is 0.1
