"""Model registry: config name -> subclassed `keras.Model` factory.

A model class registers itself with `@register("name")` and is built from the `ModelConfig` plus the
two sizes only the data knows (vocabulary and number of classes). Each class declares which config
fields it reads, so the registry passes exactly those as keyword arguments.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import keras

from looptrain.config import ModelConfig
from looptrain.errors import ConfigError

_REGISTRY: dict[str, type[keras.Model]] = {}


def register(name: str) -> Callable[[type[keras.Model]], type[keras.Model]]:
    """Class decorator adding a model under `name` (the value of `model.name`)."""
    def add(cls: type[keras.Model]) -> type[keras.Model]:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is already registered by {_REGISTRY[name].__name__}")
        _REGISTRY[name] = cls
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


def create_model(config: ModelConfig, *, vocab_size: int, num_classes: int) -> keras.Model:
    """Instantiates the registered model named `config.name` (unbuilt; see `build_model`)."""
    cls = get_model_class(config.name)
    values = dataclasses.asdict(config)
    kwargs = {key: values[key] for key in cls.CONFIG_FIELDS}
    return cls(vocab_size=vocab_size, num_classes=num_classes, **kwargs)


def build_model(model: keras.Model, seq_length: int) -> keras.Model:
    """Creates every variable by calling the model once on a dummy batch.

    Keras 3 silently skips restoring the weights of layers that are not built yet, so this must run
    before any checkpoint restore.
    """
    import tensorflow as tf  # local: keeps this module importable without touching the TF runtime

    model(tf.zeros([1, seq_length], tf.int32), training=False)
    return model
