"""How every command reports a user's mistake: one line naming it on stderr, exit code 2, no traceback.

Every command is declared with :func:`hydra_app` instead of ``hydra.main``. It catches two kinds of
mistakes: the config's (an unknown key or group option, bad override syntax, a value of the wrong
type: Hydra itself would print several lines and exit 1), and the input's, raised while the command
runs (:data:`USER_ERRORS`, a missing ``???`` value, a device this machine lacks).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import hydra
from hydra.errors import HydraException, InstantiationException
from hydra.experimental.callback import Callback
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from unet.apps import CONFIG_PATH
from unet.data.errors import DataError
from unet.training.checkpoint import CheckpointError
from unet.training.run import check_run_directory
from unet.utils.config_checks import check_before_running
from unet.utils.config_errors import composition_error_line, config_value_line, one_line
from unet.utils.extras import MissingExtraError
from unet.utils.files import DiskFullError

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
                    check_before_running(cfg)
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
                report_and_exit(composition_error_line(error))

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
        line = config_value_line(cause, cfg)
        if line is not None:
            return line
        if isinstance(cause, USER_ERRORS):
            text = str(cause)
            if "Expected more than 1 value per channel when training" in text:
                return (
                    f"BatchNorm got a batch with one value per channel ({text.split('got ')[-1]}): a batch of "
                    f"one sample whose bottleneck is 1x1. {BATCH_NORM_FIXES}"
                )
            return text
        if isinstance(cause, MisconfigurationException):
            return one_line(str(cause))
        if not isinstance(cause, InstantiationException):
            return None
    return None


def _causes(error: BaseException) -> Iterator[BaseException]:
    """``error``, then what it was raised from (Hydra wraps errors raised while building an object)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or (error.__context__ if isinstance(error, InstantiationException) else None)


def report_and_exit(error: BaseException | str) -> NoReturn:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)
