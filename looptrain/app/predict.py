"""Prediction: raw texts -> labels and probabilities, with a run's model, vocabulary and labels.

Texts go through exactly the training encoding (`data.text.encode_texts`: unknown characters
dropped, post-padding/truncation to `seq_length`), so a text with no known character becomes all
padding and still gets the model's (defined, if uninformative) answer. Input files and standard
input are read like data files: UTF-8, one text per line (ended by `\\n`, `\\r\\n` or `\\r`), a
leading BOM removed (one anywhere else is an error); an empty (or blank) line is an error naming
the line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from looptrain.data.text import BOM, encode_texts, split_lines
from looptrain.errors import UserError
from looptrain.app.trained import TrainedModel, load_trained

_BATCH = 256  # texts encoded and run per call: bounds memory for large input files


@dataclass(frozen=True)
class Texts:
    """Input texts and where each came from, for error messages and notes."""

    texts: list[str]
    origins: list[str]  # "argument 2", "news.txt:17", "<stdin>:3"


@dataclass(frozen=True)
class Prediction:
    """The most probable label of one text, all class probabilities, and how much text was used."""

    label: str
    probabilities: dict[str, float]  # label -> probability, most probable first
    characters_used: int  # known characters within seq_length; 0 = the text encoded to padding


def texts_from_arguments(arguments: list[str]) -> Texts:
    """Texts given on the command line, one per argument.

    Raises:
        UserError: an argument is empty or blank.
    """
    origins = [f"argument {i}" for i in range(1, len(arguments) + 1)]
    return _checked(Texts(list(arguments), origins))


def texts_from_bytes(raw: bytes, name: str) -> Texts:
    """Texts from a file's or standard input's bytes, one per line (see the module docstring).

    Raises:
        UserError: no lines at all, or invalid UTF-8 or an empty line (naming `name` and the line).
    """
    lines = split_lines(raw)
    if not lines:
        raise UserError(f"{name}: no texts; give TEXT arguments, --file F, or one text per line on "
                        f"standard input")
    texts = []
    for number, line in enumerate(lines, start=1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UserError(f"{name}:{number}: not valid UTF-8 (byte {exc.start}); "
                            f"re-encode the input as UTF-8") from None
        if BOM in text:
            raise UserError(f"{name}:{number}: a byte-order mark (U+FEFF) inside the input, where two "
                            f"files were probably joined; remove it")
        texts.append(text)
    return _checked(Texts(texts, [f"{name}:{n}" for n in range(1, len(texts) + 1)]))


def texts_from_file(path: str | Path) -> Texts:
    """Texts from a file, one per line.

    Raises:
        UserError: the file cannot be read, or see `texts_from_bytes`.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read --file {path}: {exc.strerror}") from None
    return texts_from_bytes(raw, str(path))


def _checked(texts: Texts) -> Texts:
    for text, origin in zip(texts.texts, texts.origins):
        if not text.strip():
            raise UserError(f"{origin}: empty text; give one non-empty text per line")
    return texts


class Predictor:
    """Runs a trained model on raw texts, batch by batch, with one compiled function."""

    def __init__(self, trained: TrainedModel):
        self.trained = trained
        self.labels = trained.labels
        model, seq_length = trained.model, trained.config.data.seq_length
        self._probabilities = tf.function(
            lambda ids: tf.nn.softmax(model(ids, training=False), axis=-1),
            input_signature=[tf.TensorSpec([None, seq_length], tf.int32)])

    @classmethod
    def from_run(cls, run_dir: str | Path, *, checkpoint: str = "best") -> "Predictor":
        return cls(load_trained(run_dir, checkpoint=checkpoint))

    def encode(self, texts: list[str]) -> np.ndarray:
        """Token ids `[len(texts), seq_length]`, exactly as training encodes them."""
        return encode_texts(texts, self.trained.vocab, self.trained.config.data.seq_length)

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """Class probabilities `[len(texts), num_classes]` in `labels` order."""
        out = np.zeros((len(texts), len(self.labels)), np.float32)
        for start in range(0, len(texts), _BATCH):
            out[start:start + _BATCH] = self._probabilities(self.encode(texts[start:start + _BATCH]))
        return out

    def predict(self, texts: list[str], *, top_k: int | None = None) -> list[Prediction]:
        """The prediction for each text; `probabilities` keeps the `top_k` most probable (all if None)."""
        k = len(self.labels) if top_k is None else top_k
        predictions = []
        for start in range(0, len(texts), _BATCH):
            batch = texts[start:start + _BATCH]
            ids = self.encode(batch)
            probabilities = self._probabilities(ids).numpy()
            used = np.count_nonzero(ids, axis=1)
            for row, count in zip(probabilities, used):
                order = np.argsort(-row, kind="stable")[:k]
                predictions.append(Prediction(
                    label=self.labels[int(np.argmax(row))],
                    probabilities={self.labels[i]: float(row[i]) for i in order},
                    characters_used=int(count)))
        return predictions


def format_prediction(text: str, prediction: Prediction, *, top_k: int | None, as_json: bool) -> str:
    """One output line for one text.

    Plain: the label; with `top_k`, tab-separated `label probability` pairs follow it (so `cut -f1`
    still gives the labels). JSON: the text, label, probabilities (top k, or all) and characters used.
    """
    if as_json:
        return json.dumps({"text": text, "label": prediction.label,
                           "probabilities": prediction.probabilities,
                           "characters_used": prediction.characters_used}, ensure_ascii=False)
    if not top_k:
        return prediction.label
    pairs = [f"{label} {p:.4f}" for label, p in prediction.probabilities.items()]
    return "\t".join([prediction.label, *pairs])
