"""Evaluation report: metrics from a streamed confusion matrix, report files, TensorBoard image/text."""

import contextlib
import io
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from looptrain.app import report_image
from looptrain.cli import evaluate_main, run_main
from looptrain.data.corpus import load_corpus
from looptrain.data.pipeline import make_eval_dataset
from looptrain.app.evaluation import ConfusionEvaluator
from looptrain.app.report import Report, format_text, per_class_scores
from looptrain.app.report_image import axis_names, confusion_matrix_image
from looptrain.app.trained import load_trained


@pytest.fixture(scope="module")
def evaluated(trained_run, tmp_path_factory):
    """A copy of the shared run, evaluated through the script's entry point; (run, stdout)."""
    run = tmp_path_factory.mktemp("evaluated") / "run"
    shutil.copytree(trained_run, run)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert run_main(evaluate_main, ["--run-dir", str(run)]) == 0
    return run, out.getvalue()


def _model_confusion(run, split="test"):
    """The confusion matrix computed independently: all predictions at once, counted with numpy."""
    trained = load_trained(run)
    config = trained.config
    corpus = load_corpus(config.data.data_dir, seq_length=config.data.seq_length,
                         vocab_size=config.data.vocab_size, vocab=trained.vocab,
                         labels=trained.labels, splits=(split,))
    x, y = corpus.splits[split]
    predicted = np.argmax(trained.model(x, training=False).numpy(), axis=1)
    expected = np.zeros((len(trained.labels),) * 2, np.int64)
    np.add.at(expected, (y, predicted), 1)
    return expected, trained


def test_report_json_has_the_documented_keys_and_consistent_numbers(evaluated):
    run, _ = evaluated
    report = json.loads((run / "eval" / "report.json").read_text(encoding="utf-8"))
    assert {"accuracy", "loss", "labels", "per_class", "macro_avg", "weighted_avg",
            "confusion_matrix"} <= set(report)
    confusion = np.array(report["confusion_matrix"])
    labels = (run / "labels.txt").read_text(encoding="utf-8").split()
    assert report["labels"] == labels and confusion.shape == (10, 10)
    assert report["accuracy"] == np.trace(confusion) / confusion.sum()
    assert confusion.sum() == report["num_examples"] == 60
    assert report["accuracy"] > 0.3  # the tiny model learned something

    expected, _ = _model_confusion(run)
    np.testing.assert_array_equal(confusion, expected)  # streamed batches == one big batch
    rows = report["per_class"]
    assert [r["label"] for r in rows] == labels
    assert [r["support"] for r in rows] == confusion.sum(axis=1).tolist()
    i = int(np.argmax(np.diag(confusion)))
    assert rows[i]["precision"] == pytest.approx(confusion[i, i] / confusion[:, i].sum())
    assert rows[i]["recall"] == pytest.approx(confusion[i, i] / confusion[i].sum())
    assert report["macro_avg"]["f1"] == pytest.approx(np.mean([r["f1"] for r in rows]))
    # Weighted recall is accuracy.
    assert report["weighted_avg"]["recall"] == pytest.approx(report["accuracy"])


def test_terminal_and_text_report(evaluated):
    run, out = evaluated
    for needle in ("per-class metrics", "macro avg", "weighted avg", "confusion matrix",
                   "test loss", "accuracy", "time used", "report.json"):
        assert needle in out
    text = (run / "eval" / "report.txt").read_text(encoding="utf-8")
    assert text.startswith("test loss") and "weighted avg" in text
    assert all(label in text for label in (run / "labels.txt").read_text(encoding="utf-8").split())


def test_tensorboard_gets_the_confusion_image_and_report_text(evaluated):
    run, _ = evaluated
    images, texts, scalars = {}, {}, {}
    for path in (run / "logs" / "test").glob("events.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                tensor = tf.make_ndarray(value.tensor)
                kind = value.metadata.plugin_data.plugin_name
                {"images": images, "text": texts, "scalars": scalars}[kind][value.tag] = (event.step, tensor)
    (tag, (step, tensor)), = images.items()
    assert "confusion" in tag and step == json.loads((run / "best" / "best.json").read_text())["step"]
    # TensorBoard's copy is drawn for its ~320-pixel card (shown as drawn, not scaled down), the
    # report's PNG for a page; both the same matrix.
    card = tf.io.decode_png(tensor[2]).numpy()
    page = tf.io.decode_png(tf.io.read_file(str(run / "eval" / "confusion_matrix.png"))).numpy()
    assert 300 <= card.shape[1] <= 360 and page.shape[1] >= 800, (card.shape, page.shape)
    text = texts["report"][1].item().decode()
    assert "体育" in text and "macro avg" in text
    if not axis_names(["体育"])[1]:  # no CJK font: the image numbers the labels, the text says which
        assert "0 = 体育" in text
    assert scalars["accuracy"][1] == pytest.approx(
        json.loads((run / "eval" / "report.json").read_text())["accuracy"])


def test_val_split_report_gets_its_own_files(evaluated, capsys):
    run, _ = evaluated
    assert run_main(evaluate_main, ["--run-dir", str(run), "--split", "val"]) == 0
    report = json.loads((run / "eval" / "report.val.json").read_text(encoding="utf-8"))
    best = json.loads((run / "best" / "best.json").read_text())
    assert report["split"] == "val" and report["accuracy"] == pytest.approx(best["val_accuracy"])
    assert json.loads((run / "eval" / "report.json").read_text())["split"] == "test"


def test_confusion_evaluator_streams_partial_batches_with_one_trace(trained_run):
    expected, trained = _model_confusion(trained_run)
    config = trained.config
    corpus = load_corpus(config.data.data_dir, seq_length=config.data.seq_length,
                         vocab_size=config.data.vocab_size, vocab=trained.vocab,
                         labels=trained.labels, splits=("test",))
    evaluator = ConfusionEvaluator(trained.model, len(trained.labels))
    for _ in range(2):  # 60 = 8 * 7 + 4: a partial last batch; the matrix is reset per pass
        got = evaluator.evaluate(make_eval_dataset(corpus.splits["test"], batch_size=7))
        np.testing.assert_array_equal(got["confusion"].numpy(), expected)
    assert evaluator.evaluate.experimental_get_tracing_count() == 1


def test_scores_handle_classes_never_predicted_or_absent():
    # rows = true: class 2 is never predicted, class 1 never occurs.
    confusion = np.array([[3, 1, 0], [0, 0, 0], [1, 1, 0]])
    precision, recall, f1, support = per_class_scores(confusion)
    np.testing.assert_allclose(precision, [3 / 4, 0, 0])
    np.testing.assert_allclose(recall, [3 / 4, 0, 0])
    np.testing.assert_allclose(f1, [3 / 4, 0, 0])
    assert support.tolist() == [4, 0, 2]
    report = Report(split="test", checkpoint="c", loss=1.0, labels=["a", "b", "c"],
                    confusion=confusion, seconds=0.0)
    assert report.accuracy == 0.5
    assert report.averages()["weighted_avg"]["recall"] == pytest.approx(0.5)
    assert "macro avg" in format_text(report)


def _count_in_dark_cell(image: np.ndarray) -> bool:
    """Whether the darkest cell (the end of the Blues ramp) holds white ink: its count."""
    dark = np.all(np.abs(image.astype(int) - (8, 48, 107)) < 4, axis=2)
    rows, cols = np.nonzero(dark)
    box = image[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    return bool(np.any(np.all(box > 240, axis=2)))


def test_image_names_the_labels_where_a_font_draws_them():
    confusion = np.array([[50, 2], [7, 1000]])
    assert axis_names(["sports", "finance"]) == (["sports", "finance"], True)
    image = confusion_matrix_image(confusion, ["sports", "finance"], title="test")
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert image.shape[1] == 800  # TensorBoard's card shows it at its natural size
    assert _count_in_dark_cell(image)
    if report_image.font_for("体育财经") is None:
        pytest.skip("no CJK font installed (Debian: apt-get install fonts-wqy-microhei)")
    assert axis_names(["体育", "财经"]) == (["体育", "财经"], True)
    assert confusion_matrix_image(confusion, ["体育", "财经"], title="test").shape[1] == 800


def test_a_font_installed_after_matplotlib_cached_its_list_is_found(monkeypatch):
    # matplotlib rebuilds its cached font list only for a new matplotlib version: a font installed
    # later (the README's CJK font) must still be found. Here matplotlib's own DejaVu Sans file
    # plays the newly installed font.
    import copy

    from matplotlib import font_manager

    manager = copy.copy(font_manager.fontManager)
    manager.ttflist = []  # a stale list that knows no font drawing the text
    new_font = font_manager.findfont("DejaVu Sans", fallback_to_default=False)
    monkeypatch.setattr(font_manager, "fontManager", manager)
    monkeypatch.setattr(font_manager, "findSystemFonts", lambda *a, **k: [new_font])
    monkeypatch.setattr(report_image, "_rescanned", False)
    assert report_image.font_for("\u0416\u0438") is not None  # Cyrillic: DejaVu draws it
    assert any(f.fname == new_font for f in manager.ttflist)
    # Once per process: a text no font draws does not scan the system's fonts again.
    monkeypatch.setattr(font_manager, "findSystemFonts", lambda *a, **k: 1 / 0)
    assert report_image.font_for("\U0010fffd") is None


def test_image_numbers_the_labels_without_a_font_for_them(monkeypatch):
    # As on a machine without a CJK font: only ASCII can be drawn.
    monkeypatch.setattr(report_image, "font_for",
                        lambda text: "DejaVu Sans" if text.isascii() else None)
    confusion = np.array([[50, 2], [7, 1000]])
    assert axis_names(["体育", "finance"]) == (["0", "1"], False)
    numbered = confusion_matrix_image(confusion, ["体育", "财经"], title="test 体育")
    named = confusion_matrix_image(confusion, ["sports", "finance"], title="test")
    assert numbered.shape[1] == 800 and _count_in_dark_cell(numbered)
    assert numbered.shape[0] > named.shape[0]  # a line under the matrix points to the legend


def test_without_a_font_for_the_names_the_text_beside_the_image_is_the_legend(evaluated, monkeypatch):
    # As on a machine without a CJK font: the image numbers the labels, the TensorBoard text says
    # which number is which.
    monkeypatch.setattr(report_image, "font_for", lambda text: "DejaVu Sans" if text.isascii() else None)
    run, _ = evaluated
    assert run_main(evaluate_main, ["--run-dir", str(run), "--split", "val"]) == 0
    texts = [tf.make_ndarray(value.tensor).item().decode()
             for path in (run / "logs" / "val").glob("events.*")
             for event in tf.compat.v1.train.summary_iterator(str(path))
             for value in event.summary.value if value.metadata.plugin_data.plugin_name == "text"]
    labels = (run / "labels.txt").read_text(encoding="utf-8").split()
    assert any(f"0 = {labels[0]}, 1 = {labels[1]}" in text for text in texts)
