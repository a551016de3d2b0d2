"""The confusion matrix as an RGB image (numpy only), for TensorBoard and `RUN/eval/*.png`.

Cells are shaded by their share of the true-label row (so a rare class's errors show as clearly as a
frequent one's) and carry their absolute counts. Text is drawn with the embedded ASCII bitmap font
(`bitmap_font`): no CJK font can be assumed on the machine, and without matplotlib or PIL a TrueType
font cannot be rasterised anyway. So when every label name is printable ASCII the axes carry the
names; otherwise they carry label numbers (0 = first line of labels.txt) and the number -> name
legend travels as text next to the image (TensorBoard text summary, report.txt, terminal table).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from looptrain.app import bitmap_font

_MAX_NAME = 20  # characters of a label name drawn on an axis
_PAD = 8  # pixels, before scaling
# Stops of a white-to-dark-blue ramp (the ends of matplotlib's "Blues" colormap).
_RAMP = np.array([(247, 251, 255), (198, 219, 239), (107, 174, 214), (33, 113, 181), (8, 48, 107)],
                 dtype=np.float64)
_INK, _WHITE, _FAINT, _GRID = (25, 25, 25), (255, 255, 255), (165, 165, 165), (200, 200, 200)


def axis_names(labels: list[str]) -> tuple[list[str], bool]:
    """What the axes show: `(names, True)` when all labels are drawable, else `(numbers, False)`."""
    if all(bitmap_font.can_render(label) for label in labels):
        return [label if len(label) <= _MAX_NAME else label[:_MAX_NAME - 1] + "~"
                for label in labels], True
    return [str(i) for i in range(len(labels))], False


def _shade(fraction: np.ndarray) -> np.ndarray:
    positions = np.linspace(0.0, 1.0, len(_RAMP))
    return np.stack([np.interp(fraction, positions, _RAMP[:, c]) for c in range(3)], axis=-1)


class _Canvas:
    """A white RGB image with text drawing at a fixed integer scale."""

    def __init__(self, height: int, width: int, scale: int):
        self.pixels = np.full((height, width, 3), 255, dtype=np.uint8)
        self.scale = scale

    def text(self, text: str, y: int, x: int, color=_INK, *, rotate: bool = False) -> None:
        """Draws `text` with its top-left corner at (y, x); `rotate` turns it to read upwards."""
        mask = bitmap_font.render(text, self.scale)
        if rotate:
            mask = np.rot90(mask)
        self.pixels[y:y + mask.shape[0], x:x + mask.shape[1]][mask] = color

    def size(self, text: str) -> tuple[int, int]:
        return bitmap_font.text_size(text, self.scale)


def confusion_matrix_image(confusion: np.ndarray, labels: list[str], *, title: str,
                           scale: int = 2) -> np.ndarray:
    """Draws a confusion matrix (rows = true labels) as a uint8 `[height, width, 3]` image.

    Args:
        confusion: integer counts `[num_classes, num_classes]`.
        labels: class names in row order; drawn when printable ASCII, else numbered (`axis_names`).
        title: the first line of the image (ASCII; other characters are replaced by `?`).
        scale: pixels per font pixel; 2 keeps counts legible when TensorBoard shrinks the image.
    """
    confusion = np.asarray(confusion, dtype=np.int64)
    names, named = axis_names(labels)
    title = "".join(c if bitmap_font.can_render(c) else "?" for c in title)
    subtitle = "rows: true label   columns: predicted label   shade: share of the row"
    note = ("" if named else
            "labels are numbered in labels.txt order from 0; the names are in the report text")
    layout = _Layout.of(confusion, names, (title, subtitle, note), scale)
    canvas = _Canvas(layout.height, layout.width, scale)
    pad, line_h = layout.pad, layout.line_h
    canvas.text(title, pad, pad)
    canvas.text(subtitle, pad + line_h + pad // 2, pad)
    _cells(canvas, confusion, layout)
    _axes(canvas, names, layout)
    if note:
        canvas.text(note, layout.axis_title_y + line_h + pad, pad)
    return canvas.pixels


@dataclass(frozen=True)
class _Layout:
    """Pixel geometry of the image: matrix at (top, left), cells of `cell` pixels."""

    n: int
    scale: int
    pad: int
    line_h: int
    cell: int
    name_w: int
    rotate_columns: bool  # column names too wide for a cell are drawn reading upwards
    top: int
    left: int
    height: int
    width: int

    @classmethod
    def of(cls, confusion: np.ndarray, names: list[str], texts: tuple[str, ...], s: int) -> "_Layout":
        n, pad = len(names), _PAD * s
        line_h = bitmap_font.text_size("0", s)[0]
        digits = len(str(int(confusion.max(initial=0))))
        cell = max(22 * s, digits * bitmap_font.ADVANCE * s + 6 * s)  # the largest count fits
        name_w = max(bitmap_font.text_size(name, s)[1] for name in names)
        rotate = name_w > cell - 2 * s
        column_h = name_w if rotate else line_h
        top = pad + 2 * line_h + pad + pad // 2
        left = pad + line_h + pad + name_w + pad
        note_h = pad + line_h if texts[-1] else 0
        height = top + n * cell + pad + column_h + pad + line_h + note_h + pad
        texts_w = max(bitmap_font.text_size(t, s)[1] for t in texts)
        width = max(left + n * cell + pad, texts_w + 2 * pad)
        return cls(n, s, pad, line_h, cell, name_w, rotate, top, left, height, width)

    @property
    def axis_title_y(self) -> int:
        column_h = self.name_w if self.rotate_columns else self.line_h
        return self.top + self.n * self.cell + self.pad + column_h + self.pad


def _axes(canvas: _Canvas, names: list[str], lay: _Layout) -> None:
    """Row names right-aligned at the left, column names below, and the two axis titles."""
    bottom = lay.top + lay.n * lay.cell
    for i, name in enumerate(names):
        h, w = canvas.size(name)
        # + scale: the glyphs' two descender rows are mostly empty, so centre the 7 upper rows.
        canvas.text(name, lay.top + i * lay.cell + (lay.cell - h) // 2 + lay.scale,
                    lay.left - lay.pad - w)
        center = lay.left + i * lay.cell + lay.cell // 2
        if lay.rotate_columns:  # reads upwards, ending at the matrix
            canvas.text(name, bottom + lay.pad, center - h // 2, rotate=True)
        else:
            canvas.text(name, bottom + lay.pad, center - w // 2)
    x_title, y_title = "predicted label", "true label"
    canvas.text(x_title, lay.axis_title_y, lay.left + (lay.n * lay.cell - canvas.size(x_title)[1]) // 2)
    canvas.text(y_title, lay.top + (lay.n * lay.cell - canvas.size(y_title)[1]) // 2, lay.pad,
                rotate=True)


def _cells(canvas: _Canvas, confusion: np.ndarray, lay: _Layout) -> None:
    """Shaded cells with their counts, a one-pixel white gap between cells, a grey frame."""
    n, cell, top, left = lay.n, lay.cell, lay.top, lay.left
    rows = confusion.sum(axis=1, keepdims=True)
    fraction = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    colors = _shade(fraction).astype(np.uint8)
    pixels = canvas.pixels
    pixels[top - 1:top + n * cell + 1, left - 1:left + n * cell + 1] = _GRID
    for i in range(n):
        for j in range(n):
            y, x = top + i * cell, left + j * cell
            pixels[y:y + cell, x:x + cell] = _WHITE
            pixels[y + 1:y + cell - 1, x + 1:x + cell - 1] = colors[i, j]
            count = str(int(confusion[i, j]))
            color = _FAINT if count == "0" else (_WHITE if fraction[i, j] > 0.5 else _INK)
            h, w = canvas.size(count)
            canvas.text(count, y + (cell - h) // 2 + lay.scale, x + (cell - w) // 2, color)
