"""Decoding image and mask files into numpy arrays in the one layout the rest of the data layer expects.

Images come out as ``(H, W, C)`` arrays with ``C == in_channels``: ``uint8`` for 8-bit files, ``float32`` in
``[0, 1]`` for 16-bit (divided by 65535) and float files (taken as already in ``[0, 1]``). Masks come out as
``(H, W)`` integer label images (palette PNGs give their palette *indices*, not colours), or ``(H, W, 3)``
uint8 colours for colour-coded RGB masks (mapped to classes by ``mask_palette``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from unet.data.errors import ImageReadError

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff")

# ITU-R BT.601 luma, the weights PIL's RGB -> "L" conversion uses.
LUMINANCE_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def pil_to_array(image: Image.Image, as_mask: bool) -> np.ndarray:
    """A decoded PIL image as an array; palette images give indices for masks and RGB colours for images."""
    if image.mode == "1":
        image = image.convert("L")
        return (np.asarray(image) > 0).astype(np.uint8) if as_mask else np.asarray(image)
    if not as_mask and image.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
        image = image.convert("RGBA" if image.mode == "PA" else "RGB")
    return np.asarray(image)


def _read_with_pil(path: Path, as_mask: bool) -> np.ndarray:
    with Image.open(path) as image:
        image.load()  # decode now, so a truncated file fails here and not later
        return pil_to_array(image, as_mask)


def _read_tiff(path: Path, as_mask: bool) -> np.ndarray:
    """First page of a TIFF; tifffile reads 16-bit, float and planar files PIL cannot, PIL is the fallback."""
    try:
        import tifffile
    except ImportError:  # pragma: no cover - tifffile is a declared dependency
        return _read_with_pil(path, as_mask)
    array = np.asarray(tifffile.imread(path, key=0))
    if array.ndim == 3 and array.shape[0] <= 4 < array.shape[-1]:  # planar (C, H, W)
        array = np.moveaxis(array, 0, -1)
    return array


# Decoder per file extension (lower case); anything else goes through PIL.
READERS: dict[str, Callable[[Path, bool], np.ndarray]] = {".tif": _read_tiff, ".tiff": _read_tiff}


def decode(path: Path, as_mask: bool) -> np.ndarray:
    """Decode ``path`` to an array, raising :class:`ImageReadError` naming the file when it cannot be read."""
    reader = READERS.get(path.suffix.lower(), _read_with_pil)
    try:
        return reader(path, as_mask)
    except ImageReadError:
        raise
    except Exception as error:  # PIL/tifffile raise OSError, SyntaxError, ValueError, their own types...
        raise ImageReadError(f"cannot read {'mask' if as_mask else 'image'} file {path}: {error}") from error


def _as_float_or_uint8(array: np.ndarray) -> np.ndarray:
    """uint8 stays (albumentations' fast path); other types become float32 in [0, 1]."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.integer):
        top = 65535.0 if array.size == 0 or int(array.max()) <= 65535 else float(np.iinfo(array.dtype).max)
        return (array.astype(np.float32) / top).clip(0.0, 1.0)
    return array.astype(np.float32)


def to_channels(image: np.ndarray, in_channels: int, source: str) -> np.ndarray:
    """``(H, W)`` or ``(H, W, C)`` image -> ``(H, W, in_channels)``: gray is replicated, RGB becomes luminance.

    Alpha channels (gray+alpha, RGBA) are dropped.
    """
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 2, 3, 4):
        raise ImageReadError(
            f"image {source} has shape {image.shape}; expected (H, W) gray or (H, W, 3) RGB (alpha allowed)"
        )
    channels = image.shape[-1]
    image = image[..., :1] if channels == 2 else image[..., :3] if channels == 4 else image
    if image.shape[-1] == in_channels:
        return image
    if in_channels == 3:
        return np.repeat(image, 3, axis=-1)
    gray = image.astype(np.float32) @ LUMINANCE_WEIGHTS
    if image.dtype == np.uint8:
        gray = np.rint(gray).clip(0, 255).astype(np.uint8)
    return gray[..., None]


def image_array(array: np.ndarray, in_channels: int, source: str) -> np.ndarray:
    """A decoded image as ``(H, W, in_channels)`` uint8 or float32 in [0, 1]."""
    return to_channels(_as_float_or_uint8(np.asarray(array)), in_channels, source)


def label_array(array: np.ndarray, source: str) -> np.ndarray:
    """A decoded mask as an ``(H, W)`` integer label image, or ``(H, W, 3)`` uint8 for a colour mask.

    Alpha channels are dropped. A mask whose colour channels are all equal (a gray mask saved as RGB) becomes
    ``(H, W)``; one with differing channels stays ``(H, W, 3)`` for ``mask_palette`` to map (the encoder
    refuses it without one).
    """
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] in (1, 2, 3, 4):
        colours = array[..., : 3 if array.shape[-1] >= 3 else 1]
        if not (colours == colours[..., :1]).all():
            if colours.dtype != np.uint8 and not (
                np.array_equal(colours, np.round(colours)) and colours.min() >= 0 and colours.max() <= 255
            ):
                raise ImageReadError(f"colour mask {source} holds {colours.dtype} values; expected 8-bit RGB")
            return colours.astype(np.uint8, copy=False)
        array = array[..., 0]
    if array.ndim != 2:
        raise ImageReadError(
            f"mask {source} has shape {array.shape}; expected an (H, W) label image or (H, W, 3) RGB"
        )
    if array.dtype == np.bool_:
        return array.astype(np.uint8)
    if not np.issubdtype(array.dtype, np.integer):
        if not np.array_equal(array, np.round(array)):
            raise ImageReadError(f"mask {source} holds non-integer values; masks must hold class labels")
        array = array.astype(np.int64)
    return array


def read_image(path: Path, in_channels: int) -> np.ndarray:
    """Read an image file as ``(H, W, in_channels)`` uint8 / float32."""
    return image_array(decode(path, as_mask=False), in_channels, str(path))


def read_mask(path: Path) -> np.ndarray:
    """Read a mask file as raw ``(H, W)`` values or ``(H, W, 3)`` colours (before any mapping)."""
    return label_array(decode(path, as_mask=True), str(path))
