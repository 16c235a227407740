"""What a module's source says, read without importing it: a config is checked against it before torch
and Lightning take seconds to load.

:func:`keyword_annotation`, a constructor's type hints: a ``_target_`` such as ``lightning.Trainer`` is followed through the ``from ... import`` lines of its
package to the class, whose ``__init__`` annotation of a keyword is evaluated with the names it uses
resolved the same way: ``typing`` and builtins as themselves, a type alias (``_PATH = Union[str, Path]``)
by its value, any other class as a stand-in that no plain config value is an instance of. What cannot be
followed (a name built at run time, a C extension) has no hint: ``None``, and the value is not checked.
:func:`registered_names`, the names a package's modules register with a decorator (``@register_upsampler("bilinear")``).
"""

from __future__ import annotations

import ast
import builtins
import collections.abc
import functools
import importlib.util
import typing
from pathlib import Path
from typing import Any

# Modules whose names an annotation uses as themselves.
REAL_MODULES = {"typing": typing, "typing_extensions": typing, "collections.abc": collections.abc}
# Bases that make a class's instances plain config values too (a str Enum accepts its strings).
SCALAR_BASES = {"str", "int", "float", "bool", "Enum", "StrEnum", "IntEnum"}
# How many ``from ... import`` hops and base classes are followed before giving up.
MAX_HOPS = 12


class ImportedClass:
    """Stands for a class an annotation names (``torch.Tensor``), under its name: a config scalar is
    never one."""


def keyword_annotation(target: str, name: str) -> Any:
    """The annotation of keyword ``name`` of ``target`` (``package.module.Class`` or a function; a class's
    ``__init__``, following ``**kwargs`` to its bases), or ``None`` when it has none or cannot be read."""
    module, _, attribute = target.rpartition(".")
    found = _definition(module, attribute, MAX_HOPS) if module else None
    for _ in range(MAX_HOPS):
        if found is None:
            return None
        node, where = found
        function = _init_of(node) if isinstance(node, ast.ClassDef) else node
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            arguments = function.args
            for argument in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs):
                if argument.arg == name:
                    return None if argument.annotation is None else _evaluate(argument.annotation, where)
            if arguments.kwarg is None:
                return None
        if not isinstance(node, ast.ClassDef) or not node.bases:
            return None
        found = _base_definition(node.bases[0], where)
    return None


def registered_names(package: str, decorator: str) -> list[str]:
    """The names the modules of ``package`` register with ``@decorator("<name>")`` on a class or function,
    sorted: a registry's keys without importing its modules (the registry imports every one of them)."""
    source = _module_tree(package)
    if source is None:
        return []
    names = []
    for path in sorted(Path(source[2]).parent.glob("*.py")):
        for node in ast.walk(_module_tree(f"{package}.{path.stem}")[0]):
            for call in getattr(node, "decorator_list", ()):
                if (
                    isinstance(call, ast.Call)
                    and ast.unparse(call.func).split(".")[-1] == decorator
                    and call.args
                    and isinstance(call.args[0], ast.Constant)
                ):
                    names.append(call.args[0].value)
    return sorted(names)


def _init_of(node: ast.ClassDef) -> ast.FunctionDef | None:
    return next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)


def _base_definition(base: ast.expr, module: str) -> tuple[ast.AST, str] | None:
    return _definition(module, base.id, MAX_HOPS) if isinstance(base, ast.Name) else None


@functools.cache
def _module_tree(module: str) -> tuple[ast.Module, bool, str] | None:
    """The parsed source of ``module``, whether it is a package, and its file, found without importing it
    or its packages."""
    top, _, rest = module.partition(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin)
    for part in rest.split(".") if rest else ():
        folder = path.parent
        path = folder / part / "__init__.py" if (folder / part).is_dir() else folder / f"{part}.py"
    try:
        return ast.parse(path.read_text(encoding="utf-8")), path.name == "__init__.py", str(path)
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None


def _definition(module: str, name: str, hops: int) -> tuple[ast.AST, str] | None:
    """Where ``module``'s ``name`` is defined: its class, function or assignment node and that module."""
    source = _module_tree(module)
    if source is None or hops <= 0:
        return None
    tree, is_package, _ = source
    for node in tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef) and node.name == name:
            return node, module
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return node, module
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            return node, module
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    source = _absolute(node, module, is_package)
                    if source in REAL_MODULES:
                        return ast.Constant(getattr(REAL_MODULES[source], alias.name, None)), source
                    return _definition(source, alias.name, hops - 1)
        if isinstance(node, ast.Import):
            for alias in node.names:
                if (alias.asname or alias.name.partition(".")[0]) == name:
                    imported = alias.name if alias.asname else name
                    return ast.Constant(REAL_MODULES.get(imported) or _ModuleNames(imported)), module
    return None


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The module a ``from ... import`` names, relative imports made absolute."""
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _evaluate(annotation: ast.expr, module: str) -> Any:
    """An annotation's value, its names resolved in ``module`` (``None`` when it cannot be evaluated)."""
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        try:
            annotation = ast.parse(annotation.value, mode="eval").body
        except SyntaxError:
            return None
    try:
        code = compile(ast.Expression(annotation), "<annotation>", "eval")
        return eval(code, {"__builtins__": {}}, _Names(module))  # noqa: S307 -- names resolve to types only
    except Exception:  # noqa: BLE001 -- an annotation that does not evaluate here: no hint
        return None


class _Names(dict):
    """The names an annotation uses, looked up in its module's source as they are used."""

    def __init__(self, module: str) -> None:
        super().__init__()
        self.module = module

    def __missing__(self, name: str) -> Any:
        found = _definition(self.module, name, MAX_HOPS)
        if found is None:
            if name in REAL_MODULES:
                return REAL_MODULES[name]
            if hasattr(builtins, name):
                return getattr(builtins, name)
            return _ModuleNames(name) if _module_tree(name) is not None else typing.Any
        return _value_of(*found)


class _ModuleNames:
    """A module an annotation names (``import torch`` then ``torch.Tensor``): its names resolved in turn."""

    def __init__(self, module: str) -> None:
        self.module = module

    def __getattr__(self, name: str) -> Any:
        return _Names(self.module)[name]


def _value_of(node: ast.AST, module: str) -> Any:
    if isinstance(node, ast.Constant):  # a name of typing itself
        return node.value if node.value is not None else typing.Any
    if isinstance(node, ast.ClassDef):
        scalar = any(isinstance(b, ast.Name | ast.Attribute) and ast.unparse(b).split(".")[-1] in SCALAR_BASES
                     for b in node.bases)  # fmt: skip
        return typing.Any if scalar else type(node.name, (ImportedClass,), {})
    if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
        return _evaluate(node.value, module) or typing.Any
    return typing.Any
