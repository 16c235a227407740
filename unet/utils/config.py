"""Configs as plain data: resolved builtins for files and loggers, and in-process composition."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from unet.utils.budget import MAX_TIME_KEY, max_time_seconds
from unet.utils.errors import ConfigError
from unet.utils.source_reading import keyword_annotation

# The package the Hydra configs ship in (``configs/`` in a source checkout).
CONFIG_MODULE = "unet.configs"
# Keys whose values we read ourselves before an object gets them: checked by their reader, not by the
# type hints of the constructor (``trainer.max_time=300`` is seconds; Lightning's Trainer gets a timedelta).
VALUE_READERS: dict[str, Callable[[Any], Any]] = {MAX_TIME_KEY: max_time_seconds}


def plain_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as builtins (what gets stored in checkpoints and written to disk)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)  # type: ignore[return-value]


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"upsample": "x"}}`` -> ``{"model.upsample": "x"}``; lists become strings."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, bool | int | float | str) or value is None:
            flat[name] = "null" if value is None else value
        else:
            flat[name] = str(value)
    return flat


@dataclass(frozen=True)
class Composition:
    """How a config was composed: its config file and its command-line overrides.

    ``in_app``: by the running Hydra app, whose config search path (``--config-dir``, ``hydra.searchpath``)
    composing it again keeps.
    """

    config_name: str
    overrides: tuple[str, ...]
    in_app: bool = False

    def compose(self, overrides: Sequence[str] = (), replacing: Collection[str] = ()) -> DictConfig:
        """The config composed again, with ``overrides`` after the original ones (so they win); the original
        overrides of the keys in ``replacing`` are left out (``overrides`` set them another way)."""
        from hydra import compose
        from hydra.core.global_hydra import GlobalHydra

        kept = (override for override in self.overrides if override_key(override) not in replacing)
        again = Composition(self.config_name, (*kept, *overrides), self.in_app)
        if not (self.in_app and GlobalHydra.instance().is_initialized()):
            return compose_config(again.config_name, again.overrides)
        cfg = compose(again.config_name, overrides=list(again.overrides))
        _remember(cfg, again)
        return cfg


# How each live config that compose_config (or Composition.compose) returned was composed, by its id.
_COMPOSED: dict[int, tuple[weakref.ref, Composition]] = {}


def _remember(cfg: DictConfig, composition: Composition) -> None:
    key = id(cfg)
    _COMPOSED[key] = (weakref.ref(cfg, lambda _: _COMPOSED.pop(key, None)), composition)


def composition_of(cfg: DictConfig) -> Composition | None:
    """How ``cfg`` was composed: by :func:`compose_config` (its arguments), else the running Hydra app's
    job (its config and ``overrides.task``); ``None`` outside both."""
    from hydra.core.hydra_config import HydraConfig

    remembered = _COMPOSED.get(id(cfg))
    if remembered is not None and remembered[0]() is cfg:
        return remembered[1]
    if not HydraConfig.initialized():
        return None
    job = HydraConfig.get()
    # unresolved: an override's value may itself be an interpolation (x=${y})
    overrides = OmegaConf.to_container(job.overrides.task, resolve=False)
    return Composition(job.job.config_name, tuple(overrides), in_app=True)


def compose_again(cfg: DictConfig, overrides: Sequence[str], replacing: Collection[str] = ()) -> DictConfig:
    """``cfg`` composed again from its config file and overrides, with ``overrides`` appended (they win)
    and those of the keys in ``replacing`` left out (see :meth:`Composition.compose`)."""
    composition = composition_of(cfg)
    if composition is None:
        raise ValueError(
            "cannot compose this config again: it comes neither from a Hydra app nor from "
            "unet.utils.config.compose_config (compose it with one of them)"
        )
    return composition.compose(overrides, replacing)


def override_key(override: str) -> str:
    """The key an override sets: ``+model.net.depth=3`` -> ``model.net.depth``."""
    return override.split("=", 1)[0].lstrip("+~")


def compose_config(
    config_name: str,
    overrides: Sequence[str] = (),
    return_hydra_config: bool = False,
) -> DictConfig:
    """``configs/<config_name>.yaml`` composed with command-line style ``overrides``, outside a Hydra app.

    The config remembers how it was composed (:func:`composition_of`), so it can be composed again.
    """
    from hydra import compose, initialize_config_module

    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        cfg = compose(config_name, overrides=list(overrides), return_hydra_config=return_hydra_config)
    _remember(cfg, Composition(config_name, tuple(overrides)))
    return cfg


def _fits(value: Any, annotation: Any) -> bool:
    """Whether a scalar config value can be passed where ``annotation`` is expected (lenient: unknown -> yes)."""
    import typing

    if annotation is None or annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Union or type(annotation).__name__ == "UnionType":
        return any(_fits(value, arm) for arm in typing.get_args(annotation))
    if origin is typing.Literal:
        return type(value) in {type(option) for option in typing.get_args(annotation)}
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is type(None):
        return value is None
    klass = origin or annotation
    try:
        return isinstance(value, klass)
    except TypeError:  # a type isinstance cannot test (a TypeVar, a subscripted alias): no check
        return True


TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _expected(annotation: Any) -> str:
    import typing

    arms = typing.get_args(annotation) if typing.get_origin(annotation) is not typing.Literal else ()
    names = [TYPE_NAMES.get(arm, getattr(arm, "__name__", str(arm))) for arm in arms if arm is not type(None)]
    return " or ".join(names) if names else TYPE_NAMES.get(annotation, str(annotation))


def check_override_types(cfg: DictConfig, overrides: Sequence[str]) -> None:
    """Refuse a command-line value of the wrong type (``trainer.max_epochs=abc``) before any work.

    The configs have no schema; the constructor a key ends up in (its node's ``_target_``) does, in
    its type hints. Without this check such a value fails deep inside training with a ``TypeError``
    that names neither the key nor the value. ``auto`` (planned later) and ``null`` are not checked; a
    key of :data:`VALUE_READERS` is checked by its reader.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        if override.is_delete() or override.package is not None or key.startswith("hydra.") or "." not in key:
            continue
        value = OmegaConf.select(
            cfg, key, default=None, throw_on_missing=False, throw_on_resolution_failure=False
        )
        if key in VALUE_READERS:
            VALUE_READERS[key](
                OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
            )
            continue
        if value is None or value == "auto" or not isinstance(value, bool | int | float | str):
            continue
        parent_key, _, name = key.rpartition(".")
        parent = OmegaConf.select(cfg, parent_key, default=None, throw_on_resolution_failure=False)
        target = parent.get("_target_") if isinstance(parent, DictConfig) else None
        if not isinstance(target, str):
            continue
        annotation = keyword_annotation(target, name)
        if annotation is not None and not _fits(value, annotation):
            raise ConfigError(
                f"{key}={value!r}: expected {_expected(annotation)} (the type of {target}'s {name})"
            )


def override_value(value: Any) -> str:
    """``value`` in Hydra's override syntax: ``null``, ``[a,b]``, ``{key: value}``; strings quoted when
    Hydra would read them otherwise (spaces, commas, brackets, or words like ``null`` and ``3``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{key}: {override_value(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(override_value(item) for item in value) + "]"
    if isinstance(value, str) and not _reads_back_as_itself(value):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return str(value)


def _reads_back_as_itself(text: str) -> bool:
    """Whether Hydra reads the unquoted ``text`` as this same string."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_override(f"key={text}").value()
    except Exception:  # noqa: BLE001 - any parse error means: quote it
        return False
    return parsed == text and isinstance(parsed, str)
