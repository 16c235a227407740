"""How a command ends on an error: the user's mistake in one line, our bug with its traceback.

A mistake in the user's input (a :class:`unet.utils.errors.UserError`, raised where it is detected; a
config value left ``???``; a config Hydra cannot compose, :mod:`unet.utils.config_errors`) is one line,
``error: <message>`` on stderr, and exit code 2. Anything else is a bug in unet, never shortened to a
line that hides where it came from: its traceback, then :data:`BUG_REPORT`, and exit code 1.

Nothing here imports torch or Lightning, so the config's mistakes are answered before those load.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from hydra.errors import InstantiationException
from omegaconf import DictConfig

from unet.utils.config_errors import config_value_line, one_line
from unet.utils.errors import UserError

# What a command reports as the user's mistake: the typed errors raised where a mistake is detected.
USER_ERRORS = (UserError,)
USER_ERROR_EXIT_CODE = 2
BUG_EXIT_CODE = 1
BUG_REPORT = "this is a bug in unet, not in your input: please report it with the traceback above"
# Lightning raises MisconfigurationException for Trainer arguments that cannot work (a strategy, a
# precision or devices this machine or Lightning refuses): the user's trainer.* keys. Our own module's
# hooks are exercised by every training test, so one that reaches a user is the trainer config's. Read
# from sys.modules: if Lightning is not loaded, nothing raised it, and this module need not load it.
LIGHTNING_EXCEPTIONS = "lightning.fabric.utilities.exceptions"


@contextmanager
def user_errors_exit(cfg: DictConfig | None = None) -> Iterator[None]:
    """Turn the user's mistakes into ``error: <message>`` on stderr and exit code 2; re-raise anything else.

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
    """The one line to show for ``error`` if the user caused it, else ``None`` (a bug: keep the traceback).

    Hydra wraps what an object built from the config raised (:class:`InstantiationException`): the
    reason is looked for beneath it.
    """
    for cause in _instantiation_causes(error):
        if isinstance(cause, USER_ERRORS):
            return str(cause)
        line = config_value_line(cause, cfg)
        if line is not None:
            return line
        if _is_lightning_misconfiguration(cause):
            return one_line(str(cause))
    return None


def _instantiation_causes(error: BaseException) -> Iterator[BaseException]:
    """``error``, then, while it is Hydra's wrapper of an object's construction, what that raised."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        if not isinstance(error, InstantiationException):
            return
        error = error.__cause__ or error.__context__


def _is_lightning_misconfiguration(error: BaseException) -> bool:
    exceptions = sys.modules.get(LIGHTNING_EXCEPTIONS)
    return exceptions is not None and isinstance(error, exceptions.MisconfigurationException)


def report_and_exit(message: BaseException | str) -> NoReturn:
    """The user's mistake: ``error: <message>`` on stderr, exit code 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(USER_ERROR_EXIT_CODE)


def report_bug_and_exit(error: BaseException) -> NoReturn:
    """Our bug: its traceback, then one line asking for a report, exit code 1."""
    traceback.print_exception(error)
    print(BUG_REPORT, file=sys.stderr)
    sys.exit(BUG_EXIT_CODE)
