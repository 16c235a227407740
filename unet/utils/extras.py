"""Optional dependencies, installed as extras of the package (``pip install "unet[export]"``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from unet.utils.errors import UserError


class MissingExtraError(UserError, ModuleNotFoundError):
    """A package of an extra that is not installed; the message names the extra to install."""


def install_hint(extra: str) -> str:
    """The one way every message tells the user to install an extra."""
    return f'pip install "unet[{extra}]" (or pip install -e ".[{extra}]" in a checkout)'


@contextmanager
def requires_extra(extra: str) -> Iterator[None]:
    """Imports inside it that fail for a missing package end in one line naming ``extra``, e.g.
    ``onnxruntime is not installed: pip install "unet[export]"``."""
    try:
        yield
    except ModuleNotFoundError as error:
        package = (error.name or "a package").split(".")[0]
        raise MissingExtraError(
            f"{package} is not installed: {install_hint(extra)}",
            name=error.name,
        ) from None
