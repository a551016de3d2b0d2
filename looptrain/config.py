"""Configuration: frozen dataclasses per concern, TOML files and command-line overrides.

Precedence, lowest first: dataclass defaults (the reference TextCNN) < TOML file < script flags <
`--set section.key=value`. Every value is checked against its field's type and range, and an unknown
section or key is an error naming it, so a typo never silently trains the wrong model.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from looptrain import migrations
from looptrain.errors import ConfigError
from looptrain.settings import RESUMABLE, LoopSettings, check_value, did_you_mean
from looptrain.settings import setting as _field
from looptrain.user_code import check_arguments, import_attr, normalize_task_path


@dataclass(frozen=True)
class DataConfig:
    """Where the examples come from and how text becomes a fixed-length id sequence."""

    data_dir: str = _field("", doc="directory with train/val/test files; '' = embedded synthetic corpus")
    seq_length: int = _field(600, low=1, high=100_000,
                             doc="characters per example after padding/truncation")
    vocab_size: int = _field(5000, low=2, high=1_114_112,
                             doc="vocabulary size including <PAD> (id 0)")
    bucket_window: int = _field(0, low=0, doc="length bucketing: sort texts by length within windows "
                                              "of N batches, trim padding; 0 = off (RNNs: on)")
    embedded: str = _field("text", choices=("text", "images"),
                           doc="which generated data set data_dir = '' means: text corpus or images")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture. `name` selects a registered model; each model reads the fields it needs."""

    name: str = _field("textcnn", doc="registered model name (looptrain --help, docs/models.md), or "
                                      "'module:Class' for a model of your own")
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
    norm_per_kind: bool = _field(False, doc="tfidf: L2-normalise the character and the word n-grams "
                                            "of a text apart (two unit vectors side by side)")
    nb_ratio: bool = _field(False, doc="tfidf (linear): scale each class's n-gram weights by the "
                                       "n-gram's log-count ratio on the training split (NB-SVM)")


@dataclass(frozen=True)
class TrainConfig(LoopSettings):
    """The loop's settings (`settings.LoopSettings`) and the built-in classifier's optimisation."""

    learning_rate: float = _field(1e-3, low=1e-12, doc="Adam learning rate (a schedule's peak)")
    clip_norm: float = _field(0.0, low=0.0, doc="global-norm gradient clipping; 0 = off")
    precision: str = _field("float32", choices=("float32", "mixed_float16", "mixed_bfloat16", "auto"),
                            doc="layer compute dtype; variables, logits and loss stay float32; auto = "
                                "mixed_bfloat16 on native-bfloat16 hardware (AMX/AVX512-BF16 CPU, "
                                "GPU >= 8.0, TPU), else float32")
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


# The [train] keys of the built-in classifier (the rest are the loop's, and apply to any task).
CLASSIFIER_TRAIN_KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig)
                              if f.name not in {g.name for g in dataclasses.fields(LoopSettings)})


@dataclass(frozen=True)
class Config:
    """The whole configuration of a run.

    `task` is the `[task]` section: `path` ("module:attr") names a task of the user's (empty: the
    built-in classifier, configured by `data` and `model`), and its other keys are that task's
    constructor arguments. `model_extra` holds `[model]` keys a model of the user's takes beyond
    the built-in ones (checked against its constructor).
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    task: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({"path": ""}))
    model_extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def task_path(self) -> str:
        """"module:attr" of a user task, or "" for the built-in classifier."""
        return self.task.get("path", "")

    @property
    def task_params(self) -> dict[str, Any]:
        """The user task's constructor arguments."""
        return {k: v for k, v in self.task.items() if k != "path"}

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {"data": dataclasses.asdict(self.data),
                "model": {**dataclasses.asdict(self.model), **self.model_extra},
                "train": dataclasses.asdict(self.train), "task": dict(self.task)}

    def replace(self, overrides: Mapping[str, Any], *, source: str = "override") -> "Config":
        """Returns a copy with dotted-key overrides (`{"train.batch_size": 32}`) applied and checked."""
        sections = self.to_dict()
        for key, value in overrides.items():
            section, name = _split_key(key, source)
            sections[section][name] = value
        return from_dict(sections, source=source)


_SECTION_CLASSES = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
_OPEN_SECTIONS = ("model", "task")  # sections whose other keys a user's model or task defines


def known_keys() -> list[str]:
    """All fixed dotted keys, e.g. `train.batch_size` (plus `task.path`)."""
    return [f"{s}.{f.name}" for s, cls in _SECTION_CLASSES.items()
            for f in dataclasses.fields(cls)] + ["task.path"]


def _split_key(key: str, source: str) -> tuple[str, str]:
    section, _, name = key.partition(".")
    cls = _SECTION_CLASSES.get(section)
    known = cls is not None and name in {f.name for f in dataclasses.fields(cls)}
    if not known and not (section in _OPEN_SECTIONS and name.isidentifier()):
        raise _unknown_key(key, section, source)
    return section, name


def _unknown_key(key: str, section: str, source: str) -> ConfigError:
    """The closest known key if one is close (a typo), else the keys of `key`'s section (or all)."""
    keys = known_keys()
    hint = did_you_mean(key, keys)
    if hint:
        return ConfigError(f"{source}: unknown config key '{key}'{hint}")
    same = [k for k in keys if k.startswith(f"{section}.")]
    listed = f"known {section} keys: {', '.join(same)}" if same else f"known keys: {', '.join(keys)}"
    return ConfigError(f"{source}: unknown config key '{key}' ({listed})")


def from_dict(sections: Mapping[str, Any], *, source: str = "config",
              complete: bool = False) -> Config:
    """Builds a checked `Config` from `{"data": {...}, "model": {...}, "train": {...}, "task": {...}}`.

    Missing sections and keys keep their defaults, unless `complete`: a run's saved config must
    hold every key (a default would silently change a resumed run), except the keys added since
    with a `migrations.MIGRATIONS` value that reproduces how older runs behaved.

    Raises:
        ConfigError: naming `source` and the offending (or, with `complete`, missing) key.
    """
    if complete:
        sections = migrations.complete(sections, known_keys(), source)
    built, extra, task = {}, {}, {"path": ""}
    for section, values in sections.items():
        if section not in (*_SECTION_CLASSES, "task"):
            raise ConfigError(f"{source}: unknown config section '{section}'"
                              f"{did_you_mean(section, [*_SECTION_CLASSES, 'task'])} (known: "
                              f"{', '.join([*_SECTION_CLASSES, 'task'])})")
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: '{section}' must be a table of keys")
        if section == "task":
            task.update(values)
            continue
        cls = _SECTION_CLASSES[section]
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for name, value in values.items():
            key = f"{section}.{name}"
            if name in fields:
                kwargs[name] = check_value(fields[name], value, key, source)
            else:
                _split_key(key, source)  # raises with the list of known keys unless open
                extra[name] = value
        built[section] = cls(**kwargs)
    config = Config(**built, task=MappingProxyType(task), model_extra=MappingProxyType(extra))
    return _checked_open_sections(config, source)


def _checked_open_sections(config: Config, source: str) -> Config:
    """Checks `[task]` against the task's constructor and extra `[model]` keys against the
    model's, importing the user's module only when there is something of the user's to check."""
    path = config.task_path
    if not isinstance(path, str):
        raise ConfigError(f"{source}: 'task.path' must be a string 'module:attr', got {path!r}")
    if path:
        path = normalize_task_path(path)
        task_class = import_attr(path, f"{source}: 'task.path'")
        params = check_arguments(task_class, config.task_params, f"{source}", "task")
        for section, cls in (("data", DataConfig), ("model", ModelConfig)):
            if getattr(config, section) != cls() or (section == "model" and config.model_extra):
                raise ConfigError(f"{source}: [{section}] configures the built-in classifier; a "
                                  f"--task takes its settings from [task] (task.KEY=VALUE)")
        changed = [k for k in CLASSIFIER_TRAIN_KEYS
                   if getattr(config.train, k) != getattr(TrainConfig(), k)]
        if changed:
            raise ConfigError(f"{source}: 'train.{changed[0]}' configures the built-in classifier; "
                              f"a --task sets its own in [task] (task.KEY=VALUE)")
        return dataclasses.replace(config, task=MappingProxyType({"path": path, **params}))
    if config.task_params:
        first = next(iter(config.task_params))
        raise ConfigError(f"{source}: 'task.{first}' is set but no task is named; give "
                          f"--task module:attr (or task.path) for a task of your own")
    if config.model_extra:
        from looptrain.models import get_model_class  # imports Keras: only for a user's model

        model_class = get_model_class(config.model.name)
        check_arguments(model_class, config.model_extra, source, "model")
    return config


def load_toml(path: str | Path) -> Config:
    """Reads a TOML config file on top of the defaults.

    Raises:
        ConfigError: the file is missing, is not valid TOML, or has a bad key or value.
    """
    return from_dict(read_toml(path), source=str(path))


def read_toml(path: str | Path) -> dict[str, Any]:
    """The sections of a TOML config file, unchecked.

    Raises:
        ConfigError: the file is missing or is not valid TOML.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist (see configs/ for examples)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def flatten(sections: Mapping[str, Any]) -> dict[str, Any]:
    """`{"train.batch_size": 64, ...}` of a sections mapping."""
    return {f"{s}.{k}": v for s, values in sections.items() if isinstance(values, Mapping)
            for k, v in values.items()}


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
    """Reads a resolved config written by `RunDir.save_config` (a run's `config.json`)."""
    path = Path(path)
    try:
        sections = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist: is this a looptrain run directory?") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable run config ({exc}); the run directory is damaged") from None
    if not isinstance(sections, dict):
        raise ConfigError(f"{path}: not a run config (a JSON object of sections); the run "
                          f"directory is damaged")
    return from_dict(sections, source=str(path), complete=True)


# Keys a resumed run may change: the loop's cadence and stopping (`settings.RESUMABLE`), and
# where the (same) data now lives. Everything else (architecture, vocabulary, batch size, seed,
# optimiser, the task and its arguments) is fixed by the checkpoint.
RESUMABLE_KEYS = frozenset({"data.data_dir", *(f"train.{name}" for name in RESUMABLE)})


def resume_config(saved: Config, overrides: Mapping[str, Any], *, source: str) -> Config:
    """Applies overrides to a run's saved config, refusing any that would change a fixed key;
    an override equal to the saved value is simply accepted.

    Raises:
        ConfigError: an override changes a key outside `RESUMABLE_KEYS`, naming key, old and new.
    """
    current = flatten(saved.to_dict())
    for key, value in overrides.items():
        section, name = _split_key(key, source)
        if key in RESUMABLE_KEYS:
            continue
        if key == "task.path" and isinstance(value, str):
            value = normalize_task_path(value)
        if key in current and section in _SECTION_CLASSES and name in {
                f.name for f in dataclasses.fields(_SECTION_CLASSES[section])}:
            fld = next(f for f in dataclasses.fields(_SECTION_CLASSES[section]) if f.name == name)
            new = check_value(fld, value, key, source)
        else:
            new = value
        if key not in current or new != current[key]:
            saved_value = current.get(key, "not set")
            raise ConfigError(
                f"{source}: cannot change '{key}' of a resumed run (saved {saved_value!r}, given "
                f"{new!r}); start a new --run-dir to train with a different value")
    return saved.replace(overrides, source=source)
