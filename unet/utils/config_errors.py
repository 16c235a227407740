"""The config's mistakes that Hydra and OmegaConf find, each as the one line a user can act on.

Hydra reports a command line it cannot compose in several lines (its message, the config search
path, the OmegaConf error beneath it), and OmegaConf names a missing value by its key in the node it
was read from. Every command prints these lines (``error: <line>``, exit code 2), and the Python API
(:mod:`unet.api`) raises them as :class:`~unet.utils.errors.ConfigError`: one text for one mistake,
whichever way in.
"""

from __future__ import annotations

import re

from hydra.errors import MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue, OmegaConfBaseException

# OmegaConf formats its messages as "<message>\n    full_key: <key>\n    object_type=...".
OMEGACONF_DETAILS = "\n    full_key:"


def composition_error_line(error: BaseException) -> str:
    """Hydra's multi-line message about the command line as one line: the key, and the valid options."""
    if isinstance(error, MissingConfigException):
        # "In 'train': Could not find 'data/nope'\n\nAvailable options in 'data':\n\tcamvid\n..."
        text = str(error).split("\nConfig search path:")[0]
        head, _, options = text.partition("Available options in")
        group, _, names = options.partition(":")
        listed = ", ".join(name.strip() for name in names.split() if name.strip())
        line = one_line(head)
        return f"{line}; valid options in {group.strip()}: {listed}" if listed else line
    unknown = re.match(r"Could not override '([^']+)'", str(error))
    missing = re.match(r"Key '([^']+)' is not in struct", str(error.__cause__ or ""))
    if unknown and missing:
        key = unknown.group(1)
        return (
            f"Could not override {key!r}: unknown key, the config has no {missing.group(1)!r} there "
            f"(a typo? --help lists the keys; +{key}=... adds a new key)"
        )
    parts = [str(error)]
    if isinstance(error.__cause__, OmegaConfBaseException):
        parts.append(str(error.__cause__).split(OMEGACONF_DETAILS)[0])
    line = one_line("; ".join(parts))
    if "override grammar" in line or "mismatched input" in line or "no viable alternative" in line:
        line = f"cannot parse the command line: {line}"
    return line


def config_value_line(error: BaseException, cfg: DictConfig | None = None) -> str | None:
    """The line for OmegaConf's error about a value read from the config while a command ran, or ``None``.

    A ``???`` value nobody set is named by its full key, read directly or through an interpolation;
    any other interpolation that cannot resolve (an unknown key, a resolver's refusal) by its message.
    """
    if isinstance(error, MissingMandatoryValue) or _missing_in_interpolation(error):
        key = _missing_key(error, cfg)
        return f"missing value for {key} (e.g. {key}=...; --help lists the keys)"
    if isinstance(error, InterpolationResolutionError):
        text, _, details = str(error).partition(OMEGACONF_DETAILS)
        key = details.split("\n")[0].strip()
        return f"{one_line(text)} (in {key})" if key else one_line(text)
    return None


def one_line(text: str) -> str:
    """A multi-line message joined with ``; `` (a sentence's full stop before it dropped)."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return re.sub(r"\.;", ";", "; ".join(lines))


def _missing_in_interpolation(error: BaseException) -> bool:
    return isinstance(error, InterpolationResolutionError) and "Missing mandatory value" in str(error)


def _missing_key(error: BaseException, cfg: DictConfig | None) -> str:
    """The full key of the missing value: OmegaConf names it relative to the node it was read from."""
    match = re.search(r"Missing mandatory value: ?([\w.\[\]]+)", str(error))
    key = (
        match.group(1)
        if match and _missing_in_interpolation(error)
        else str(getattr(error, "full_key", "") or "")
    )
    if cfg is None or not key:
        return key or "a value marked ???"
    try:
        missing = [str(name) for name in OmegaConf.missing_keys(cfg)]
    except Exception:  # noqa: BLE001 -- the relative key is still a useful answer
        return key
    if key in missing:
        return key
    candidates = [name for name in missing if name.endswith(f".{key}")]
    return candidates[0] if len(candidates) == 1 else key
