"""The data layer's exceptions: the user's data or data config is wrong, reported as one clear line."""

from __future__ import annotations

from unet.utils.errors import UserError


class DataError(UserError, ValueError):
    """Bad or missing input data; the message names the file or directory and what was expected."""


class DataNotFoundError(DataError, FileNotFoundError):
    """A root, directory, file or split that the configuration points at does not exist or is empty."""


class PairingError(DataError):
    """Images without masks or masks without images."""


class ImageReadError(DataError):
    """An image or mask file that cannot be decoded (truncated, corrupt, unsupported layout)."""


class MaskValueError(DataError):
    """A mask holding values that are neither a class index, the ignore index, nor a mapped raw value."""


class LossyMaskError(MaskValueError):
    """A mask saved in a lossy format (JPEG): its values near edges are no longer the labels drawn."""


class SizeMismatchError(DataError):
    """An image and its mask of different height/width."""


class AnnotationError(DataError):
    """A labelling tool's annotation file that cannot be read, or that names an image, class or shape wrongly."""
