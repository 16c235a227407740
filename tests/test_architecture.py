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
    "planning": {"utils", "models", "evaluation", "data", "profiling"},
    "training": {"utils", "models", "evaluation", "data", "planning"},
    "export": {"utils", "models", "training"},
    "inference": {"utils", "models", "data", "profiling", "export"},
    "compare": {"utils", "models", "evaluation", "data", "training", "profiling", "planning"},
    "benchmarks": {
        "utils",
        "models",
        "evaluation",
        "data",
        "profiling",
        "planning",
        "training",
        "export",
        "inference",
        "compare",
    },
}
# Serving runs the models inference loads, found also in a comparison's runs.
ALLOWED["serving"] = set(ALLOWED["benchmarks"])
# The Python API sits beside the commands: everything below them (only apps may import it).
ALLOWED["api"] = ALLOWED["benchmarks"] | {"benchmarks", "serving"}
ALLOWED["apps"] = ALLOWED["api"] | {"api"}
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


def module_graph() -> dict[str, set[str]]:
    """Every module of ``unet`` and the modules of ``unet`` it imports, at module level or inside a
    function (``from unet.a import b`` imports ``unet.a`` and, when it is one, the module ``unet.a.b``)."""
    paths = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        paths[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in paths.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        graph[name] = {module for module in imported if module in paths and module != name}
    return graph


def test_no_module_imports_itself_through_others():
    """No import circle, even one closed inside a function or under TYPE_CHECKING: a design bug."""
    graph = module_graph()
    for start in graph:
        path_to = {module: [start, module] for module in graph[start]}
        frontier = list(graph[start])
        while frontier:
            module = frontier.pop()
            assert module != start, f"import circle: {' -> '.join(path_to[module])}"
            for following in graph[module] - path_to.keys():
                path_to[following] = [*path_to[module], following]
                frontier.append(following)


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
