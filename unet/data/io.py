"""Decoding image and mask files into numpy arrays in the one layout the rest of the data layer expects.

Images come out as ``(H, W, C)`` arrays with ``C == in_channels`` (any ``C >= 1``): ``uint8`` for 8-bit files, ``float32`` in
``[0, 1]`` for 16-bit (divided by 65535) and float files. Float images must already hold intensities in
``[0, 1]`` (rounding up to :data:`FLOAT_TOLERANCE` outside is clipped): any other range, NaN or infinity is
refused naming the file and what was found: no rescaling rule fits every float image, and one applied per
file (its own min..max) would give the same intensity different values in different images. Masks come out as
``(H, W)`` integer label images (palette-mode PNGs and GIFs give their palette *indices*, not colours), or ``(H, W, 3)``
uint8 colours for colour-coded RGB masks (mapped to classes by ``mask_palette``).

Files are read as a viewer shows them: the EXIF orientation of JPEG/PNG/WebP files (and the TIFF
orientation tag) is applied, to images and masks alike, so a phone photo stored sideways with
orientation 6 is read (and predicted) upright. Files holding several images (multi-page TIFF stacks,
animated GIF/PNG/WebP) are refused with their page count instead of silently reading the first one;
camera MPO JPEGs are the exception: their first image is the photo, the others are previews. A page of
a stack is read when asked for by a :class:`Page` (stacks are paired page by page in
:mod:`unet.data.stacks`).

Channels: a file holding ``in_channels`` channels is read as it is; gray files are replicated for 3, RGB
reduced to luminance for 1 (alpha dropped), and any other count is refused naming the file and both
counts. A TIFF's own PlanarConfiguration tag says whether its samples are ``(H, W, C)`` or ``(C, H, W)``,
so neither layout is guessed; a TIFF of ``in_channels`` > 1 single-channel pages (``tifffile.imwrite``'s
default for a ``(C, H, W)`` array, ImageJ's channels) is one image of those channels. An image may also
be several single-channel files (a tuple of paths), stacked in order as its channels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from unet.data.errors import ImageReadError

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".gif")

# Float images within this much of [0, 1] are clipped to it (rounding from a conversion); beyond, refused.
FLOAT_TOLERANCE = 1e-3

# EXIF / TIFF tag holding the orientation (1: as stored; 2..8: flips and quarter turns to display it).
ORIENTATION_TAG = 0x0112

# Lossy formats by file extension (lower case): masks saved in them hold values changed near edges.
LOSSY_EXTENSIONS: dict[str, str] = {".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".jfif": "JPEG"}

# ITU-R BT.601 luma, the weights PIL's RGB -> "L" conversion uses.
LUMINANCE_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)

# TIFF PlanarConfiguration value of samples stored plane by plane: tifffile gives such a page ``(C, H, W)``.
PLANAR_SEPARATE = 2

# The channel counts converted to others (gray <-> RGB, alpha dropped); any other mismatch is refused.
CONVERTED_CHANNELS = (1, 3)


@dataclass(frozen=True, order=True)
class Page:
    """Page ``index`` (counted from 0) of the multi-page TIFF ``path``: one 2D slice of a stack.

    Named ``stack.tif/page3``: as if the stack were a folder of its pages, so per-image scores name each
    slice by its stack and page (:func:`unet.evaluation.per_image.image_names`).
    """

    path: Path
    index: int

    def __str__(self) -> str:
        return f"{self.path}/page{self.index}"


# What one image is read from: a file, one page of a stack, or single-channel files stacked as channels.
ImageFile = Path | Page | tuple[Path, ...]


def source_files(source: ImageFile) -> tuple[Path, ...]:
    """The files ``source`` is read from (a page's stack file; each of a tuple's files)."""
    if isinstance(source, Page):
        return (source.path,)
    return tuple(source) if isinstance(source, tuple) else (source,)


def source_name(source: ImageFile) -> str:
    """``source`` as messages name it: a file's path, ``stack.tif/page3``, tuples joined by ``;``."""
    return ";".join(str(path) for path in source) if isinstance(source, tuple) else str(source)


def pil_to_array(image: Image.Image, as_mask: bool) -> np.ndarray:
    """A decoded PIL image as an array; palette images give indices for masks and RGB colours for images."""
    if image.mode == "1":
        image = image.convert("L")
        return (np.asarray(image) > 0).astype(np.uint8) if as_mask else np.asarray(image)
    if not as_mask and image.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
        image = image.convert("RGBA" if image.mode == "PA" else "RGB")
    return np.asarray(image)


def _what(as_mask: bool) -> str:
    return "mask" if as_mask else "image"


def refuse_several_images(path: Path, count: int, unit: str, as_mask: bool) -> None:
    """Refuse a file holding ``count`` > 1 pages/frames: reading one of them would hide the others."""
    if count > 1:
        fix = (
            f"pair it with a {'mask' if not as_mask else 'image'} stack of {count} pages (slices pair by page)"
            if unit == "page"
            else f"split the animation into one file per {unit}"
        )
        raise ImageReadError(
            f"{_what(as_mask)} {path} has {count} {unit}s; unet reads single-{unit} images: {fix}"
        )


def _frame_count(image: Image.Image) -> int:
    """Images in a PIL file; an MPO (camera JPEG with previews) counts as its one primary photo."""
    return 1 if image.format == "MPO" else int(getattr(image, "n_frames", 1))


def orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """``(H, W, ...)`` as stored -> as displayed, for an EXIF/TIFF orientation (what ``exif_transpose`` does)."""
    if orientation == 2:
        return array[:, ::-1]
    if orientation == 3:
        return array[::-1, ::-1]
    if orientation == 4:
        return array[::-1]
    if orientation == 5:
        return array.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(array, -1)
    if orientation == 7:
        return array.swapaxes(0, 1)[::-1, ::-1]
    if orientation == 8:
        return np.rot90(array, 1)
    return array


def _read_with_pil(path: Path, as_mask: bool) -> np.ndarray:
    with Image.open(path) as image:
        refuse_several_images(path, _frame_count(image), "frame", as_mask)
        image.load()  # decode now, so a truncated file fails here and not later (and PNG EXIF is read)
        if image.getexif().get(ORIENTATION_TAG, 1) in range(2, 9):
            return pil_to_array(ImageOps.exif_transpose(image), as_mask)
        return pil_to_array(image, as_mask)


def _tiff_orientation(page: object) -> int:
    tags = getattr(page, "tags", None)
    value = tags.valueof(ORIENTATION_TAG, 1) if tags is not None else 1
    return int(getattr(value, "value", value) or 1)


def _full_pages(tiff: object) -> list[object]:
    """The pages of a TIFF that are images of their own (reduced-resolution previews left out)."""
    return [page for page in tiff.pages if not getattr(page, "is_reduced", False)]  # type: ignore[attr-defined]


def tiff_page_count(path: Path) -> int:
    """The pages of a TIFF that are images of their own (what :class:`Page` indices count)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tiff:
            return len(_full_pages(tiff))
    except Exception as error:
        raise ImageReadError(f"cannot read TIFF file {path}: {error}") from error


def _page_array(page: object) -> np.ndarray:
    """A TIFF page as displayed, channels last: the file's PlanarConfiguration says where they are."""
    array = np.asarray(page.asarray())  # type: ignore[attr-defined]
    if array.ndim == 3 and getattr(page, "planarconfig", None) == PLANAR_SEPARATE:
        array = np.moveaxis(array, 0, -1)
    return np.ascontiguousarray(orient(array, _tiff_orientation(page)))


def _pages_as_channels(pages: list[object], channels: int | None) -> bool:
    """Whether ``pages`` are the ``channels`` > 1 single-channel planes of one image."""
    if channels is None or channels < 2 or len(pages) != channels:
        return False
    return len({tuple(page.shape) for page in pages}) == 1 and len(pages[0].shape) == 2  # type: ignore[attr-defined]


def _read_tiff(path: Path, as_mask: bool, channels: int | None = None, page: int | None = None) -> np.ndarray:
    """The one image of a TIFF (or page ``page`` of a stack); tifffile reads 16-bit, float and planar files.

    ``channels``: an image's ``in_channels``; a file of that many single-channel pages is one image of
    those channels.
    """
    import tifffile

    with tifffile.TiffFile(path) as tiff:
        pages = _full_pages(tiff)
        if page is not None:
            if not 0 <= page < len(pages):
                raise ImageReadError(f"{_what(as_mask)} {path} has {len(pages)} pages, no page {page}")
            return _page_array(pages[page])
        if _pages_as_channels(pages, channels):
            return np.stack([_page_array(plane) for plane in pages], axis=-1)
        refuse_several_images(path, len(pages), "page", as_mask)
        return _page_array(pages[0])


def image_size(source: ImageFile) -> tuple[int, int]:
    """``(H, W)`` of an image file (or page; or a tuple's first file) as displayed (orientation applied),
    from its header: no pixels decoded.

    What batching checks need to compare sizes of files that are not yet (or never) held in memory.
    """
    path, index = (source.path, source.index) if isinstance(source, Page) else (source_files(source)[0], None)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tiff:
                page = tiff.pages[0] if index is None else _full_pages(tiff)[index]
                height, width = int(page.imagelength), int(page.imagewidth)  # type: ignore[union-attr]
                orientation = _tiff_orientation(page)
        else:
            with Image.open(path) as image:
                width, height = image.size
                orientation = int(image.getexif().get(ORIENTATION_TAG, 1) or 1)
    except Exception as error:
        raise ImageReadError(f"cannot read image file {path}: {error}") from error
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)


# PIL's image modes as check-data reports them.
MODE_NAMES: dict[str, str] = {
    "1": "1-bit",
    "L": "gray",
    "I;16": "16-bit gray",
    "I": "32-bit gray",
    "F": "float",
    "P": "palette mode",
    "RGB": "RGB",
    "RGBA": "RGBA",
}


def file_format(path: Path) -> str:
    """``"GIF, palette mode"``, ``"PNG, gray"``...: a file's format and pixel mode, from its header."""
    try:
        with Image.open(path) as image:
            return f"{image.format}, {MODE_NAMES.get(image.mode, image.mode)}"
    except Exception:  # noqa: BLE001 -- PIL cannot tell (a TIFF it does not read): the extension does
        return path.suffix.lstrip(".").upper() or "unknown"


def lossy_format(path: Path) -> str | None:
    """The lossy format ``path`` is saved in (``"JPEG"``, ``"lossy WebP"``), ``None`` for lossless ones.

    JPEG by its extension; WebP by its first chunk (``VP8 `` lossy, ``VP8L`` lossless; an extended
    ``VP8X`` file is lossy when it holds a ``VP8 `` chunk).
    """
    suffix = path.suffix.lower()
    if suffix in LOSSY_EXTENSIONS:
        return LOSSY_EXTENSIONS[suffix]
    if suffix == ".webp":
        try:
            with path.open("rb") as file:
                head = file.read(1 << 16)
        except OSError:
            return None
        chunk = head[12:16]
        if chunk == b"VP8 " or (chunk == b"VP8X" and b"VP8 " in head[16:]):
            return "lossy WebP"
    return None


def _read_other(
    path: Path, as_mask: bool, channels: int | None = None, page: int | None = None
) -> np.ndarray:
    """A file PIL reads (pages exist only in TIFF stacks)."""
    if page is not None:
        raise ImageReadError(f"{_what(as_mask)} {path} is not a TIFF: it has no page {page}")
    return _read_with_pil(path, as_mask)


# Decoder per file extension (lower case), called with (path, as_mask, channels, page); anything else: PIL.
READERS: dict[str, Callable[..., np.ndarray]] = {".tif": _read_tiff, ".tiff": _read_tiff}


def decode(source: Path | Page, as_mask: bool, channels: int | None = None) -> np.ndarray:
    """Decode a file (or one page of a stack) to an array, raising :class:`ImageReadError` naming it when it
    cannot be read. ``channels``: an image's ``in_channels`` (a TIFF of that many pages is one image)."""
    path, page = (source.path, source.index) if isinstance(source, Page) else (source, None)
    reader = READERS.get(path.suffix.lower(), _read_other)
    try:
        return reader(path, as_mask, channels, page)
    except ImageReadError:
        raise
    except Exception as error:  # PIL/tifffile raise OSError, SyntaxError, ValueError, their own types...
        raise ImageReadError(f"cannot read {_what(as_mask)} file {source}: {error}") from error


def _as_float_or_uint8(array: np.ndarray, source: str) -> np.ndarray:
    """uint8 stays (albumentations' fast path); other types become float32 in [0, 1].

    Integers are divided by 65535 (by their type's maximum beyond 16 bits); floats must be finite and in
    [0, 1] (see the module docstring), else :class:`ImageReadError` names ``source`` and what it holds.
    """
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.integer):
        top = 65535.0 if array.size == 0 or int(array.max()) <= 65535 else float(np.iinfo(array.dtype).max)
        return (array.astype(np.float32) / top).clip(0.0, 1.0)
    if not np.issubdtype(array.dtype, np.floating) or not array.size:
        return array.astype(np.float32)
    finite = np.isfinite(array)
    if not finite.all():
        nan = int(np.isnan(array).sum())
        raise ImageReadError(
            f"image {source} holds {nan} NaN and {array.size - nan - int(finite.sum())} infinite values; "
            "expected finite intensities in [0, 1]"
        )
    low, high = float(array.min()), float(array.max())
    if low < -FLOAT_TOLERANCE or high > 1 + FLOAT_TOLERANCE:
        raise ImageReadError(
            f"float image {source} holds values in [{low:.6g}, {high:.6g}]; unet reads float images as "
            "intensities in [0, 1]: rescale it to [0, 1], or save it as 8- or 16-bit integers"
        )
    return array.astype(np.float32).clip(0.0, 1.0)


def to_channels(image: np.ndarray, in_channels: int, source: str) -> np.ndarray:
    """``(H, W)`` or ``(H, W, C)`` image -> ``(H, W, in_channels)``.

    ``C == in_channels`` is kept. For ``in_channels`` 1 or 3: alpha channels (gray+alpha, RGBA) are
    dropped, gray is replicated to 3, RGB becomes luminance. Any other count is refused naming both.
    """
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3:
        raise ImageReadError(f"image {source} has shape {image.shape}; expected (H, W) or (H, W, channels)")
    channels = image.shape[-1]
    if channels == in_channels:
        return image
    if image.shape[0] == in_channels or (
        in_channels in CONVERTED_CHANNELS and channels > 4 >= image.shape[0]
    ):
        raise ImageReadError(
            f"image {source} has shape {image.shape}; expected (H, W) or channels last (H, W, {in_channels}), "
            "not channels first: transpose(1, 2, 0)"
        )
    if in_channels not in CONVERTED_CHANNELS or channels not in (1, 2, 3, 4):
        raise ImageReadError(
            f"image {source} has {channels} channel(s) but in_channels is {in_channels}; only gray -> 3 and "
            "RGB -> 1 are converted"
        )
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
    return to_channels(_as_float_or_uint8(np.asarray(array), source), in_channels, source)


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


def _stacked_channels(paths: tuple[Path, ...]) -> np.ndarray:
    """Single-channel files ``(H, W)`` each -> ``(H, W, len(paths))``, in order; one float32 if any is not uint8."""
    planes = []
    for path in paths:
        plane = _as_float_or_uint8(decode(path, as_mask=False), str(path))
        if plane.ndim == 3 and plane.shape[-1] == 1:
            plane = plane[..., 0]
        if plane.ndim != 2:
            raise ImageReadError(
                f"image {path} has shape {plane.shape}; files stacked as channels must hold one channel each"
            )
        if planes and plane.shape != planes[0].shape:
            raise ImageReadError(
                f"image {path} is {plane.shape[1]}x{plane.shape[0]} (WxH) but {paths[0]}, stacked with it as "
                f"channels, is {planes[0].shape[1]}x{planes[0].shape[0]}"
            )
        planes.append(plane)
    if any(plane.dtype != np.uint8 for plane in planes):
        planes = [plane.astype(np.float32) / 255.0 if plane.dtype == np.uint8 else plane for plane in planes]
    return np.stack(planes, axis=-1)


def read_image(source: ImageFile, in_channels: int) -> np.ndarray:
    """Read an image as displayed, as ``(H, W, in_channels)`` uint8 / float32 (see the module docstring):
    from a file, a :class:`Page` of a stack, or a tuple of single-channel files stacked in order."""
    if isinstance(source, tuple):
        return to_channels(_stacked_channels(source), in_channels, source_name(source))
    return image_array(decode(source, as_mask=False, channels=in_channels), in_channels, str(source))


def read_mask(source: Path | Page) -> np.ndarray:
    """Read a mask file (or a :class:`Page` of a stack) as displayed (its orientation applied, like its
    image's) as raw ``(H, W)`` values or ``(H, W, 3)`` colours (before any mapping)."""
    return label_array(decode(source, as_mask=True), str(source))
