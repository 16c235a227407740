"""Keyword arguments of the Python API as a command's overrides, by one rule for every command.

A keyword names a config group of the command, or else a key of its composed config:

- a group by its path (``data``, ``**{"model/loss": ...}``) or by the last part of exactly one
  group's path (``loss`` -> ``model/loss``) selects that group's option: ``data="folder"`` ->
  ``data=folder``; ``None`` deselects it (``experiment=null``);
- a key by its full name (``seed``, ``output``, ``**{"model.optimizer.lr": 1e-3}``) or by the last
  part of exactly one key (``root`` -> ``data.root``, ``upsample`` -> ``model.upsample``,
  ``max_time`` -> ``trainer.max_time``) sets it, its value written by
  :func:`unet.utils.config.override_value`. Keys are looked up in the config composed with the
  groups the keywords select, so ``data="folder", root="cells/"`` finds the folder data's ``root``.

Hydra's own groups and keys (``hydra/launcher``, ``hydra.run.dir``) go by their full names only. A
short name that several groups or keys end with is refused listing them, and an unknown name is
refused naming the closest ones, each as a :class:`~unet.utils.errors.ConfigError`.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from unet.utils.config import override_value
from unet.utils.errors import ConfigError

HYDRA = "hydra"


def keyword_overrides(cfg: DictConfig, keywords: Mapping[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """The group selections among ``keywords`` as overrides, and the other keywords.

    ``cfg`` is the command's config composed with its ``hydra`` node (its groups are Hydra's choices).
    """
    groups = [group for group in cfg.hydra.runtime.choices]
    selections, others = [], {}
    for name, value in keywords.items():
        group = _unique(name, groups, "/", "config group")
        if group is None:
            others[name] = value
        else:
            selections.append(f"{group}={override_value(_plain(value))}")
    return selections, others


def key_overrides(cfg: DictConfig, keywords: Mapping[str, Any], config_name: str) -> list[str]:
    """``keywords`` (none of them a group) as ``key=value`` overrides of ``cfg``'s keys."""
    keys = list(config_keys(cfg))
    overrides = []
    for name, value in keywords.items():
        key = _unique(name, keys, ".", "key")
        if key is None:
            raise ConfigError(_unknown(name, keys, list(cfg.hydra.runtime.choices), config_name))
        overrides.append(f"{key}={override_value(_plain(value))}")
    return overrides


def keyword_arguments(keywords: Mapping[str, Any]) -> list[str]:
    """``keywords`` as the ``name=value`` arguments a user would type (their names not yet resolved)."""
    return [f"{name}={override_value(_plain(value))}" for name, value in keywords.items()]


def config_keys(cfg: DictConfig) -> Iterator[str]:
    """Every key of ``cfg`` (nodes and values, ``a``, ``a.b``, ...), Hydra's own included, unresolved."""

    def walk(node: Mapping[str, Any], prefix: str) -> Iterator[str]:
        for key, value in node.items():
            yield f"{prefix}{key}"
            if isinstance(value, Mapping):
                yield from walk(value, f"{prefix}{key}.")

    yield from walk(OmegaConf.to_container(cfg, resolve=False), "")


def _unique(name: str, names: Sequence[str], separator: str, kind: str) -> str | None:
    """``name`` itself when it is one of ``names``, else the one name (outside Hydra's own) whose last
    part it is; ``None`` when none is; a :class:`ConfigError` listing them when several are."""
    if name in names:
        return name
    matches = [
        full for full in names if full.rpartition(separator)[2] == name and full.split(separator)[0] != HYDRA
    ]
    if len(matches) > 1:
        raise ConfigError(
            f"{name}=...: ambiguous, it could be the {kind}s {', '.join(matches)}; name one in full, "
            f"e.g. **{{{matches[0]!r}: ...}}"
        )
    return matches[0] if matches else None


def _unknown(name: str, keys: Sequence[str], groups: Sequence[str], config_name: str) -> str:
    """The message for a keyword that is neither a group nor a key, naming the closest ones in full."""
    full_names: dict[str, list[str]] = {}
    for full in [*groups, *(key for key in keys if key.split(".")[0] != HYDRA)]:
        for alias in {full, full.rpartition("/")[2].rpartition(".")[2]}:
            full_names.setdefault(alias, []).append(full)
    close = difflib.get_close_matches(name, list(full_names), n=3)
    suggested = list(dict.fromkeys(full for alias in close for full in full_names[alias]))[:3]
    hint = f" (did you mean {', '.join(suggested)}?)" if suggested else ""
    return f"{name}=...: no config group or key of the {config_name} config is named so{hint}"


def _plain(value: Any) -> Any:
    """Paths as strings, in lists and mappings too, for :func:`override_value`."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
