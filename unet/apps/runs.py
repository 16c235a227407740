"""How every command reports a user's mistake: one line naming it on stderr, exit code 2, no traceback."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from hydra.errors import InstantiationException
from omegaconf.errors import MissingMandatoryValue

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
    except MissingMandatoryValue as error:
        report_and_exit(
            f"missing value for {error.full_key} (e.g. {error.full_key}=...; --help lists the keys)"
        )
    except InstantiationException as error:
        # Hydra wraps errors raised while building an object from config; show the user's error.
        if isinstance(error.__cause__, USER_ERRORS):
            report_and_exit(error.__cause__)
        raise


def report_and_exit(error: BaseException | str) -> NoReturn:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)
