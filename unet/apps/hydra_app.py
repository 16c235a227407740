"""Every command's ``hydra.main``: :func:`hydra_app`, with the checks made before a command starts.

It answers a config Hydra cannot compose, and a user's mistake the command raises, in one line with
exit code 2, and our bugs with their traceback and a request to report them (:mod:`unet.apps.errors`).
Before the command runs it refuses what would otherwise fail late or deep inside a library: an
override's value of the wrong type, a CUDA device this machine lacks, a class count that is a typo;
:class:`GuardRunDirectory` refuses ``unet-train``'s run directory before Hydra writes into it.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from unet.apps import CONFIG_PATH
from unet.apps.errors import report_and_exit, report_bug_and_exit, user_errors_exit
from unet.apps.help import HELP_FLAGS, config_groups_read_once
from unet.utils.config import override_key
from unet.utils.config_checks import check_before_running, check_before_writing
from unet.utils.config_errors import composition_error_line
from unet.utils.renamed_keys import renamed_key_line

HYDRA_FULL_ERROR = "HYDRA_FULL_ERROR"
# Set beside HYDRA_FULL_ERROR=1 when we set it, not the user: the processes a command starts (a
# comparison's trainings, a race's contenders) inherit both, and still answer a mistake in one line.
FULL_ERROR_SET_BY_UNET = "UNET_SET_HYDRA_FULL_ERROR"
# Marks an exception raised by the command itself (not by Hydra composing its config).
_FROM_COMMAND = "_unet_raised_by_command"


def hydra_app(
    config_name: str, config_path: str = CONFIG_PATH
) -> Callable[[Callable[[DictConfig], Any]], Callable[..., Any]]:
    """``hydra.main`` for our commands: config mistakes and user errors are one line and exit code 2.

    A key of an earlier version is answered with its new spelling (:mod:`unet.utils.renamed_keys`).
    ``--help``, ``--cfg job``, ``-m`` sweeps and ``main(cfg)`` (a composed config, as in tests: a bug
    raises as it would from a library call) work as with ``hydra.main``; a successful run exits 0,
    and a bug shows its traceback and a request to report it, with exit code 1.
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
            renamed = renamed_key_line(config_name, sys.argv[1:])
            if renamed:  # before Hydra calls it unknown (or, added with +, keeps and ignores it)
                report_and_exit(renamed)
            warn_repeated_keys(sys.argv[1:])
            # Hydra prints its own errors and exits 1 unless this is set; then they reach us.
            previous = {name: os.environ.get(name) for name in (HYDRA_FULL_ERROR, FULL_ERROR_SET_BY_UNET)}
            user_asked = previous[HYDRA_FULL_ERROR] == "1" and previous[FULL_ERROR_SET_BY_UNET] is None
            os.environ[HYDRA_FULL_ERROR] = "1"
            if not user_asked:
                os.environ[FULL_ERROR_SET_BY_UNET] = "1"
            try:
                if any(flag in sys.argv[1:] for flag in HELP_FLAGS):
                    with config_groups_read_once():
                        return hydra_main()
                return hydra_main()
            except Exception as error:
                if not _from_composition(error):
                    report_bug_and_exit(error)
                if user_asked:  # the user asked for Hydra's full report
                    raise
                report_and_exit(composition_error_line(error))
            finally:
                for name, value in previous.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value

        return main

    return decorator


def warn_repeated_keys(arguments: list[str]) -> None:
    """One line on stderr per key given twice on the command line, naming both values: Hydra keeps the
    last one silently, which hides a typo in a long command."""
    seen: dict[str, str] = {}
    for argument in arguments:
        if argument.startswith("-") or "=" not in argument:
            continue
        key, value = override_key(argument), argument.partition("=")[2]
        if key in seen:
            print(
                f"warning: {key} is given twice ({key}={seen[key]} and {key}={value}); the last one, "
                f"{key}={value}, is used",
                file=sys.stderr,
            )
        seen[key] = value


def _mark(error: BaseException) -> None:
    try:
        setattr(error, _FROM_COMMAND, True)
    except AttributeError:  # an exception type with __slots__: left unmarked
        pass


def _from_composition(error: BaseException) -> bool:
    """Whether Hydra raised ``error`` composing the config from the command line (not the command)."""
    return isinstance(error, HydraException | OmegaConfBaseException) and not getattr(
        error, _FROM_COMMAND, False
    )


class CheckBeforeWriting(Callback):
    """Hydra callback of every command (configs/hydra/default.yaml): refuse a missing data root or a
    class count that cannot work before Hydra writes the run's directory, and before torch loads."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Hydra turns a callback's exception into a warning and goes on: exit here instead.
        with user_errors_exit(config):
            check_before_writing(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.on_run_start(config)


class GuardRunDirectory(Callback):
    """Hydra callback of ``unet-train``: refuse its run directory before Hydra writes into it.

    Hydra writes ``.hydra/config.yaml`` and appends to the log before the command starts, so a check
    inside the command (:func:`unet.training.run.train` takes the lock) would come after another live
    run's or a finished run's config was already overwritten. Sweeps give every job a new directory.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        CheckBeforeWriting().on_run_start(config)  # first, whichever order Hydra calls the callbacks in
        if config.get("ckpt_path") is None and not Path(config.hydra.run.dir).exists():
            return  # a new run into a new directory: nothing to guard, and torch need not load yet
        from lightning.pytorch.utilities import rank_zero_only

        from unet.training.run import check_run_directory

        if rank_zero_only.rank != 0:  # a distributed run's other processes join the first one's directory
            return
        # Hydra turns a callback's exception into a warning and goes on: exit here instead.
        with user_errors_exit(config):
            check_run_directory(Path(config.hydra.run.dir), config.get("ckpt_path"))
