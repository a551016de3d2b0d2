"""Code of the user's that a config names: a task (`task.path`) or a model (`model.name`) given as
`module:attr` or `path/to/file.py:attr`, and the check of its constructor arguments.

Every process that uses the run (resume, evaluate, a launcher's workers) imports it the same way
from the saved config, so a file is recorded with its absolute path.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any, Mapping

from looptrain.errors import ConfigError


def normalize_task_path(path: str) -> str:
    """`file.py:attr` with the file's absolute path (every later process, wherever it runs from,
    loads the same file); `module:attr` as it is."""
    module, sep, attr = path.rpartition(":")
    if sep and (module.endswith(".py") or "/" in module):
        return f"{Path(module).resolve()}:{attr}"
    return path


def import_attr(path: str, what: str):
    """The object `module:attr` or `path/to/file.py:attr` names.

    A module is imported as Python would from the current directory (which is put on the path,
    as `python -m` does) or from PYTHONPATH; a file is loaded from its path.

    Raises:
        ConfigError: the path is malformed, the module cannot be imported or lacks the attribute.
    """
    module_name, sep, attr = path.rpartition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{what} is {path!r}; expected 'module:attr', e.g. 'mytasks:Regression'")
    try:
        module = _import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{what}: cannot import '{module_name}' ({exc}); is its directory the "
                          f"current one or on PYTHONPATH?") from None
    try:
        value = module
        for part in attr.split("."):
            value = getattr(value, part)
    except AttributeError:
        raise ConfigError(f"{what}: '{module_name}' has no '{attr}'") from None
    return value


def _import_module(name: str):
    """A module by dotted name (the current directory first on the path) or by file path."""
    from looptrain.quiet import import_tensorflow

    import_tensorflow()  # the user's module imports it, most likely: without its start-up lines
    if name.endswith(".py") or "/" in name:
        file = Path(name).resolve()
        if not file.is_file():
            raise ImportError(f"no file {file}")
        # A name of its own per file, the same in every process (a resumed run checks the class).
        digest = hashlib.sha1(str(file).encode()).hexdigest()[:8]
        module_name = f"looptrain_user_{file.stem}_{digest}"
        if module_name not in sys.modules:
            spec = importlib.util.spec_from_file_location(module_name, file)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        return sys.modules[module_name]
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    return importlib.import_module(name)


def check_arguments(cls, values: Mapping[str, Any], source: str, section: str) -> dict[str, Any]:
    """`values` checked against `cls.__init__`'s keyword parameters: an unknown name is an error
    naming it, and a value whose default is a bool, int, float or str must have that type."""
    params = {name: p for name, p in inspect.signature(cls.__init__).parameters.items()
              if name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    out = {}
    for name, value in values.items():
        key = f"{section}.{name}"
        if name not in params:
            known = ", ".join(f"{section}.{n}" for n in params) or "none"
            raise ConfigError(f"{source}: unknown key '{key}': {cls.__name__}() takes no argument "
                              f"'{name}' (it takes: {known})")
        default = params[name].default
        if default is not inspect.Parameter.empty and default is not None:
            kind = type(default)
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if kind in (bool, int, float, str) and not (isinstance(value, kind) and (
                    kind is bool or not isinstance(value, bool))):
                raise ConfigError(f"{source}: '{key}' must be {kind.__name__} (as its default "
                                  f"{default!r}), got {type(value).__name__} {value!r}")
        out[name] = value
    missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty and n not in out]
    if missing:
        raise ConfigError(f"{source}: '{section}.{missing[0]}' is required by {cls.__name__}(); "
                          f"set it with --set {section}.{missing[0]}=VALUE")
    return out
