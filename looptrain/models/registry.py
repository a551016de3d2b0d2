"""Model registry: config name -> subclassed `keras.Model` factory.

A model class registers itself with `@register("name")` and is built from the `ModelConfig` plus the
sizes only the data knows (vocabulary and number of classes). Each class declares which config
fields it reads (`CONFIG_FIELDS`), so the registry passes exactly those as keyword arguments, and
which kind of data it reads (`DATA_KIND`: "text" token ids, the default, or "arrays" of numbers;
only text models get `vocab_size`). `INPUT_RANK`, when set, is the rank of one example it expects,
and `check_input_shape(shape)`, when defined, refuses examples it cannot run on (a convolution
wider than the sequence) with a `ConfigError`, before any weight is created.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Callable

import keras

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
    """The class registered as `name`, or the `keras.Model` subclass `module:Class` names (a model
    of the user's, importable in every process that uses the run: evaluate, predict, export).

    Raises:
        ConfigError: no model has that name (the message lists the registered ones), or the
            module cannot be imported or holds no Keras model class of that name.
    """
    if ":" in name:
        from looptrain.user_code import import_attr

        cls = import_attr(name, "'model.name'")
        if not (isinstance(cls, type) and issubclass(cls, keras.Model)):
            raise ConfigError(f"'model.name' is {name!r}, which is not a keras.Model subclass")
        return cls
    if name not in _REGISTRY:
        raise ConfigError(f"'model.name' is {name!r}, which is not a registered model "
                          f"(registered: {', '.join(registered_names())})")
    return _REGISTRY[name]


def _kind(cls: type[keras.Model]) -> str:
    return getattr(cls, "DATA_KIND", "text")


def create_model(config, *, vocab_size: int, num_classes: int,
                 data_kind: str = "text", extra: dict | None = None) -> keras.Model:
    """Instantiates the registered model named `config.name` (unbuilt; see `build_model`).

    Args:
        config: the model section of the config (a `ModelConfig` or a mapping of its keys).
        vocab_size: vocabulary size (text models only).
        num_classes: number of output logits.
        data_kind: the kind of the data it will read, "text" or "arrays".
        extra: the model's own hyper-parameters beyond `ModelConfig` (a model of the user's).

    Raises:
        ConfigError: the name is not registered, or the model reads another kind of data.
    """
    values = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    name = values["name"]
    cls = get_model_class(name)
    kind = _kind(cls)
    if kind != data_kind:
        fitting = [n for n in registered_names() if _kind(_REGISTRY[n]) == data_kind]
        raise ConfigError(f"'model.name' is {name!r}, a model for {_DATA_KINDS[kind]}, but the "
                          f"data is {_DATA_KINDS[data_kind]}; models for it: {', '.join(fitting)}")
    fields = getattr(cls, "CONFIG_FIELDS", None)
    sizes = {"num_classes": num_classes, **({"vocab_size": vocab_size} if kind == "text" else {})}
    if fields is None:  # a model of the user's: what its constructor takes
        accepted = inspect.signature(cls.__init__).parameters
        fields = [key for key in values if key in accepted and key != "name"]
        sizes = {key: value for key, value in sizes.items() if key in accepted}
    kwargs = {key: values[key] for key in fields}
    kwargs.update(extra or {})
    return cls(**sizes, **kwargs)


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
        ConfigError: the model expects examples of another rank (e.g. images, not vectors), or
            cannot run on examples of this shape (its `check_input_shape` says why).
    """
    import tensorflow as tf  # local: keeps this module importable without touching the TF runtime

    shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    rank = getattr(model, "INPUT_RANK", None)
    if rank is not None and len(shape) != rank:
        name = getattr(model, "registered_name", type(model).__name__)
        raise ConfigError(f"'model.name' is {name!r}, which expects examples of rank {rank} "
                          f"({model.INPUT_LAYOUT}), but the data's examples have shape {list(shape)}")
    check = getattr(model, "check_input_shape", None)
    if check is not None:  # a model that cannot run on these examples says why, before any weight
        check(shape)
    model(tf.zeros([1, *shape], dtype), training=False)
    return model
