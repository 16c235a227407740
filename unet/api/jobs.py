"""A command's config composed and run in this process, as its Hydra app composes and runs it.

:func:`command_config` composes the command's config file with the overrides the keywords stand for
(:mod:`unet.api.keywords`); :func:`run_job` calls a library function on it with Hydra's job settings in
place and the checks every command makes first (:func:`unet.utils.config_checks.check_before_running`).
The user's mistakes come out as the typed errors the commands report, with the same text: a config
Hydra cannot compose or a value OmegaConf cannot read as :class:`~unet.utils.errors.ConfigError`
(:mod:`unet.utils.config_errors`), an error raised while building an object from the config as
itself, not wrapped in Hydra's ``InstantiationException``.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, InstantiationException
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from unet.api.keywords import key_overrides, keyword_arguments, keyword_overrides
from unet.utils.config import compose_config
from unet.utils.config_checks import check_before_running
from unet.utils.config_errors import composition_error_line, config_value_line
from unet.utils.errors import ConfigError
from unet.utils.renamed_keys import renamed_key_line
from unet.utils.runtime import apply_runtime

Result = TypeVar("Result")


def compose(config_name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """The command's config composed from command-line ``overrides``, with its ``hydra`` node."""
    try:
        return compose_config(config_name, overrides, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as error:
        raise ConfigError(composition_error_line(error)) from error


def command_config(
    config_name: str,
    keywords: Mapping[str, Any],
    overrides: Sequence[str] = (),
) -> tuple[DictConfig, list[str]]:
    """The config the command composes from ``overrides`` and ``keywords`` (as overrides after them, by
    :mod:`unet.api.keywords`' rule), with its ``hydra`` node; and all those overrides, in order.

    A key of an earlier version, as a keyword or an override, is refused naming its new spelling."""
    renamed = renamed_key_line(config_name, [*overrides, *keyword_arguments(keywords)])
    if renamed:
        raise ConfigError(renamed)
    cfg = compose(config_name, overrides)
    selections, others = keyword_overrides(cfg, keywords)
    if selections:
        cfg = compose(config_name, [*overrides, *selections])
    settings = key_overrides(cfg, others, config_name)
    everything = [*overrides, *selections, *settings]
    return (compose(config_name, everything) if settings else cfg), everything


def task_config(cfg: DictConfig) -> DictConfig:
    """``cfg`` without its ``hydra`` node: what a command's function receives."""
    task = copy.deepcopy(cfg)
    with read_write(task), open_dict(task):
        del task["hydra"]
    return task


@contextmanager
def hydra_job(cfg: DictConfig) -> Iterator[DictConfig]:
    """The task config of ``cfg`` (composed with its ``hydra`` node), with the job settings Hydra's
    ``run_job`` makes for a command in place: the run directory (``hydra.run.dir``, resolved once) as
    ``hydra.runtime.output_dir``, which ``paths.output_dir`` interpolates, and ``cfg`` as the job's
    config (``${hydra:...}``, ``HydraConfig.get()``), the previous one restored after.

    Unlike a command, the job writes neither Hydra's ``.hydra/`` copies of the config nor its log file,
    and leaves the caller's logging as it is.
    """
    cfg = copy.deepcopy(cfg)
    output_dir = os.path.abspath(str(OmegaConf.select(cfg, "hydra.run.dir")))
    with read_write(cfg.hydra.runtime), open_dict(cfg.hydra.runtime):
        cfg.hydra.runtime.output_dir = output_dir
    previous = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(cfg)
    try:
        yield task_config(cfg)
    finally:
        HydraConfig.instance().cfg = previous


def run_job(cfg: DictConfig, function: Callable[[DictConfig], Result]) -> Result:
    """``function`` of the task config of ``cfg``, run as its command runs it (see :func:`hydra_job`),
    after the checks every command makes and its ``runtime`` settings (threads); the user's mistakes raised as the commands report them."""
    with hydra_job(cfg) as task:
        try:
            check_before_running(task)
            apply_runtime(task.get("runtime"))
            return function(task)
        except Exception as error:
            cause = _built_from(error)
            line = config_value_line(cause, task)
            if line is not None:
                raise ConfigError(line) from error
            if cause is error:
                raise
            # The error itself, as the command reports it, with its own cause (Hydra's wrapper left out).
            raise cause from cause.__cause__


def _built_from(error: BaseException) -> BaseException:
    """What building an object from the config raised, beneath Hydra's ``InstantiationException``s."""
    while isinstance(error, InstantiationException) and (error.__cause__ or error.__context__):
        error = error.__cause__ or error.__context__
    return error
