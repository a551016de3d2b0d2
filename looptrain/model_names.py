"""The names of the registered models, known without importing Keras: `--help` lists them before
TensorFlow starts, by reading the model modules' `@register("name")` decorators from source.
`tests/test_command.py` checks them against `models.registered_names()`."""

from __future__ import annotations

import ast
from pathlib import Path

MODELS = Path(__file__).resolve().parent / "models"


def registered_models() -> dict[str, str]:
    """Built-in model name -> the first line of its class docstring, read from the source."""
    models = {}
    for path in sorted(MODELS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef):
                continue
            for decorator in node.decorator_list:
                if (isinstance(decorator, ast.Call) and getattr(decorator.func, "id", "") == "register"
                        and decorator.args and isinstance(decorator.args[0], ast.Constant)):
                    doc = (ast.get_docstring(node) or "").split("\n")[0]
                    models[decorator.args[0].value] = doc
    return dict(sorted(models.items()))
