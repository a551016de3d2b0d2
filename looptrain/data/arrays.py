"""Array data: `.npz` or `.npy` files of numbers (tabular rows, images) with integer class labels.

A data directory of arrays holds either `train.npz`, `val.npz` and `test.npz`, each with
- `x`: the examples, any numeric dtype, shape `[n, ...]` (the same per-example shape in every split);
  they are used as float32 exactly as stored, so scale them first (the generated images are in [0, 1]);
- `y`: the labels, integer class ids `0..C-1`, shape `[n]`;
- optionally, in `train.npz` only, `labels`: `C` class names (strings); without it the class names
  are the ids themselves ("0", "1", ...).
or, for data larger than memory, `.npy` files per split: `train_x.npy` (float32; memory-mapped,
read from disk a chunk of batches at a time) and `train_y.npy`, the same for `val` and `test`, and
optionally `labels.npy` (class names).
The number of classes is `len(labels)` when given, else `max(train y) + 1`. A val/test label outside
it is an error naming the file and the example. Files are read with `allow_pickle=False`.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from looptrain.errors import DataError

SPLITS = ("train", "val", "test")
# A classifier's output layer, confusion matrix and report grow with the classes (the matrix with
# their square); more than this is a mistake in the labels rather than a classification task.
MAX_CLASSES = 10_000
Splits = dict[str, tuple[np.ndarray, np.ndarray]]


def is_array_dir(data_dir: str | Path) -> bool:
    """True when `data_dir` holds `train.npz` or `train_x.npy` (array data) rather than text."""
    return (Path(data_dir) / "train.npz").is_file() or _is_npy_dir(data_dir)


def _is_npy_dir(data_dir: str | Path) -> bool:
    return (Path(data_dir) / "train_x.npy").is_file()


def load_arrays(data_dir: str | Path, *, labels: list[str] | None = None,
                splits: tuple[str, ...] = SPLITS) -> tuple[list[str], Splits]:
    """Reads and checks the requested splits of an array data directory.

    Args:
        data_dir: directory holding `train.npz`, `val.npz`, `test.npz`.
        labels: the class names of an existing run (resume, evaluation); read from `train` if None.
        splits: which splits to read.

    Returns:
        The class names and `{split: (x float32 [n, ...], y int32 [n])}`.

    Raises:
        DataError: a missing or unreadable file, a missing or malformed array, or a label out of
            range, naming the file (and the example).
    """
    data_dir = Path(data_dir)
    read, suffix = (_read_npy, "_x.npy") if _is_npy_dir(data_dir) else (_read, ".npz")
    arrays = {name: read(data_dir / f"{name}{suffix}") for name in splits}
    if labels is None:
        train = arrays["train"] if "train" in arrays else read(data_dir / f"train{suffix}")
        labels = _class_names(data_dir / f"train{suffix}", train)
    out, shape = {}, None
    for name, (x, y, _) in arrays.items():
        path = data_dir / f"{name}{suffix}"
        if shape is not None and x.shape[1:] != shape[1]:
            raise DataError(f"{path}: examples have shape {list(x.shape[1:])}, but those of "
                            f"{shape[0]} have {list(shape[1])}; every split needs the same shape")
        shape = (path.name, x.shape[1:])
        _check_labels(path, y, len(labels))
        out[name] = (x, y)
    return labels, out


def _read(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """`(x float32, y int32, class names or None)` of one file, checked."""
    if not path.is_file():
        raise DataError(f"{path.parent}: no {path.name}; array data needs train.npz, val.npz and "
                        f"test.npz, each with arrays 'x' and 'y'")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # np.save's format under an .npz name
            raise DataError(f"{path}: one array in .npy format, not an .npz archive of 'x' and "
                            f"'y'; save it with np.savez(path, x=..., y=...)")
        with loaded as npz:
            missing = [key for key in ("x", "y") if key not in npz.files]
            if missing:
                held = ", ".join(npz.files) or "nothing"
                raise DataError(f"{path}: no array '{missing[0]}' (it holds {held}); save it with "
                                f"np.savez(path, x=..., y=...)")
            x, y = npz["x"], npz["y"]
            names = npz["labels"] if "labels" in npz.files else None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    return _check_x(path, x), _check_y(path, y, len(x)), names


def _read_npy(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """`(x memory-mapped float32, y int32, class names or None)` of one split's `.npy` files."""
    split = path.name.removesuffix("_x.npy")
    y_path, names_path = path.with_name(f"{split}_y.npy"), path.with_name("labels.npy")
    for needed in (path, y_path):
        if not needed.is_file():
            raise DataError(f"{path.parent}: no {needed.name}; .npy array data needs "
                            f"<split>_x.npy and <split>_y.npy for train, val and test")
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
        y = np.load(y_path, allow_pickle=False)
        names = np.load(names_path, allow_pickle=False) if names_path.is_file() else None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path.parent}: not readable .npy files ({exc})") from None
    if x.dtype != np.float32:
        raise DataError(f"{path}: dtype {x.dtype}; memory-mapped examples must be stored as float32 "
                        f"(np.save(path, x.astype(np.float32)))")
    if x.ndim < 2 or len(x) == 0 or 0 in x.shape[1:]:
        raise DataError(f"{path}: shape {list(x.shape)}; expected [examples, features...] with at "
                        f"least one example and one feature")
    for start in range(0, len(x), 1 << 16):  # NaN check a block at a time: bounded memory
        block = np.asarray(x[start:start + (1 << 16)])
        bad = ~np.isfinite(block.reshape(len(block), -1)).all(axis=1)
        if bad.any():
            raise DataError(f"{path}: x[{start + int(np.argmax(bad))}] holds NaN or infinity")
    return x, _check_y(y_path, y, len(x)), names


def _check_x(path: Path, x: np.ndarray) -> np.ndarray:
    if x.ndim < 2 or len(x) == 0 or 0 in x.shape[1:]:
        raise DataError(f"{path}: 'x' has shape {list(x.shape)}; expected [examples, features...] "
                        f"with at least one example and one feature")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise DataError(f"{path}: 'x' has dtype {x.dtype}; expected numbers")
    x = x.astype(np.float32)
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if bad.any():
        raise DataError(f"{path}: x[{int(np.argmax(bad))}] holds NaN or infinity; "
                        f"{int(bad.sum())} examples are not finite")
    return x


def _check_y(path: Path, y: np.ndarray, n: int) -> np.ndarray:
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{path}: 'y' must be a 1-D array of integer class ids, got dtype {y.dtype} "
                        f"shape {list(y.shape)}")
    if len(y) != n:
        raise DataError(f"{path}: 'x' has {n} examples but 'y' has {len(y)} labels")
    if y.min() < 0:
        i = int(np.argmax(y < 0))
        raise DataError(f"{path}: y[{i}] = {int(y[i])}; class ids start at 0")
    if y.max() >= MAX_CLASSES:  # before the cast to int32, which would wrap large ids silently
        i = int(np.argmax(y >= MAX_CLASSES))
        raise DataError(f"{path}: y[{i}] = {int(y[i])}; class ids must be below {MAX_CLASSES:,} "
                        f"(0..C-1 for C classes)")
    return y.astype(np.int32)


def _class_names(path: Path, train: tuple) -> list[str]:
    _, y, names = train
    if names is None:
        names = [str(i) for i in range(int(y.max()) + 1)]
    else:
        names = [str(name) for name in names.reshape(-1)]
        if len(names) > MAX_CLASSES:
            raise DataError(f"{path}: 'labels' has {len(names):,} class names; at most "
                            f"{MAX_CLASSES:,} classes are supported")
        if len(set(names)) != len(names) or any(not n.strip() or "\n" in n for n in names):
            raise DataError(f"{path}: 'labels' must be distinct, non-empty one-line class names")
    if len(names) < 2:
        raise DataError(f"{path}: {len(names)} class(es); a classifier needs at least two labels")
    return names


def _check_labels(path: Path, y: np.ndarray, num_classes: int) -> None:
    bad = np.flatnonzero((y < 0) | (y >= num_classes))
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{path}: y[{i}] = {int(y[i])} is not a class id of this run "
                        f"(0..{num_classes - 1}); labels must be integers in that range")
