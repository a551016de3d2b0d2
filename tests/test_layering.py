"""The house's structure: the engine below the application, no private name across modules, and
modules of a readable size."""

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "looptrain"
# The loop and what it runs: it takes built objects and knows nothing above it.
ENGINE = ["looptrain.engine", "looptrain.callbacks", "looptrain.task", "looptrain.training",
          "looptrain.fit_record", "looptrain.evaluation",
          "looptrain.settings", "looptrain.data.sources", "looptrain.data.pipeline"]
# What the engine must never reach, directly or through another module.
ABOVE = ["looptrain.config", "looptrain.cli", "looptrain.models", "looptrain.data.text",
         "looptrain.data.arrays", "looptrain.data.corpus", "looptrain.app", "looptrain.tasks",
         "looptrain.run", "looptrain.launch"]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """`(module, names)` of every `import`/`from ... import` in a file, at any depth."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append((node.module, [alias.name for alias in node.names]))
    return out


def _reaches(start: str, modules: dict[str, Path]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen or name not in modules:
            continue
        seen.add(name)
        for module, names in _imports(modules[name]):
            todo.append(module)
            todo += [f"{module}.{n}" for n in names if f"{module}.{n}" in modules]
    return seen


def _under(name: str, prefixes: list[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_engine_imports_nothing_of_the_application_above_it():
    modules = _modules()
    engine = [m for m in modules if _under(m, ENGINE)]
    assert len(engine) > 15
    for name in engine:
        bad = sorted(m for m in _reaches(name, modules) if _under(m, ABOVE))
        assert not bad, f"{name} reaches {bad}"


def test_no_private_name_is_imported_across_modules():
    for name, path in _modules().items():
        for module, names in _imports(path):
            private = [n for n in names if n.startswith("_") and n != "__version__"]
            assert not private, f"{name} imports {private} from {module}"


def test_modules_and_scripts_stay_readable():
    for path in [*PACKAGE.rglob("*.py"), *(ROOT / "examples").glob("*.py")]:
        lines = path.read_text(encoding="utf-8").count("\n")
        assert lines <= 370, f"{path.relative_to(ROOT)}: {lines} lines"
    for name in ("train", "evaluate", "predict", "export", "launch_local"):  # the entry points
        path = ROOT / "scripts" / f"{name}.py"
        assert path.read_text(encoding="utf-8").count("\n") <= 70, path
