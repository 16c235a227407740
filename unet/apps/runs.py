"""How every command reports a user's mistake: one line naming it on stderr, exit code 2, no traceback.

Every command is declared with :func:`hydra_app` instead of ``hydra.main``. It catches two kinds of
mistakes: the config's (an unknown key or group option, bad override syntax, a value of the wrong
type: Hydra itself would print several lines and exit 1), and the input's, raised while the command
runs (:data:`USER_ERRORS`, a missing ``???`` value, a device this machine lacks).
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, InstantiationException, MissingConfigException
from hydra.experimental.callback import Callback
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue, OmegaConfBaseException

from unet.apps import CONFIG_PATH
from unet.data.errors import DataError
from unet.models.safe_loading import CheckpointError
from unet.training.run import check_run_directory
from unet.utils.config import check_override_types
from unet.utils.extras import MissingExtraError
from unet.utils.files import DiskFullError
from unet.utils.limits import check_num_classes

# Errors caused by the user's input or config: reported as one clear line, exit code 2.
USER_ERRORS = (
    DataError, CheckpointError, ValueError, FileNotFoundError, FileExistsError, FloatingPointError, DiskFullError,
    MissingExtraError,
)  # fmt: skip
# What the user is told to change when BatchNorm meets a batch of one value per channel.
BATCH_NORM_FIXES = (
    "model.net.norm=group (or instance) works at any batch size; or a larger data.batch_size, "
    "larger crops (augment.crop), a smaller model.net.depth, or data.drop_last=true"
)
# Config keys that name a device, and the value to use instead when CUDA is missing.
DEVICE_KEYS = {"device": "cpu", "costs.device": "cpu", "trainer.accelerator": "cpu"}
HYDRA_FULL_ERROR = "HYDRA_FULL_ERROR"
# Marks an exception raised by the command itself (not by Hydra composing its config).
_FROM_COMMAND = "_unet_raised_by_command"


def hydra_app(
    config_name: str, config_path: str = CONFIG_PATH
) -> Callable[[Callable[[DictConfig], Any]], Callable[..., Any]]:
    """``hydra.main`` for our commands: config mistakes and input errors are one line and exit code 2.

    ``--help``, ``--cfg job``, ``-m`` sweeps and ``main(cfg)`` (a composed config, as in tests) work as
    with ``hydra.main``; a successful run exits 0, and an unexpected error still shows its traceback.
    """

    def decorator(command: Callable[[DictConfig], Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def checked_command(cfg: DictConfig) -> Any:
            try:
                with user_errors_exit(cfg):
                    if HydraConfig.initialized():
                        # unresolved: an override's value may itself be an interpolation (x=${y})
                        overrides = OmegaConf.to_container(HydraConfig.get().overrides.task, resolve=False)
                        check_override_types(cfg, overrides)
                    check_devices(cfg)
                    check_config_sizes(cfg)
                    return command(cfg)
            except Exception as error:
                _mark(error)
                raise

        hydra_main = hydra.main(version_base="1.3", config_path=config_path, config_name=config_name)(
            checked_command
        )

        @functools.wraps(command)
        def main(cfg: DictConfig | None = None) -> Any:
            if cfg is not None:
                return hydra_main(cfg)
            # Hydra prints its own errors and exits 1 unless this is set; then they reach us.
            previous = os.environ.get(HYDRA_FULL_ERROR)
            os.environ[HYDRA_FULL_ERROR] = "1"
            try:
                return hydra_main()
            except (HydraException, OmegaConfBaseException) as error:
                if getattr(error, _FROM_COMMAND, False) or previous == "1":
                    raise
                report_and_exit(config_error_line(error))

            finally:
                if previous is None:
                    os.environ.pop(HYDRA_FULL_ERROR, None)
                else:
                    os.environ[HYDRA_FULL_ERROR] = previous

        return main

    return decorator


class GuardRunDirectory(Callback):
    """Hydra callback of ``unet-train``: refuse its run directory before Hydra writes into it.

    Hydra writes ``.hydra/config.yaml`` and appends to the log before the command starts, so a check
    inside the command (:func:`unet.training.run.train` takes the lock) would come after another live
    run's or a finished run's config was already overwritten. Sweeps give every job a new directory.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if rank_zero_only.rank != 0:  # a distributed run's other processes join the first one's directory
            return
        # Hydra turns a callback's exception into a warning and goes on: exit here instead.
        with user_errors_exit(config):
            check_run_directory(Path(config.hydra.run.dir), config.get("ckpt_path"))


def _mark(error: BaseException) -> None:
    try:
        setattr(error, _FROM_COMMAND, True)
    except AttributeError:  # an exception type with __slots__: left unmarked
        pass


def config_error_line(error: BaseException) -> str:
    """Hydra's multi-line message about the command line as one line: the key, and the valid options."""
    if isinstance(error, MissingConfigException):
        # "In 'train': Could not find 'data/nope'\n\nAvailable options in 'data':\n\tcamvid\n..."
        text = str(error).split("\nConfig search path:")[0]
        head, _, options = text.partition("Available options in")
        group, _, names = options.partition(":")
        listed = ", ".join(name.strip() for name in names.split() if name.strip())
        line = _one_line(head)
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
        parts.append(str(error.__cause__).split("\n    full_key:")[0])
    line = _one_line("; ".join(parts))
    if "override grammar" in line or "mismatched input" in line or "no viable alternative" in line:
        line = f"cannot parse the command line: {line}"
    return line


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return re.sub(r"\.;", ";", "; ".join(lines))


def check_devices(cfg: DictConfig) -> None:
    """Refuse a CUDA device on a machine without one, naming the key and what to use instead.

    Lightning would raise its MisconfigurationException (a traceback) and torch a RuntimeError deep inside.
    """
    if torch.cuda.is_available():
        return
    for key, instead in DEVICE_KEYS.items():
        value = OmegaConf.select(
            cfg, key, default=None, throw_on_missing=False, throw_on_resolution_failure=False
        )
        if isinstance(value, str) and (value in ("gpu", "cuda") or value.startswith("cuda:")):
            raise ValueError(
                f"{key}={value}: no CUDA device is available on this machine (torch.cuda.is_available() is "
                f"false); use {key}={instead}"
            )


def check_config_sizes(cfg: DictConfig) -> None:
    """Refuse a typo'd class count before the data are read: per-class statistics of the data
    fingerprint, confusion matrices and the network would take gigabytes first."""
    for key in ("data.num_classes", "num_classes"):
        value = OmegaConf.select(
            cfg, key, default=None, throw_on_missing=False, throw_on_resolution_failure=False
        )
        if isinstance(value, int):
            check_num_classes(value, key)


@contextmanager
def user_errors_exit(cfg: DictConfig | None = None) -> Iterator[None]:
    """Turn expected input errors into ``error: <message>`` on stderr and exit code 2, not a traceback.

    ``cfg`` (the command's config) lets a missing value be named by its full key (``data.root``) even
    when it was read from a node of it, e.g. while the data module was being built.
    """
    try:
        yield
    except Exception as error:
        message = user_error_message(error, cfg)
        if message is None:
            raise
        report_and_exit(message)


def user_error_message(error: BaseException, cfg: DictConfig | None = None) -> str | None:
    """The one line to show for ``error`` if the user caused it, else ``None`` (a bug: keep the traceback)."""
    for cause in _causes(error):
        if isinstance(cause, MissingMandatoryValue) or _missing_in_interpolation(cause):
            key = _missing_key(cause, cfg)
            return f"missing value for {key} (e.g. {key}=...; --help lists the keys)"
        if isinstance(cause, USER_ERRORS):
            text = str(cause)
            if "Expected more than 1 value per channel when training" in text:
                return (
                    f"BatchNorm got a batch with one value per channel ({text.split('got ')[-1]}): a batch of "
                    f"one sample whose bottleneck is 1x1. {BATCH_NORM_FIXES}"
                )
            return text
        if isinstance(cause, InterpolationResolutionError):
            return _omegaconf_line(cause)
        if isinstance(cause, MisconfigurationException):
            return _one_line(str(cause))
        if not isinstance(cause, InstantiationException):
            return None
    return None


def _omegaconf_line(error: BaseException) -> str:
    """OmegaConf's message and the key it concerns, on one line."""
    text, _, details = str(error).partition("\n    full_key:")
    key = details.split("\n")[0].strip()
    return f"{_one_line(text)} (in {key})" if key else _one_line(text)


def _causes(error: BaseException) -> Iterator[BaseException]:
    """``error``, then what it was raised from (Hydra wraps errors raised while building an object)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or (error.__context__ if isinstance(error, InstantiationException) else None)


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


def report_and_exit(error: BaseException | str) -> NoReturn:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)
