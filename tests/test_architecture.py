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
    "inference": {"utils", "models", "data", "profiling", "export"},
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
