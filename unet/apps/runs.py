"""What every app does with its run directory and its errors."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError

from unet.data.errors import DataError
from unet.training.checkpoint import CheckpointError

# Errors caused by the user's input or config: reported as one clear line, exit code 2.
USER_ERRORS = (DataError, CheckpointError, ValueError, FileNotFoundError, FileExistsError, FloatingPointError)


@contextmanager
def user_errors_exit() -> Iterator[None]:
    """Turn expected input errors into ``error: <message>`` on stderr and exit code 2, not a traceback."""
    try:
        yield
    except USER_ERRORS as error:
        report_and_exit(error)
    except InstantiationException as error:
        # Hydra wraps errors raised while building an object from config; show the user's error.
        if isinstance(error.__cause__, USER_ERRORS):
            report_and_exit(error.__cause__)
        raise


def report_and_exit(error: BaseException) -> NoReturn:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)


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


def refuse_to_overwrite(output_dir: Path, resume_from: str | None) -> None:
    """Stop before a new run writes over an earlier run's checkpoints or metrics in the same directory.

    Resuming a run in its own directory (``ckpt_path`` inside it) is allowed.
    """
    earlier = [p for p in (output_dir / "metrics.json", output_dir / "checkpoints") if p.exists()]
    if not earlier:
        return
    if resume_from and Path(resume_from).resolve().is_relative_to(output_dir.resolve()):
        return
    raise FileExistsError(
        f"{output_dir} already holds the outputs of an earlier run ({', '.join(p.name for p in earlier)}); "
        "choose a new hydra.run.dir, or resume that run with ckpt_path pointing into it"
    )


def key_value_config(config_name: str, arguments: Sequence[str]) -> DictConfig:
    """``configs/<name>.yaml`` with ``key=value`` arguments merged in, for apps that are not Hydra apps.

    (``unet-predict model=<file>`` cannot be a Hydra app: ``model`` is a config group there.) Unknown
    keys and missing required values are errors that name the key and list the valid ones.
    """
    text = (resources.files("unet.configs") / f"{config_name}.yaml").read_text()
    defaults = OmegaConf.create(text)
    OmegaConf.set_struct(defaults, True)
    malformed = [argument for argument in arguments if "=" not in argument]
    if malformed:
        raise ValueError(f"arguments must be key=value; got {malformed}. Keys: {', '.join(defaults.keys())}")
    try:
        cfg = OmegaConf.merge(defaults, OmegaConf.from_dotlist(list(arguments)))
    except ConfigKeyError as error:
        raise ValueError(f"{error.msg.splitlines()[0]}; valid keys: {', '.join(defaults.keys())}") from None
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ValueError(f"missing value for {', '.join(missing)} (e.g. {missing[0]}=...)")
    return cfg
