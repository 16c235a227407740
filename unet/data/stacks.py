"""Stacks: a multi-page TIFF of images beside a multi-page TIFF of masks is a data set of 2D slices.

Electron-microscopy volumes and other 3D scans are shipped as one ``training.tif`` of many slices beside
one ``training_groundtruth.tif``. Page ``k`` of the image stack pairs with page ``k`` of the mask stack
(:class:`~unet.data.io.Page`); stacks whose page counts differ are refused with both counts. A TIFF
whose pages are its ``in_channels`` > 1 channels (paired with a single-page mask) is one image, not a
stack (:mod:`unet.data.io`).

Neighbouring slices are nearly the same image, so a split made of shuffled pages would validate on
slices next to training ones. :func:`carve_stack_splits` cuts each stack into contiguous blocks in page
order instead: training first, then the validation block, then the test block at the end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from unet.data.errors import DataError, DataNotFoundError, ImageReadError, PairingError
from unet.data.io import Page, tiff_page_count
from unet.data.layout import Pair

TIFF_EXTENSIONS = (".tif", ".tiff")


def file_pair(images: Path, masks: Path) -> list[Pair] | None:
    """The one pair of an image file and a mask file given as a split's images and masks (a stack beside
    its mask stack); ``None`` when ``images`` is not a file (a directory: paired by the layout)."""
    if not images.is_file():
        return None
    if not masks.is_file():
        raise DataNotFoundError(
            f"images {images} is a file, so its masks {masks} must be a file too: none found"
        )
    return [Pair(images, masks)]


def page_count(path: Path) -> int:
    """Pages of ``path``: a TIFF's full pages, 1 for any other file (never opened)."""
    return tiff_page_count(path) if path.suffix.lower() in TIFF_EXTENSIONS else 1


def _pages(image: Path, mask: Path, in_channels: int) -> list[Pair] | None:
    """Page pairs of a stack pair, ``None`` for a pair of single images (or of channels saved as pages)."""
    image_pages, mask_pages = page_count(image), page_count(mask)
    if mask_pages == 1 and image_pages in (1, in_channels):
        return None
    if image_pages != mask_pages:
        raise PairingError(
            f"image stack {image} has {image_pages} pages but its mask {mask} has {mask_pages}: a stack needs "
            "one mask page per image page"
        )
    return [Pair(Page(image, index), Page(mask, index)) for index in range(image_pages)]


def expand_stacks(pairs: Sequence[Pair], in_channels: int) -> list[Pair]:
    """``pairs`` with every stack pair replaced by its page pairs, in page order."""
    expanded: list[Pair] = []
    for pair in pairs:
        image, mask = pair.image, pair.mask
        pages = (
            _pages(image, mask, in_channels) if isinstance(image, Path) and isinstance(mask, Path) else None
        )
        expanded.extend(pages if pages is not None else [pair])
    return expanded


def has_pages(pairs: Sequence[Pair]) -> bool:
    """Whether ``pairs`` hold slices of a stack."""
    return any(isinstance(pair[0], Page) for pair in pairs)


def _block(pages: int, fraction: float, split: str) -> int:
    """Pages of a stack a split's block takes: ``round(fraction * pages)``, at least 1 for a positive fraction."""
    if not 0 <= fraction < 1:
        raise DataError(f"{split}_fraction must be in [0, 1), got {fraction}")
    return max(1, round(fraction * pages)) if fraction else 0


def carve_stack_splits(
    pairs: Sequence[Pair],
    fractions: Mapping[str, float],
    stems: Mapping[str, Sequence[str] | None],
) -> dict[str, list[Pair]]:
    """Split the page pairs of each stack into contiguous blocks: train first, then each split of
    ``fractions`` in its order (val, then test), each ``round(fraction * pages)`` pages of the stack."""
    if not all(isinstance(pair[0], Page) for pair in pairs):
        raise PairingError(
            "the training data mixes stacks (multi-page TIFFs) and single images: keep them apart"
        )
    named = [split for split, wanted in stems.items() if wanted is not None]
    if named:
        raise DataError(
            f"{named[0]}_stems cannot pick slices of a stack: stacks are split into contiguous blocks by "
            f"{named[0]}_fraction"
        )
    stacks: dict[Path, list[Pair]] = {}
    for pair in pairs:
        stacks.setdefault(pair[0].path, []).append(pair)
    carved: dict[str, list[Pair]] = {"train": [], **{split: [] for split in fractions}}
    for path, stack in stacks.items():
        sizes = {split: _block(len(stack), fraction, split) for split, fraction in fractions.items()}
        start = len(stack) - sum(sizes.values())
        if start < 1:
            raise DataError(f"stack {path} has {len(stack)} pages: none left for training after {sizes}")
        carved["train"].extend(stack[:start])
        for split, size in sizes.items():
            carved[split].extend(stack[start : start + size])
            start += size
    return {split: pages for split, pages in carved.items() if pages or split == "train"}


def stack_pages(path: Path, in_channels: int) -> int:
    """Pages of ``path`` when it is a stack to predict page by page, else 0 (a single image).

    A TIFF of ``in_channels`` > 1 pages is one image of those channels; for 3 that is ambiguous (gray
    slices are replicated to RGB), so it is refused.
    """
    pages = page_count(path)
    if pages == 1 or (pages == in_channels and in_channels not in (1, 3)):
        return 0
    if pages == in_channels == 3:
        raise ImageReadError(
            f"image {path} has 3 pages for a model of 3 channels: the 3 channels of one image, or a stack of "
            "3 gray slices? Save an RGB image as one page of (H, W, 3)"
        )
    return pages
