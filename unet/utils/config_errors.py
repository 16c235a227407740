"""The config's mistakes that Hydra and OmegaConf find, each as the one line a user can act on.

Hydra reports a command line it cannot compose in several lines (its message, the config search
path, the OmegaConf error beneath it), and OmegaConf names a missing value by its key in the node it
was read from. Each kind is told by its exception type and the attributes it carries (the key, the
group's options); a message's text is read only where neither exposes the fact, with a comment
naming the message.
"""

from __future__ import annotations

import re

from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    InterpolationResolutionError,
    InterpolationToMissingValueError,
    MissingMandatoryValue,
    OmegaConfBaseException,
)

# Hydra's ConfigCompositionException for an override of a key the config lacks names the override only
# in its text, "Could not override 'trainer.max_epoch'.\nTo append to your config use +..."
# (hydra/_internal/config_loader_impl.py); its cause names the first missing part ('trainer.max_epoch'
# for that override, 'modle' for modle.lr=1).
UNKNOWN_OVERRIDE = re.compile(r"Could not override '([^']+)'")
# OmegaConf's InterpolationToMissingValueError carries the key of the node holding the interpolation;
# the ??? value it points at is only in the text of the MissingMandatoryValue beneath it:
# "MissingMandatoryValue while resolving interpolation: Missing mandatory value: input" (omegaconf/base.py).
MISSING_IN_INTERPOLATION = re.compile(r"Missing mandatory value: ?([\w.\[\]]+)")
# OmegaConf formats its messages as "<message>\n    full_key: <key>\n    object_type=..."
# (omegaconf/_utils.py format_and_raise); the key is also an attribute, so only the message is kept.
OMEGACONF_DETAILS = "\n    full_key:"


def quoting_hint(override: str) -> str:
    """How to type a value that holds braces or parentheses (a pattern such as ``{id}_manual1``), which
    Hydra's grammar reads as a dictionary or an interpolation unless quoted."""
    key, _, value = override.partition("=")
    if not any(char in value for char in "{}()$") or value[:1] in "'\"":
        return ""
    return f"; quote such a value for Hydra and the shell: '{key}=\"{value}\"'"


def composition_error_line(error: Exception) -> str:
    """The mistake Hydra found while composing the config from the command line, as one line."""
    if isinstance(error, MissingConfigException) and error.missing_cfg_file and error.options:
        return missing_option_line(error.missing_cfg_file, error.options)
    if isinstance(error, OverrideParseException):
        line = f"cannot parse the command line argument {error.override!r}: {one_line(error.message)}"
        return line + quoting_hint(error.override)
    cause = error.__cause__
    if isinstance(error, ConfigCompositionException) and isinstance(
        cause, ConfigKeyError | ConfigAttributeError
    ):
        unknown = UNKNOWN_OVERRIDE.match(str(error))
        if unknown:
            return unknown_key_line(unknown.group(1), str(cause.key))
    parts = [str(error)]
    if isinstance(cause, OmegaConfBaseException):
        parts.append(omegaconf_message(cause))
    return one_line("; ".join(parts))


def missing_option_line(missing: str, options: list[str]) -> str:
    """A group option that does not exist (``data=nope`` looks for ``data/nope``), with the valid ones."""
    group = missing.rpartition("/")[0]
    return f"Could not find '{missing}'; valid options in '{group}': {', '.join(options)}"


def unknown_key_line(override: str, missing: str) -> str:
    return (
        f"Could not override {override!r}: unknown key, the config has no {missing!r} there "
        f"(a typo? --help lists the keys; +{override}=... adds a new key)"
    )


def config_value_line(error: BaseException, cfg: DictConfig | None = None) -> str | None:
    """The line for OmegaConf's error about a value the command read from its config, or ``None``.

    A ``???`` value nobody set is named by its full key, read directly or through an interpolation;
    any other interpolation that cannot resolve (an unknown key, a resolver's refusal) by its message.
    """
    if isinstance(error, MissingMandatoryValue | InterpolationToMissingValueError):
        key = full_missing_key(missing_key(error), cfg)
        return f"missing value for {key} (e.g. {key}=...; --help lists the keys)"
    if isinstance(error, InterpolationResolutionError):
        key = error.full_key
        return f"{omegaconf_message(error)} (in {key})" if key else omegaconf_message(error)
    return None


def missing_key(error: MissingMandatoryValue | InterpolationToMissingValueError) -> str:
    """The key of the ``???`` value, as OmegaConf names it (relative to the node it was read from)."""
    if isinstance(error, InterpolationToMissingValueError):
        found = MISSING_IN_INTERPOLATION.search(str(error))
        return found.group(1) if found else ""
    return str(error.full_key or "")


def full_missing_key(key: str, cfg: DictConfig | None) -> str:
    """``key`` as the full key of the command's config: OmegaConf names it relative to the node it was read
    from (``root`` for ``data.root`` while the data module was being built)."""
    if cfg is None or not key:
        return key or "a value marked ???"
    try:
        missing = [str(name) for name in OmegaConf.missing_keys(cfg)]
    except OmegaConfBaseException:  # it reads every value: one interpolating to the ??? raises again
        return key
    if key in missing:
        return key
    candidates = [name for name in missing if name.endswith(f".{key}")]
    return candidates[0] if len(candidates) == 1 else key


def omegaconf_message(error: OmegaConfBaseException) -> str:
    """OmegaConf's message without the details it appends (the key, the node's type), on one line."""
    return one_line(str(error).split(OMEGACONF_DETAILS)[0])


def one_line(text: str) -> str:
    """A multi-line message joined with ``; `` (a sentence's full stop before it dropped)."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return re.sub(r"\.;", ";", "; ".join(lines))
