"""The user's mistakes, as types: every command reports these as one line and exit code 2.

Anything else that escapes a command is our bug: it keeps its traceback, with a line asking for a
report (:mod:`unet.apps.errors`). So a mistake we detect in the user's input is raised as one of
these classes, where it is detected, with a message naming the key or file and what was expected.
They subclass the built-in error a caller would otherwise expect (``ValueError``, ``FileNotFoundError``),
so library callers catching those keep working.
"""

from __future__ import annotations


class UserError(Exception):
    """Base class: the user's input (a config value, a file, the data) is wrong; the message says how."""


class ConfigError(UserError, ValueError):
    """A config key's value that cannot work (out of range, inconsistent with another key)."""


class InputFileError(UserError, ValueError):
    """A file the user named is of the wrong kind, damaged, or unsafe to read."""


class InputNotFoundError(UserError, FileNotFoundError):
    """A file or directory the user named does not exist."""


class OutputExistsError(UserError, FileExistsError):
    """An output the command would write already exists (nothing a user made is overwritten)."""


class EnvironmentMismatchError(UserError, RuntimeError):
    """What the config asks for is missing on this machine (a CUDA device, a CPU feature)."""


class TrainingDivergedError(UserError, FloatingPointError):
    """The loss or the weights became NaN or infinite: too high a learning rate, or values in the data."""
