"""Configuration: frozen dataclasses per concern, TOML files and command-line overrides.

Precedence, lowest first: dataclass defaults (the reference TextCNN) < TOML file < script flags <
`--set section.key=value`. Every value is checked against its field's type and range, and an unknown
section or key is an error naming it, so a typo never silently trains the wrong model.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from looptrain.errors import ConfigError


def _field(default, *, low=None, high=None, choices=None, pattern=None, doc=""):
    """A dataclass field carrying its validation bounds in metadata.

    `pattern` is `(regex, description)` for strings with a syntax, e.g. comma-separated widths.
    """
    return field(default=default, metadata={"low": low, "high": high, "choices": choices,
                                            "pattern": pattern, "doc": doc})


@dataclass(frozen=True)
class DataConfig:
    """Where the examples come from and how text becomes a fixed-length id sequence."""

    data_dir: str = _field("", doc="directory with train/val/test files; '' = embedded synthetic corpus")
    seq_length: int = _field(600, low=1, doc="characters per example after padding/truncation")
    vocab_size: int = _field(5000, low=2, doc="vocabulary size including <PAD> (id 0)")
    bucket_window: int = _field(0, low=0, doc="length bucketing: sort texts by length within windows "
                                              "of N batches, trim padding; 0 = off (RNNs: on)")
    embedded: str = _field("text", choices=("text", "images"),
                           doc="which generated data set data_dir = '' means: text corpus or images")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture. `name` selects a registered model; each model reads the fields it needs."""

    name: str = _field("textcnn", doc="registered model name (see README: Models)")
    embedding_dim: int = _field(64, low=1, doc="character embedding width")
    num_filters: int = _field(256, low=1, doc="convolution filters (TextCNN; MultiCNN per width; "
                                              "ConvNet's first block, doubled per block)")
    kernel_size: int = _field(5, low=1, doc="convolution width (TextCNN, ConvNet)")
    hidden_dim: int = _field(128, low=1, doc="dense layer width (TextCNN, TextRNN, BiRNN, MLP, ConvNet) "
                                             "and RNN units (TextRNN; BiRNN per direction)")
    dropout: float = _field(0.5, low=0.0, high=0.99, doc="dropout rate (probability of dropping)")
    rnn_cell: str = _field("lstm", choices=("lstm", "gru"), doc="TextRNN, BiRNN: recurrent cell")
    num_layers: int = _field(2, low=1, doc="stacked RNN layers (TextRNN, BiRNN), hidden layers (MLP), "
                                           "conv blocks (ConvNet)")
    l1: float = _field(0.0, low=0.0, doc="L1 penalty on every Dense/Conv/RNN kernel (fastText: tables)")
    l2: float = _field(0.0, low=0.0, doc="L2 penalty on every Dense/Conv/RNN kernel (fastText: tables)")
    kernel_sizes: str = _field("3,4,5", pattern=(r"[1-9][0-9]*(,[1-9][0-9]*)*",
                                                 "comma-separated positive integers like '3,4,5'"),
                               doc="MultiCNN: convolution widths")
    spatial_dropout: float = _field(0.0, low=0.0, high=0.99,
                                    doc="BiRNN: SpatialDropout1D rate on the embeddings")
    ngram_max: int = _field(3, low=1, high=8,
                            doc="fastText: hash character n-grams of orders 2..ngram_max (1 = none)")
    ngram_buckets: int = _field(100_000, low=1, doc="fastText: rows of the hashed n-gram table")
    char_ngram_max: int = _field(4, low=0, high=8, doc="tfidf, fasttext_ngrams: character n-grams "
                                                       "of orders 1..N (0 = none)")
    word_ngram_max: int = _field(0, low=0, high=4, doc="tfidf, fasttext_ngrams: word n-grams of orders "
                                                       "1..N (0 = none; for space-separated languages)")
    max_features: int = _field(200_000, low=1, doc="tfidf, fasttext_ngrams: n-gram vocabulary size "
                                                   "(those in most training texts)")
    min_df: int = _field(2, low=1, doc="tfidf, fasttext_ngrams: keep n-grams in at least N training texts")
    bag_hidden_dim: int = _field(0, low=0, doc="tfidf: ReLU hidden units; 0 = linear (logistic "
                                               "regression)")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and the cadence of evaluation, logging and checkpointing (all in steps)."""

    learning_rate: float = _field(1e-3, low=1e-12, doc="Adam learning rate (a schedule's peak)")
    batch_size: int = _field(64, low=1, doc="examples per training step (per optimizer update)")
    num_epochs: int = _field(10, low=1, doc="passes over the training split")
    max_steps: int = _field(0, low=0, doc="stop after this many steps; 0 = no limit")
    eval_every: int = _field(100, low=1, doc="evaluate on the validation split every N steps")
    checkpoint_every: int = _field(100, low=1, doc="write a checkpoint every N steps (and at the end)")
    log_every: int = _field(10, low=1, doc="write training scalars every N steps")
    patience: int = _field(1000, low=1, doc="stop after N steps without a better val accuracy")
    clip_norm: float = _field(0.0, low=0.0, doc="global-norm gradient clipping; 0 = off")
    keep_checkpoints: int = _field(5, low=1, doc="how many recent checkpoints to keep")
    seed: int = _field(42, low=0, doc="seed for weights, dropout and data shuffling")
    on_nan: str = _field("stop", choices=("stop", "skip"),
                         doc="non-finite loss/gradient: stop (keeping the last good checkpoint) or "
                             "skip the batch")
    deterministic: bool = _field(True, doc="TensorFlow op determinism (bit-identical reruns and resumes)")
    steps_per_loop: int = _field(100, low=1, doc="most steps per compiled call (calls also end at "
                                                  "every log, eval and checkpoint step)")
    jit_compile: str = _field("auto", choices=("auto", "on", "off"),
                              doc="XLA for the train/eval steps; auto = on with a GPU/TPU, except "
                                  "for RNNs and length-bucketed input (off on CPU: slower there)")
    strategy: str = _field("default", choices=("default", "mirrored", "multiworker"),
                           doc="tf.distribute: one device, the devices of this host, or several "
                               "workers (TF_CONFIG, see scripts/launch_local.py)")
    num_devices: int = _field(0, low=0, doc="devices for mirrored: the first N GPUs (0 = all), or N "
                                            "logical CPU devices on a host without GPUs")
    precision: str = _field("float32", choices=("float32", "mixed_float16", "mixed_bfloat16"),
                            doc="layer compute dtype; variables, logits and loss stay float32")
    # 1000, not 100: at every 100 steps the probe cost the tiny MLP of `make bench` ~12 % of its
    # speed (Keras' TensorBoard callback writes none by default).
    histogram_every: int = _field(
        1000, low=0, doc="write weight and gradient histograms every N steps; 0 = off")
    lr_schedule: str = _field("constant", choices=("constant", "exponential", "cosine"),
                              doc="learning-rate schedule")
    lr_decay_steps: int = _field(0, low=0, doc="exponential: steps per decay by lr_decay_rate; "
                                               "cosine: steps of the decay after warm-up")
    lr_decay_rate: float = _field(0.5, low=1e-6, high=1.0, doc="exponential: factor per lr_decay_steps")
    warmup_steps: int = _field(0, low=0, doc="cosine: linear warm-up steps from 0 to learning_rate")
    num_micro_batches: int = _field(1, low=1, doc="gradient accumulation: micro-batches per batch")
    label_smoothing: float = _field(0.0, low=0.0, high=0.99, doc="label smoothing of the training loss")
    class_weights: str = _field("", pattern=(r"|balanced|(\d+\.?\d*|\.\d+)(,(\d+\.?\d*|\.\d+))*",
                                             "'', 'balanced' or one non-negative number per class"),
                                doc="per-class loss weights: '', 'balanced' or '1,3.5,...'")
    eval_per_epoch: bool = _field(True, doc="evaluate at least once per epoch (eval_every capped at "
                                            "the steps per epoch: small data sets)")


@dataclass(frozen=True)
class Config:
    """The whole configuration of a run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    def replace(self, overrides: Mapping[str, Any], *, source: str = "override") -> "Config":
        """Returns a copy with dotted-key overrides (`{"train.batch_size": 32}`) applied and checked."""
        sections = self.to_dict()
        for key, value in overrides.items():
            section, name = _split_key(key, source)
            sections[section][name] = value
        return from_dict(sections, source=source)


_SECTION_CLASSES = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


def known_keys() -> list[str]:
    """All dotted keys, e.g. `train.batch_size`."""
    return [f"{s}.{f.name}" for s, cls in _SECTION_CLASSES.items() for f in dataclasses.fields(cls)]


def _split_key(key: str, source: str) -> tuple[str, str]:
    section, _, name = key.partition(".")
    cls = _SECTION_CLASSES.get(section)
    if cls is None or name not in {f.name for f in dataclasses.fields(cls)}:
        raise ConfigError(f"{source}: unknown config key '{key}' (known keys: {', '.join(known_keys())})")
    return section, name


def _check_value(fld: dataclasses.Field, value: Any, key: str, source: str) -> Any:
    """Type- and range-checks one value; ints are accepted where floats are expected."""
    expected = {"int": int, "float": float, "str": str, "bool": bool}[fld.type]
    ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise ConfigError(
            f"{source}: '{key}' must be {fld.type}, got {type(value).__name__} {value!r}")
    meta = fld.metadata
    if expected is float and not math.isfinite(value):
        raise ConfigError(f"{source}: '{key}' must be a finite number, got {value!r}")
    if meta.get("low") is not None and value < meta["low"]:
        raise ConfigError(f"{source}: '{key}' must be >= {meta['low']}, got {value!r}")
    if meta.get("high") is not None and value > meta["high"]:
        raise ConfigError(f"{source}: '{key}' must be <= {meta['high']}, got {value!r}")
    if meta.get("choices") and value not in meta["choices"]:
        raise ConfigError(f"{source}: '{key}' must be one of {list(meta['choices'])}, got {value!r}")
    if meta.get("pattern") and not re.fullmatch(meta["pattern"][0], value):
        raise ConfigError(f"{source}: '{key}' must be {meta['pattern'][1]}, got {value!r}")
    return value


def from_dict(sections: Mapping[str, Any], *, source: str = "config") -> Config:
    """Builds a checked `Config` from `{"data": {...}, "model": {...}, "train": {...}}`.

    Missing sections and keys keep their defaults.

    Raises:
        ConfigError: naming `source` and the offending key.
    """
    built = {}
    for section, values in sections.items():
        if section not in _SECTION_CLASSES:
            raise ConfigError(
                f"{source}: unknown config section '{section}' (known: {', '.join(_SECTION_CLASSES)})")
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: '{section}' must be a table of keys")
        cls = _SECTION_CLASSES[section]
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for name, value in values.items():
            key = f"{section}.{name}"
            if name not in fields:
                _split_key(key, source)  # raises with the list of known keys
            kwargs[name] = _check_value(fields[name], value, key, source)
        built[section] = cls(**kwargs)
    return Config(**built)


def load_toml(path: str | Path) -> Config:
    """Reads a TOML config file on top of the defaults.

    Raises:
        ConfigError: the file is missing, is not valid TOML, or has a bad key or value.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist (see configs/ for examples)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    try:
        sections = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return from_dict(sections, source=str(path))


def parse_set(assignments: list[str]) -> dict[str, Any]:
    """Parses `--set section.key=value` strings; values are TOML literals, else plain strings.

    `--set train.learning_rate=3e-4` gives a float, `--set model.name=textrnn` a string.
    """
    overrides = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. train.batch_size=32")
        key = key.strip()
        _split_key(key, f"--set {item}")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        overrides[key] = value
    return overrides


def load_json(path: str | Path) -> Config:
    """Reads a resolved config written by `save_json` (a run's `config.json`)."""
    path = Path(path)
    try:
        sections = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist: is this a looptrain run directory?") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable run config ({exc}); the run directory is damaged") from None
    return from_dict(sections, source=str(path))


# Keys a resumed run may change: cadence and stopping, and where the (same) data now lives.
# Everything else (architecture, vocabulary, batch size, seed, optimiser) is fixed by the checkpoint.
RESUMABLE_KEYS = frozenset({
    "data.data_dir", "train.num_epochs", "train.max_steps", "train.eval_every",
    "train.checkpoint_every", "train.log_every", "train.patience", "train.keep_checkpoints",
    "train.on_nan", "train.deterministic", "train.steps_per_loop", "train.jit_compile",
    "train.histogram_every", "train.strategy", "train.num_devices",
    "train.eval_per_epoch",
})


def resume_config(saved: Config, overrides: Mapping[str, Any], *, source: str) -> Config:
    """Applies overrides to a run's saved config, refusing any that would change a fixed key.

    Raises:
        ConfigError: an override changes a key outside `RESUMABLE_KEYS`, naming key, old and new.
    """
    current = {f"{s}.{k}": v for s, values in saved.to_dict().items() for k, v in values.items()}
    for key, value in overrides.items():
        section, name = _split_key(key, source)
        if key in RESUMABLE_KEYS:
            continue
        new = getattr(getattr(from_dict({section: {name: value}}, source=source), section), name)
        if new != current[key]:
            raise ConfigError(
                f"{source}: cannot change '{key}' of a resumed run (saved {current[key]!r}, given "
                f"{new!r}); start a new --run-dir to train with a different value")
    return saved.replace(overrides, source=source)
