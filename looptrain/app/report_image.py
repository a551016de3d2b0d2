"""The confusion matrix as an RGB image, drawn with matplotlib (Agg), for TensorBoard and `RUN/eval/*.png`.

Cells are shaded by their share of the true-label row (so a rare class's errors show as clearly as a
frequent one's) and carry their absolute counts. The axes carry the label names when an installed
font can draw every one of them (Chinese names need a CJK font, e.g. Debian's `fonts-wqy-microhei`
or `fonts-noto-cjk`, found through matplotlib's font manager); otherwise they carry label numbers
(0 = first line of labels.txt) and the number -> name legend travels as text next to the image
(TensorBoard text summary, report.txt, terminal table), where the terminal's own fonts draw it.

The image is sized for TensorBoard, which shows an image at its natural size up to the card's
width: about 800 pixels wide, text of at least 11 pixels. More classes than a legible drawing holds
(about 110) get a plain heatmap of at most 2048 pixels a side instead (`MAX_PIXELS`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

_MAX_NAME = 20  # characters of a label name drawn on an axis
_DPI = 100  # so one point is 100/72 pixels: 11 pt is 15 px
_TEXT_PT, _TITLE_PT = 11, 12
_PAD = 12  # pixels
_DEFAULT_FAMILY = "DejaVu Sans"  # matplotlib's own font, always there
# A font that has a glyph for every code point but draws most as boxes: never "can draw" a name.
_PLACEHOLDER_FONTS = ("Last Resort",)
_INK, _FAINT = "#191919", "#a5a5a5"

# The drawn matrix costs 4 bytes per pixel while drawn and its cells are at least 44 pixels wide:
# 1000 classes would take gigabytes. Beyond this many pixels (about 110 classes) a plain heatmap
# is drawn instead.
MAX_PIXELS = 25_000_000
_HEATMAP = 2048  # pixels of the heatmap's side at most: beyond, each pixel sums a block of classes


@dataclass(frozen=True)
class _Style:
    """Sizes of one kind of picture: points of the text and title, pixels of the image's least
    width, of a cell (least, most, per digit of the largest count) and of one line of text."""

    pt: float
    title_pt: float
    width: int
    min_cell: int
    max_cell: int
    digit: int
    line: int
    subtitle: str
    note: str


# The report's file, looked at as it is: 11-point text in an image of 800 pixels or more.
PAGE = _Style(_TEXT_PT, _TITLE_PT, 800, 44, 90, 10, 20,
              "rows: true label   columns: predicted label   shade: share of the row",
              "labels numbered from 0 in labels.txt order (no font here draws their names): "
              "legend in report.txt")
# TensorBoard's image card, about 320 pixels wide (Images and Time Series alike) and scaling a
# wider image down to it: drawn at that width, so its 8-point (11-pixel) text is read as drawn.
CARD = _Style(8, 8.5, 320, 22, 32, 5, 15, "rows: true, columns: predicted",
              "numbered labels: legend in the report text")


@functools.lru_cache(maxsize=None)
def _charmap(path: str) -> frozenset[int]:
    from matplotlib.ft2font import FT2Font

    try:
        return frozenset(FT2Font(path).get_charmap())
    except (OSError, RuntimeError):  # an unreadable font file is no font
        return frozenset()


def font_for(text: str) -> str | None:
    """The family of an installed font that draws every character of `text`, or None.

    matplotlib's own DejaVu Sans when it can (Latin, Greek, Cyrillic, ...), else the first regular
    font matplotlib's font manager knows that can (a CJK font for Chinese names).
    """
    from matplotlib import font_manager

    needed = {ord(c) for c in text if not c.isspace()}
    fonts = sorted((f for f in font_manager.fontManager.ttflist
                    if f.style == "normal" and f.weight in (400, "normal", "regular")
                    and not f.name.startswith(_PLACEHOLDER_FONTS)),
                   key=lambda f: f.name != _DEFAULT_FAMILY)
    for font in fonts:
        if needed <= _charmap(font.fname):
            return font.name
    return font_for(text) if _add_new_system_fonts() else None


_rescanned = False


def _add_new_system_fonts() -> bool:
    """Adds the system fonts matplotlib's font manager does not know; True if there were any.

    matplotlib caches its font list and rebuilds the cache only for a new matplotlib version, so
    a CJK font installed after the first run (as the README says to) went unseen. Once per
    process, and only when no known font draws a text.
    """
    global _rescanned
    if _rescanned:
        return False
    _rescanned = True
    from matplotlib import font_manager

    manager = font_manager.fontManager
    known = {font.fname for font in manager.ttflist}
    added = False
    for path in font_manager.findSystemFonts():
        if path not in known:
            try:
                manager.addfont(path)
                added = True
            except (OSError, RuntimeError, ValueError):  # an unreadable font file is no font
                pass
    return added


def axis_names(labels: list[str]) -> tuple[list[str], bool]:
    """What the axes show: `(names, True)` when a font draws every label, else `(numbers, False)`."""
    if font_for("".join(labels)) is not None:
        return [label if len(label) <= _MAX_NAME else label[:_MAX_NAME - 1] + "~"
                for label in labels], True
    return [str(i) for i in range(len(labels))], False


def _drawable(text: str) -> str:
    """`text` with the characters no font can draw replaced by `?`."""
    return "".join(c if c.isspace() or font_for(c) else "?" for c in text)


class _Figure:
    """A matplotlib figure of a given pixel size, drawn off screen (no pyplot, no global backend)."""

    def __init__(self, width: int, height: int, family: str):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.width, self.height = width, height
        self.figure = Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI, facecolor="white")
        self.canvas = FigureCanvasAgg(self.figure)
        # DejaVu Sans first, then the font that has the names' glyphs (matplotlib falls back per glyph).
        self.family = [_DEFAULT_FAMILY] + ([family] if family != _DEFAULT_FAMILY else [])

    def axes(self, top: int, left: int, height: int, width: int):
        """Axes whose box is `height` x `width` pixels with its top-left corner at (top, left)."""
        return self.figure.add_axes((left / self.width, 1 - (top + height) / self.height,
                                     width / self.width, height / self.height))

    def text(self, text: str, y: int, x: int, size: float = _TEXT_PT, color: str = _INK) -> None:
        """`text` with its top-left corner at pixel (y, x)."""
        self.figure.text(x / self.width, 1 - y / self.height, text, fontsize=size, va="top",
                         ha="left", color=color, family=self.family)

    def pixels(self) -> np.ndarray:
        self.canvas.draw()
        return np.asarray(self.canvas.buffer_rgba())[..., :3].copy()


def text_width(text: str, size: float = _TEXT_PT, family: str = _DEFAULT_FAMILY) -> float:
    """Pixels `text` takes on one line at `size` points."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    families = [_DEFAULT_FAMILY] + ([family] if family != _DEFAULT_FAMILY else [])
    width, _, _ = TextToPath().get_text_width_height_descent(
        text, FontProperties(family=families, size=size), ismath=False)
    return width * _DPI / 72


def confusion_matrix_image(confusion: np.ndarray, labels: list[str], *, title: str,
                           style: _Style = PAGE) -> np.ndarray:
    """Draws a confusion matrix (rows = true labels) as a uint8 `[height, width, 3]` image.

    Args:
        confusion: integer counts `[num_classes, num_classes]`.
        labels: class names in row order; drawn when a font has their glyphs, else numbered
            (`axis_names`).
        title: the first line of the image (characters no font draws become `?`).
        style: `PAGE` (the report's PNG) or `CARD` (TensorBoard's image card).

    Returns:
        The RGB pixels, `style.width` wide (800 or 320) for up to ~10 classes, wider for more;
        beyond `MAX_PIXELS` a heatmap of at most 2048 pixels a side.
    """
    confusion = np.asarray(confusion, dtype=np.int64)
    names, named = axis_names(labels)
    family = (font_for("".join(names)) if named else None) or _DEFAULT_FAMILY
    title = _drawable(title)
    note = "" if named else style.note
    layout = _Layout.of(confusion, names, (title, style.subtitle, note), family, style)
    if layout.height * layout.width > MAX_PIXELS:  # too many classes to name and count legibly
        return _heatmap(confusion, title)
    fig = _Figure(layout.width, layout.height, family)
    fig.text(title, _PAD, _PAD, style.title_pt)
    fig.text(style.subtitle, _PAD + style.line + 4, _PAD, style.pt)
    if note:
        fig.text(note, layout.height - _PAD - style.line + 2, _PAD, style.pt, color=_FAINT)
    ax = fig.axes(layout.top, layout.left, layout.n * layout.cell, layout.n * layout.cell)
    _cells(ax, confusion, fig.family, style.pt)
    _axes(ax, names, layout, fig.family, style.pt)
    return fig.pixels()


@dataclass(frozen=True)
class _Layout:
    """Pixel geometry of the image: the matrix at (top, left), cells of `cell` pixels."""

    n: int
    cell: int
    rotate_columns: bool  # column names too wide for a cell are drawn reading upwards
    top: int
    left: int
    height: int
    width: int

    @classmethod
    def of(cls, confusion: np.ndarray, names: list[str], texts: tuple[str, ...],
           family: str, style: _Style) -> "_Layout":
        n, line = len(names), style.line  # pixels of one line of text
        digits = len(str(int(confusion.max(initial=0))))
        # At least the largest count plus a margin; small matrices get bigger cells, up to the most.
        cell = max(style.min_cell, digits * style.digit + style.digit + 4,
                   min(style.max_cell, style.max_cell * 6 // max(n, 1)))
        name_w = int(max(text_width(name, style.pt, family) for name in names)) + 1
        rotate = name_w > cell - 6
        column_h = name_w if rotate else line
        top = _PAD + 2 * line + line * 4 // 5 + _PAD
        left = _PAD + line + 8 + name_w + 8
        bottom = 8 + column_h + 8 + line + (line + _PAD if texts[-1] else 0) + _PAD
        texts_w = max(text_width(t, style.title_pt if i == 0 else style.pt, family)
                      for i, t in enumerate(texts) if t)
        width = max(style.width, left + n * cell + _PAD, int(texts_w) + 2 * _PAD)
        # Centre the matrix when the image is wider than it needs (a few classes in 800 pixels).
        left += (width - (left + n * cell + _PAD)) // 2
        return cls(n, cell, rotate, top, left, top + n * cell + bottom, width)


def _cells(ax, confusion: np.ndarray, family: list[str], pt: float) -> None:
    """Shaded cells with their counts (white on dark, faint zeros), a white gap between cells."""
    n = len(confusion)
    rows = confusion.sum(axis=1, keepdims=True)
    fraction = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    ax.imshow(fraction, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto")
    for i in range(n):
        for j in range(n):
            count = int(confusion[i, j])
            color = _FAINT if count == 0 else ("white" if fraction[i, j] > 0.5 else _INK)
            ax.text(j, i, str(count), ha="center", va="center", color=color, fontsize=pt,
                    family=family)
    ax.set_xticks(np.arange(n + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(n + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    for spine in ax.spines.values():
        spine.set_color("#c8c8c8")


def _axes(ax, names: list[str], layout: _Layout, family: list[str], pt: float) -> None:
    """Row names at the left, column names below (reading upwards when wide), the axis titles."""
    n = layout.n
    ax.set_xticks(range(n), names, rotation=90 if layout.rotate_columns else 0,
                  fontsize=pt, family=family)
    ax.set_yticks(range(n), names, fontsize=pt, family=family)
    ax.tick_params(which="major", length=3, pad=4)
    ax.set_xlabel("predicted label", fontsize=pt, color=_INK, labelpad=8)
    ax.set_ylabel("true label", fontsize=pt, color=_INK, labelpad=8)


def _heatmap(confusion: np.ndarray, title: str) -> np.ndarray:
    """The matrix as shades only, at most `_HEATMAP` pixels a side (blocks of classes summed)."""
    n = len(confusion)
    bins = min(n, _HEATMAP)
    starts = np.linspace(0, n, bins + 1).astype(np.int64)[:-1]
    block = np.add.reduceat(np.add.reduceat(confusion, starts, axis=0), starts, axis=1)
    rows = block.sum(axis=1, keepdims=True)
    fraction = np.divide(block, rows, out=np.zeros(block.shape), where=rows > 0)
    side = max(1, _HEATMAP // bins) * bins
    lines = [title, f"{n} classes: too many to name and count here (see report.txt); rows: true "
                    f"label, columns: predicted, shade: share of the row"]
    if bins < n:
        lines.append(f"each pixel sums a block of about {n / bins:.1f} x {n / bins:.1f} classes")
    top = _PAD + 22 * len(lines) + _PAD
    left = _PAD + 20 + 50  # the axis title and class numbers
    width = max(left + side + _PAD + 24, int(max(text_width(t) for t in lines)) + 2 * _PAD)
    fig = _Figure(width, top + side + 50 + _PAD, _DEFAULT_FAMILY)
    for i, line in enumerate(lines):
        fig.text(line, _PAD + 22 * i, _PAD, _TITLE_PT if i == 0 else _TEXT_PT)
    ax = fig.axes(top, left, side, side)
    # extent: the ticks read as class numbers, whatever the blocks
    ax.imshow(fraction, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest",
              extent=(0, n, n, 0), aspect="auto")
    ax.tick_params(labelsize=_TEXT_PT)
    ax.set_xlabel("predicted label (class number)", fontsize=_TEXT_PT)
    ax.set_ylabel("true label (class number)", fontsize=_TEXT_PT)
    return fig.pixels()
