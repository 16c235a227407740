"""The import layering of docs/architecture.md holds: every package imports only the layers below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "unet"
# Each top-level package of `unet` and the packages of `unet` it may import (docs/architecture.md).
ALLOWED = {
    "utils": set(),
    "models": {"utils"},
    "evaluation": {"utils"},
    "data": {"utils"},
    "profiling": {"utils", "models", "data"},
    "planning": {"utils", "models", "data", "profiling"},
    "training": {"utils", "models", "evaluation", "data", "planning"},
    "export": {"utils", "models", "training"},
    "inference": {"utils", "models", "data", "profiling", "training", "export"},
    "compare": {"utils", "models", "evaluation", "data", "training", "profiling", "planning"},
    "apps": {
        "utils",
        "models",
        "evaluation",
        "data",
        "training",
        "profiling",
        "planning",
        "export",
        "inference",
        "compare",
    },
}
# Third-party frameworks a layer must not use: the models are plain torch, usable without them.
FORBIDDEN = {"models": {"lightning", "hydra", "omegaconf"}, "utils": {"lightning"}}


def imports_of(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports (``unet.models.x`` -> ``unet.models``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {
        ".".join(name.split(".")[:2]) if name.startswith("unet.") else name.split(".")[0] for name in names
    }


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_below_it(layer):
    files = sorted((PACKAGE / layer).rglob("*.py"))
    assert files, f"unet/{layer} is empty"
    for path in files:
        imported = imports_of(path)
        layers = {name.split(".")[1] for name in imported if name.startswith("unet.")} - {layer}
        assert layers <= ALLOWED[layer], (
            f"{path.relative_to(PACKAGE.parent)} imports unet.{layers - ALLOWED[layer]}"
        )
        assert not imported & FORBIDDEN.get(layer, set()), f"{path} imports {imported & FORBIDDEN[layer]}"


def test_every_package_of_unet_has_a_place_in_the_layers():
    packages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert packages == set(ALLOWED)


def test_the_models_run_without_the_training_frameworks_even_indirectly():
    """``import unet.models`` (and what it imports from ``unet.utils``) loads none of FORBIDDEN["models"]."""
    import subprocess
    import sys

    probe = (
        "import sys, unet.models; "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({sorted(FORBIDDEN['models'])!r})))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]", f"unet.models pulls in {loaded.strip()}"


def test_every_package_ships_in_the_wheel():
    # pyproject.toml lists the packages explicitly (configs/ ships as unet.configs): a package left out
    # works in an editable install and is missing from a wheel.
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    listed = set(
        tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {".".join(path.parent.relative_to(PACKAGE.parent).parts) for path in PACKAGE.rglob("__init__.py")}
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"


def module_name(path: Path) -> str:
    """``unet/models/blocks.py`` -> ``unet.models.blocks``; a package's ``__init__.py`` -> the package."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every ``unet`` module and the ``unet`` modules it imports, at module level or inside a function.

    ``from unet.a import b`` is an edge to ``unet.a.b`` when that is a module, else to ``unet.a``; a
    relative import is resolved against the importing module's package.
    """
    files = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:
                    edges.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base)
        graph[name] = {edge for edge in edges if edge in files and edge != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (its modules in order, the first repeated last), or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_find_cycle_finds_a_cycle_through_a_function_level_import():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_import_graph_of_unet_has_no_cycle():
    """A circular import is a design bug, also one hidden inside a function (an import made late to dodge it)."""
    graph = import_graph()
    assert "unet.models.unet" in graph["unet.models"], "the graph misses package imports"
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle: {' -> '.join(cycle)}"


# The style guide's limit: a function fits on a screen.
MAX_FUNCTION_LINES = 80


def test_no_function_in_unet_is_longer_than_a_screen():
    long = [
        f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in sorted(PACKAGE.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, "split these functions:\n" + "\n".join(long)
