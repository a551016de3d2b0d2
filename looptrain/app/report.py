"""The classification report: per-class precision/recall/F1/support and their averages, computed from
a confusion matrix, and its three renderings (JSON dict, plain text, rich tables).

Everything derives from the confusion matrix (rows = true labels, columns = predicted labels), which
the evaluation accumulates batch by batch, so a report never needs the predictions held in memory.
A precision or recall whose denominator is 0 (a class never predicted, or absent from the split) is
reported as 0, as scikit-learn does by default.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.cells import cell_len
from rich.table import Table


@dataclass(frozen=True)
class Report:
    """A classification report of one split, JSON-ready via `to_dict`."""

    split: str
    checkpoint: str
    loss: float
    labels: list[str]
    confusion: np.ndarray  # int64 [num_classes, num_classes], rows = true labels
    seconds: float

    @property
    def num_examples(self) -> int:
        return int(self.confusion.sum())

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.confusion) / max(self.num_examples, 1))

    def per_class(self) -> list[dict]:
        """`{label, precision, recall, f1, support}` for every label, in `labels` order."""
        precision, recall, f1, support = per_class_scores(self.confusion)
        return [{"label": label, "precision": float(p), "recall": float(r), "f1": float(f),
                 "support": int(s)}
                for label, p, r, f, s in zip(self.labels, precision, recall, f1, support)]

    def averages(self) -> dict[str, dict]:
        """`macro_avg` (plain mean over classes) and `weighted_avg` (weighted by support)."""
        precision, recall, f1, support = per_class_scores(self.confusion)
        weights = support / max(support.sum(), 1)
        out = {}
        for name, w in (("macro_avg", np.full(len(support), 1 / len(support))),
                        ("weighted_avg", weights)):
            out[name] = {"precision": float(w @ precision), "recall": float(w @ recall),
                         "f1": float(w @ f1), "support": int(support.sum())}
        return out

    def to_dict(self) -> dict:
        """The `report.json` content."""
        return {"split": self.split, "checkpoint": self.checkpoint, "num_examples": self.num_examples,
                "accuracy": self.accuracy, "loss": self.loss, "labels": list(self.labels),
                "per_class": self.per_class(), **self.averages(),
                "confusion_matrix": self.confusion.tolist(), "seconds": self.seconds}


def per_class_scores(confusion: np.ndarray) -> tuple[np.ndarray, ...]:
    """Precision, recall, F1 and support per class from a confusion matrix (rows = true labels)."""
    confusion = np.asarray(confusion, dtype=np.float64)
    correct = np.diag(confusion)
    support, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    precision = np.divide(correct, predicted, out=np.zeros_like(correct), where=predicted > 0)
    recall = np.divide(correct, support, out=np.zeros_like(correct), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(correct), where=total > 0)
    return precision, recall, f1, support.astype(np.int64)


def _rows(report: Report) -> list[tuple[str, str, str, str, str]]:
    rows = [(c["label"], f"{c['precision']:.4f}", f"{c['recall']:.4f}", f"{c['f1']:.4f}",
             str(c["support"])) for c in report.per_class()]
    for name, avg in report.averages().items():
        rows.append((name.replace("_avg", " avg"), f"{avg['precision']:.4f}", f"{avg['recall']:.4f}",
                     f"{avg['f1']:.4f}", str(avg["support"])))
    return rows


def summary_line(report: Report) -> str:
    return (f"{report.split} loss {report.loss:.4f}  accuracy {report.accuracy:.4f}  "
            f"({report.num_examples} examples, checkpoint {report.checkpoint}, "
            f"time used {report.seconds:.1f}s)")


def format_text(report: Report) -> str:
    """The readable `report.txt`: summary line, per-class table, confusion matrix with a legend."""
    header = ("label", "precision", "recall", "f1", "support")
    rows = [header, *_rows(report)]
    widths = [max(_width(row[i]) for row in rows) for i in range(len(header))]
    lines = [summary_line(report), ""]
    for i, row in enumerate(rows):
        if i == len(rows) - 2:
            lines.append("")  # a blank line before the averages, as in scikit-learn's report
        lines.append("  ".join(_pad(cell, w, left=j == 0) for j, (cell, w) in enumerate(zip(row, widths))))
    lines += ["", "confusion matrix (rows: true label, columns: predicted label; label numbers as in "
              "labels.txt, counting from 0):", ""]
    n = len(report.labels)
    cell = max(len(str(int(report.confusion.max()))), len(str(n - 1)))
    name_width = max(_width(label) for label in report.labels)
    lines.append(" " * (name_width + 6) + " ".join(f"{j:>{cell}}" for j in range(n)))
    for i, label in enumerate(report.labels):
        counts = " ".join(f"{int(v):>{cell}}" for v in report.confusion[i])
        lines.append(f"{_pad(label, name_width, left=True)} {i:>3}  {counts}")
    return "\n".join(lines) + "\n"


def _width(text: str) -> int:
    """Terminal columns of `text`: East Asian wide characters take two."""
    return cell_len(text)


def _pad(text: str, width: int, *, left: bool) -> str:
    fill = " " * (width - _width(text))
    return text + fill if left else fill + text


def rich_tables(report: Report) -> list[Table]:
    """The per-class metrics and the confusion matrix as rich tables for the terminal."""
    metrics = Table(title=f"{report.split}: per-class metrics", title_justify="left")
    for j, name in enumerate(("label", "precision", "recall", "f1", "support")):
        metrics.add_column(name, justify="left" if j == 0 else "right")
    rows = _rows(report)
    for i, row in enumerate(rows):
        metrics.add_row(*row, end_section=i == len(rows) - 3)
    matrix = Table(title=f"{report.split}: confusion matrix (rows true, columns predicted)",
                   title_justify="left")
    matrix.add_column("true \\ predicted")
    for j in range(len(report.labels)):
        matrix.add_column(str(j), justify="right")
    for i, label in enumerate(report.labels):
        cells = [f"[bold]{v}[/bold]" if i == j else ("[dim]0[/dim]" if v == 0 else str(v))
                 for j, v in enumerate(int(c) for c in report.confusion[i])]
        matrix.add_row(f"{i} {label}", *cells)
    return [metrics, matrix]


def markdown(report: Report) -> str:
    """The report as Markdown for TensorBoard's text dashboard (with the label-number legend)."""
    lines = [f"**{summary_line(report)}**", "",
             "| # | label | precision | recall | f1 | support |", "|---|---|---|---|---|---|"]
    for i, row in enumerate(_rows(report)):
        number = str(i) if i < len(report.labels) else ""
        lines.append(f"| {number} | " + " | ".join(row) + " |")
    return "\n".join(lines)
