"""benchmarks/realtext.py: parsing, cleaning, de-duplication, the split and the files it writes
(on tiny in-memory examples: no download)."""

import json
import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT))
from benchmarks import realtext  # noqa: E402
from looptrain.data.text import read_examples  # noqa: E402


def test_parsers_read_each_source_format():
    csv_bytes = '\ufeff"1","a good , warm film \n"\n"-1","dull"\n'.encode("utf-8")
    assert realtext.parse_pattern_polarity(csv_bytes) == [("positive", "a good , warm film \n"),
                                                          ("negative", "dull")]
    assert realtext.parse_tab_lines("sports\t球队 夺冠\nbad line\n".encode()) == [("sports", "球队 夺冠")]
    assert realtext.parse_lines_as("neg")("很差\n不好".encode()) == [("neg", "很差"), ("neg", "不好")]


def test_dedupe_cleans_keeps_the_first_copy_and_drops_contradictions():
    pairs = [("a", " one\ttwo\nthree "), ("a", "one two three"), ("b", "x"), ("a", "x"),
             ("b", "   "), ("a", "y")]
    assert realtext.dedupe(pairs) == [("a", "one two three"), ("a", "y")]


def test_split_is_stratified_disjoint_deterministic_and_subsampled():
    pairs = [(label, f"{label} text {i}") for label in "ab" for i in range(50)]
    splits = realtext.split_examples(pairs, seed=3, max_examples=60)
    assert {k: len(v) for k, v in splits.items()} == {"train": 36, "val": 12, "test": 12}
    texts = [t for part in splits.values() for _, t in part]
    assert len(set(texts)) == 60 and set(texts) <= {t for _, t in pairs}
    for part in splits.values():  # the labels' proportions are those of the whole
        counts = [sum(1 for label, _ in part if label == x) for x in "ab"]
        assert abs(counts[0] - counts[1]) <= 2
    assert realtext.split_examples(pairs, seed=3, max_examples=60) == splits
    assert realtext.split_examples(pairs, seed=4, max_examples=60) != splits


def test_written_files_are_label_tab_text_that_looptrain_reads(tmp_path):
    pairs = realtext.dedupe([("pos", "great\tfilm"), ("neg", "bad\r\nfilm")] * 3
                            + [("pos", f"ok {i}") for i in range(8)])
    splits = realtext.split_examples(pairs, seed=1)
    out = realtext.write_set(tmp_path / "set", splits, {"name": "set"})
    for name, part in splits.items():
        examples = read_examples(out / f"{name}.txt")
        assert list(zip(examples.labels, examples.texts)) == part
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["counts"] == {name: len(part) for name, part in splits.items()}


def test_every_source_is_pinned_with_checksums():
    for source in realtext.SOURCES.values():
        assert source.archive.startswith(f"{source.package}-{source.version}")
        assert len(source.sha256) == 64 and all(len(m.sha256) == 64 for m in source.members)
