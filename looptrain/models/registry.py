"""Model registry: config name -> subclassed `keras.Model` factory.

A model class registers itself with `@register("name")` and is built from the `ModelConfig` plus the
sizes only the data knows (vocabulary and number of classes). Each class declares which config
fields it reads (`CONFIG_FIELDS`), so the registry passes exactly those as keyword arguments, and
which kind of data it reads (`DATA_KIND`: "text" token ids, the default, or "arrays" of numbers;
only text models get `vocab_size`). `INPUT_RANK`, when set, is the rank of one example it expects.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import keras

from looptrain.config import ModelConfig
from looptrain.errors import ConfigError

_REGISTRY: dict[str, type[keras.Model]] = {}
_DATA_KINDS = {"text": "text (label<TAB>text files)", "arrays": "arrays (.npz files)"}


def register(name: str) -> Callable[[type[keras.Model]], type[keras.Model]]:
    """Class decorator adding a model under `name` (the value of `model.name`)."""
    def add(cls: type[keras.Model]) -> type[keras.Model]:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is already registered by {_REGISTRY[name].__name__}")
        _REGISTRY[name] = cls
        cls.registered_name = name
        return cls
    return add


def registered_names() -> list[str]:
    return sorted(_REGISTRY)


def get_model_class(name: str) -> type[keras.Model]:
    """The class registered as `name`.

    Raises:
        ConfigError: no model has that name (the message lists the registered ones).
    """
    if name not in _REGISTRY:
        raise ConfigError(f"'model.name' is {name!r}, which is not a registered model "
                          f"(registered: {', '.join(registered_names())})")
    return _REGISTRY[name]


def _kind(cls: type[keras.Model]) -> str:
    return getattr(cls, "DATA_KIND", "text")


def create_model(config: ModelConfig, *, vocab_size: int, num_classes: int,
                 data_kind: str = "text") -> keras.Model:
    """Instantiates the registered model named `config.name` (unbuilt; see `build_model`).

    Args:
        config: the model section of the config.
        vocab_size: vocabulary size (text models only).
        num_classes: number of output logits.
        data_kind: the kind of the data it will read, "text" or "arrays".

    Raises:
        ConfigError: the name is not registered, or the model reads another kind of data.
    """
    cls = get_model_class(config.name)
    kind = _kind(cls)
    if kind != data_kind:
        fitting = [n for n in registered_names() if _kind(_REGISTRY[n]) == data_kind]
        raise ConfigError(f"'model.name' is {config.name!r}, a model for {_DATA_KINDS[kind]}, but the "
                          f"data is {_DATA_KINDS[data_kind]}; models for it: {', '.join(fitting)}")
    values = dataclasses.asdict(config)
    kwargs = {key: values[key] for key in cls.CONFIG_FIELDS}
    if kind == "text":
        kwargs["vocab_size"] = vocab_size
    return cls(num_classes=num_classes, **kwargs)


def build_model(model: keras.Model, input_shape: int | tuple[int, ...],
                dtype: str = "int32") -> keras.Model:
    """Creates every variable by calling the model once on a dummy batch.

    Keras 3 silently skips restoring the weights of layers that are not built yet, so this must run
    before any checkpoint restore.

    Args:
        model: an unbuilt model from `create_model`.
        input_shape: the shape of one example; an int is a text model's sequence length.
        dtype: the examples' dtype (int32 token ids for text, float32 for arrays).

    Raises:
        ConfigError: the model expects examples of another rank (e.g. images, not vectors).
    """
    import tensorflow as tf  # local: keeps this module importable without touching the TF runtime

    shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    rank = getattr(model, "INPUT_RANK", None)
    if rank is not None and len(shape) != rank:
        raise ConfigError(f"'model.name' is {model.registered_name!r}, which expects examples of rank "
                          f"{rank} ({model.INPUT_LAYOUT}), but the data's examples have shape {list(shape)}")
    model(tf.zeros([1, *shape], dtype), training=False)
    return model
