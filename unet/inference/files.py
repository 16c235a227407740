"""Segment image files: read, predict, and write mask, colour overlay and probabilities.

A multi-page TIFF stack (:func:`unet.data.stacks.stack_pages`) is segmented page by page into a
multi-page TIFF mask and overlay of the same pages in the same order (probabilities: one
``(pages, K, H, W)`` array).
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager, nullcontext
from dataclasses import astuple
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import torch
from PIL import Image
from tqdm import tqdm

from unet.data.errors import ImageReadError
from unet.data.io import IMAGE_EXTENSIONS, Page, image_size, read_image
from unet.data.layout import list_files
from unet.data.pairing import make_rule, pair_by_rule
from unet.data.sources import read_roi
from unet.data.stacks import stack_pages
from unet.inference.predictors import Predictor
from unet.inference.tiling import (
    TilingSettings,
    check_tiling,
    flip_averaged_probabilities,
    flip_variants,
    pad_to_minimum,
    segment_tiled,
)
from unet.inference.writing import BackgroundWriter
from unet.utils.class_maps import class_map
from unet.utils.errors import ConfigError, InputNotFoundError, OutputExistsError
from unet.utils.files import atomic_write
from unet.utils.runtime import peak_resident_bytes
from unet.utils.visualize import colourize

# Rows of the overlay made at once (see overlay).
OVERLAY_BAND_ROWS = 1024
# zlib level of the overlay PNGs: previews, written about 4x faster at 1 than at Pillow's default 6, and
# no larger for photographs (docs/results/deployment.md). Masks keep the default: they are what is kept.
OVERLAY_COMPRESS_LEVEL = 1


def collect_inputs(spec: str) -> list[Path]:
    """An image file, a folder of images, or a glob pattern -> the image files, sorted."""
    path = Path(spec)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    else:
        files = sorted(
            Path(p) for p in glob.glob(spec, recursive=True) if Path(p).suffix.lower() in IMAGE_EXTENSIONS
        )
    if not files:
        raise InputNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found at {spec}")
    return files


# The value written outside a region of interest in the masks predicted with ``roi``.
ROI_OUTSIDE = 0


def find_rois(inputs: Sequence[Path], roi_dir: str | Path, pattern: str | None) -> dict[Path, Path]:
    """Each input's region-of-interest file in ``roi_dir``, paired by ``pattern`` as training pairs them
    (``None``: equal stems); an input without exactly one is refused (other files there are left alone)."""
    rois = sorted(list_files(Path(roi_dir).expanduser(), IMAGE_EXTENSIONS, "ROI").values())
    pairing = pair_by_rule(list(inputs), rois, make_rule(pattern, "roi_pattern"))
    problems = [image.name for image in pairing.lone_images] + pairing.ambiguous
    if problems:
        raise InputNotFoundError(
            f"{len(problems)} input(s) without exactly one ROI in {roi_dir} (roi_pattern={pattern or '{stem}'}): "
            + ", ".join(problems[:10])
        )
    return dict(pairing.pairs)


def output_paths(
    image: Path, output_dir: Path, save_probabilities: bool, stack: bool = False
) -> dict[str, Path]:
    """The files written for ``image``: PNG mask and overlay, or multi-page TIFFs for a ``stack``."""
    suffix = ".tif" if stack else ".png"
    paths = {
        "mask": output_dir / f"{image.stem}_mask{suffix}",
        "overlay": output_dir / f"{image.stem}_overlay{suffix}",
    }
    if save_probabilities:
        paths["probabilities"] = output_dir / f"{image.stem}_probs.npy"
    return paths


def _is_stack(path: Path, in_channels: int) -> bool:
    """Whether ``path`` is predicted as a stack; an unreadable or ambiguous file is not (its segmentation
    reports why, or lists it with skip_errors)."""
    try:
        return stack_pages(path, in_channels) > 0
    except ImageReadError:
        return False


def check_outputs_free(
    inputs: Sequence[Path], output_dir: Path, save_probabilities: bool, in_channels: int
) -> None:
    """Refuse before any work if two inputs share a name or an output file already exists."""
    stems = [path.stem for path in inputs]
    duplicates = sorted({stem for stem in stems if stems.count(stem) > 1})
    if duplicates:
        raise ConfigError(
            f"several inputs are named {duplicates[:5]}; their outputs would collide in {output_dir}"
        )
    existing = [
        p
        for image in inputs
        for p in output_paths(image, output_dir, save_probabilities, _is_stack(image, in_channels)).values()
        if p.exists()
    ]
    if existing:
        raise OutputExistsError(
            f"{len(existing)} output file(s) already exist, e.g. {existing[0]}; choose another output="
        )


def overlay(image: np.ndarray, mask: np.ndarray, ignore_index: int | None, alpha: float = 0.45) -> np.ndarray:
    """The image ``(H, W, C)`` in gray/RGB with the class colours blended over it: ``(H, W, 3)`` uint8.

    Of more than 3 channels the first 3 are shown as RGB; of 2, the first as gray.

    Made in bands of rows: its float intermediates would otherwise take 24 bytes per pixel of a large scan.
    """
    result = np.empty((*mask.shape, 3), np.uint8)
    for top in range(0, mask.shape[0], OVERLAY_BAND_ROWS):
        rows = slice(top, top + OVERLAY_BAND_ROWS)
        base = image[rows].astype(np.float32)
        if image.dtype != np.uint8:
            base = base * 255.0
        base = base[..., :3] if base.shape[2] >= 3 else np.repeat(base[..., :1], 3, axis=2)
        band = mask[rows]
        colours = colourize(torch.from_numpy(band), ignore_index).permute(1, 2, 0).numpy().astype(np.float32)
        blended = np.where(band[..., None] > 0, (1 - alpha) * base + alpha * colours, base)
        result[rows] = blended.clip(0, 255).round()
    return result


def save_png(array: np.ndarray, path: Path, compress_level: int = 6) -> None:
    """Write ``array`` as a PNG atomically: a run stopped mid-write leaves no truncated file behind."""
    with atomic_write(path, "wb") as file:
        Image.fromarray(array).save(file, format="PNG", compress_level=compress_level)


@contextmanager
def probabilities_file(path: Path, shape: tuple[int, ...]) -> Iterator[np.ndarray]:
    """A float16 ``.npy`` array of ``shape`` mapped from disk (a large image's probabilities need not fit
    in memory), published at ``path`` only when the block completes."""
    temporary = path.with_name(f".{path.name}.tmp")
    array = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.float16, shape=shape)
    try:
        yield array
        array.flush()
        del array
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@contextmanager
def tiff_pages_file(path: Path) -> Iterator[tifffile.TiffWriter]:
    """A multi-page TIFF written page by page (``writer.write(page)``), published at ``path`` only when
    the block completes."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with tifffile.TiffWriter(temporary) as writer:
            yield writer
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def refuse_probabilities_of_masks(predictor: Predictor, asked: str = "save_probabilities=true") -> None:
    """Refuse to give probabilities from a model that returns class indices (exported with outputs=mask);
    ``asked`` is the setting that asked for them."""
    if predictor.returns_mask:
        raise ConfigError(
            f"{asked}: {predictor.source} returns class indices (exported with outputs=mask), "
            "not probabilities; use a logits export"
        )


def segment_image(
    predictor: Predictor,
    image: np.ndarray,
    tile_size: int = 512,
    overlap: float = 0.25,
    tta: bool = False,
    batch_size: int = 4,
    probabilities: np.ndarray | None = None,
) -> np.ndarray:
    """The class map ``(H, W)`` of an image ``(H, W, C)`` as read (:func:`unet.data.io.read_image`'s
    layout), tiled as :func:`~unet.inference.tiling.segment_tiled` does; ``probabilities`` ``(K, H, W)``
    receives the blended probabilities when given (the caller checked the model gives them:
    :func:`refuse_probabilities_of_masks`).

    The image is normalised tile by tile as the tiles are cut, so a large image is never held normalised.
    """
    metadata = predictor.metadata
    return segment_tiled(
        predictor.logits,
        image.transpose(2, 0, 1),  # a (C, H, W) view: tiles are cut from the pixels as read
        metadata["num_classes"],
        metadata["min_size"],
        tile_size,
        overlap,
        tta,
        batch_size,
        prepare=lambda tile: predictor.prepare(tile.transpose(1, 2, 0)),
        probabilities=probabilities,
    )


def fits_one_tile(shape: tuple[int, ...], tile_size: int) -> bool:
    """Whether an image of ``shape`` ``(H, W, C)`` runs whole, as one tile (what images are batched)."""
    return shape[0] <= tile_size and shape[1] <= tile_size


def images_per_batch(shape: tuple[int, ...], tiling: TilingSettings) -> int:
    """How many images of ``shape`` ``(H, W, C)`` share a forward pass: as many as fit in the pixels of
    ``batch_size`` tiles, so that a batch of images takes no more memory than a batch of tiles."""
    return max(1, tiling.batch_size * tiling.tile_size**2 // (shape[0] * shape[1]))


def segment_images(
    predictor: Predictor, images: Sequence[np.ndarray], tta: bool = False, probabilities: bool = True
) -> tuple[np.ndarray, torch.Tensor | None]:
    """The class maps ``(B, H, W)`` and softmax probabilities ``(B, K, H, W)`` of images of one shape
    ``(H, W, C)``, each no larger than a tile, in one forward pass (with ``tta``, averaged over flips):
    what :func:`segment_image` gives each alone. Many small photos are one tile each, so batching images
    is what fills the forward pass that tiling cannot.

    Without ``probabilities`` (``None`` is returned for them) and without ``tta``, the class maps come
    from the logits: softmax keeps their order, and at 11 classes it cost a fifth of the forward pass.
    """
    shapes = {image.shape for image in images}
    if len(shapes) > 1:
        raise ValueError(f"segment_images batches images of one shape; got {sorted(shapes)}")
    min_size = predictor.metadata["min_size"]
    inputs = np.stack([pad_to_minimum(predictor.prepare(image), min_size)[0] for image in images])
    height, width = images[0].shape[:2]
    with torch.inference_mode():
        if probabilities or tta:
            scores = flip_averaged_probabilities(predictor.logits, inputs, flip_variants(tta))
        else:
            scores = torch.as_tensor(predictor.logits(inputs))
    scores = scores[:, :, :height, :width]
    dtype = np.uint8 if predictor.metadata["num_classes"] <= 256 else np.uint16
    return class_map(scores).cpu().numpy().astype(dtype), scores if probabilities else None


# Shapes of images waiting to be batched at once (see ImageBatches).
MAX_WAITING_SHAPES = 4


class ImageBatches:
    """Images waiting for a forward pass, grouped by shape: :meth:`add` hands back a group once it holds
    :func:`images_per_batch` images. At most :data:`MAX_WAITING_SHAPES` shapes wait at once (the oldest
    group goes first), so a folder of many sizes holds a bounded number of images."""

    def __init__(self, tiling: TilingSettings) -> None:
        self.tiling = tiling
        self.waiting: dict[tuple[int, ...], list[tuple[Path, np.ndarray]]] = {}

    def add(self, path: Path, image: np.ndarray) -> list[list[tuple[Path, np.ndarray]]]:
        """Queue ``image`` (read from ``path``); returns the groups now ready to run."""
        ready = []
        if image.shape not in self.waiting and len(self.waiting) >= MAX_WAITING_SHAPES:
            ready.append(self.waiting.pop(next(iter(self.waiting))))
        group = self.waiting.setdefault(image.shape, [])
        group.append((path, image))
        if len(group) >= images_per_batch(image.shape, self.tiling):
            ready.append(self.waiting.pop(image.shape))
        return ready

    def rest(self) -> list[list[tuple[Path, np.ndarray]]]:
        """The groups still waiting (at the end of the inputs)."""
        groups, self.waiting = list(self.waiting.values()), {}
        return groups


def write_outputs(
    predictor: Predictor,
    path: Path,
    image: np.ndarray,
    output_dir: Path,
    save_probabilities: bool,
    roi: Path | None,
    segment: Callable[[np.ndarray | None], np.ndarray],
) -> int:
    """Write the mask, overlay (and probabilities) of ``image`` (read from ``path``); returns its pixel
    count. ``segment(probabilities)`` gives the class map, filling ``probabilities`` ``(K, H, W)`` (a
    memory-mapped file) when given. With ``roi``, mask pixels outside it are written as :data:`ROI_OUTSIDE`."""
    metadata = predictor.metadata
    paths = output_paths(path, output_dir, save_probabilities)
    shape = (metadata["num_classes"], *image.shape[:2])
    with (
        probabilities_file(paths["probabilities"], shape)
        if save_probabilities
        else nullcontext() as probabilities
    ):
        mask = segment(probabilities)
        if roi is not None:
            mask[~read_roi(roi, mask.shape[:2], str(path))] = ROI_OUTSIDE
        save_png(mask, paths["mask"])
        shown = overlay(image, mask, metadata.get("ignore_index"))
        save_png(shown, paths["overlay"], compress_level=OVERLAY_COMPRESS_LEVEL)
    return mask.size


def from_batch(
    mask: np.ndarray, probabilities: torch.Tensor | None
) -> Callable[[np.ndarray | None], np.ndarray]:
    """:func:`write_outputs`' ``segment`` for one image of a batch already segmented (``probabilities``
    ``(K, H, W)``: only where they are saved)."""

    def segment(target: np.ndarray | None) -> np.ndarray:
        if target is not None and probabilities is not None:
            target[:] = probabilities.cpu().numpy()
        return mask

    return segment


def segment_stack(
    predictor: Predictor,
    path: Path,
    pages: int,
    output_dir: Path,
    tiling: TilingSettings,
    save_probabilities: bool,
) -> int:
    """Segment the ``pages`` pages of a TIFF stack into a multi-page mask and overlay TIFF (pages in the
    stack's order) and ``(pages, K, H, W)`` probabilities; returns the pixel count. One page is held at a time."""
    metadata = predictor.metadata
    paths = output_paths(path, output_dir, save_probabilities, stack=True)
    height, width = image_size(Page(path, 0))
    shape = (pages, metadata["num_classes"], height, width)
    pixels = 0
    with (
        tiff_pages_file(paths["mask"]) as masks,
        tiff_pages_file(paths["overlay"]) as overlays,
        probabilities_file(paths["probabilities"], shape)
        if save_probabilities
        else nullcontext() as probabilities,
    ):
        for index in range(pages):
            image = read_image(Page(path, index), metadata["in_channels"])
            if image.shape[:2] != (height, width):
                raise ImageReadError(
                    f"image {path} page {index} is {image.shape[1]}x{image.shape[0]} (WxH) but page 0 is "
                    f"{width}x{height}: the pages of a stack share one size"
                )
            page_probabilities = None if probabilities is None else probabilities[index]
            mask = segment_image(predictor, image, *astuple(tiling), page_probabilities)
            masks.write(mask, photometric="minisblack", contiguous=True)
            overlays.write(
                overlay(image, mask, metadata.get("ignore_index")), photometric="rgb", contiguous=True
            )
            pixels += mask.size
    return pixels


class FileSegmenter:
    """Segments input files into ``output_dir`` one at a time (:meth:`add`) or, for images that fit in
    one tile, in batches of images of one shape (:class:`ImageBatches`), whose outputs are written while
    the next batch runs (:class:`~unet.inference.writing.BackgroundWriter`); counts pixels, lists failures.
    :meth:`close` it when done."""

    def __init__(
        self,
        predictor: Predictor,
        output_dir: Path,
        tiling: TilingSettings,
        save_probabilities: bool,
        rois: Mapping[Path, Path] | None,
        batch_images: bool,
        skip_errors: bool,
    ) -> None:
        self.predictor, self.output_dir, self.tiling = predictor, output_dir, tiling
        self.save_probabilities, self.rois, self.skip_errors = save_probabilities, rois, skip_errors
        self.batches = ImageBatches(tiling) if batch_images else None
        self.writer = BackgroundWriter()
        self.pixels = 0
        self.failed: list[dict[str, str]] = []

    def add(self, path: Path) -> None:
        """Segment ``path`` now, or queue it for a batch (and run the batches that are full)."""
        ready: list[list[tuple[Path, np.ndarray]]] = []
        with self.listing_failures([path]):
            ready = self.segment_or_queue(path)
        for group in ready:
            self.run(group)

    def segment_or_queue(self, path: Path) -> list[list[tuple[Path, np.ndarray]]]:
        """Segment a stack or an image larger than a tile (or any, without batching); queue the others.
        Returns the groups of queued images now ready to run."""
        in_channels = self.predictor.metadata["in_channels"]
        pages = stack_pages(path, in_channels)
        if pages:
            stack = (self.predictor, path, pages, self.output_dir, self.tiling, self.save_probabilities)
            self.pixels += segment_stack(*stack)
            return []
        image = read_image(path, in_channels)  # (H, W, C)
        if self.batches is not None and fits_one_tile(image.shape, self.tiling.tile_size):
            return self.batches.add(path, image)
        tiled = partial(segment_image, self.predictor, image, *astuple(self.tiling))
        self.pixels += self.write(path, image, lambda probabilities: tiled(probabilities=probabilities))
        return []

    def finish(self) -> None:
        """Run the batches still waiting, and wait for every write."""
        for group in self.batches.rest() if self.batches else []:
            self.run(group)
        for written in self.writer.done_beyond(0):
            self.collect(*written)

    def close(self) -> None:
        """Stop the writer (after :meth:`finish`, or on a failure: writes not yet started are dropped)."""
        self.writer.close()

    def run(self, group: list[tuple[Path, np.ndarray]]) -> None:
        """Segment a group of images of one shape in one forward pass and write each one's outputs."""
        masks = None
        with self.listing_failures([path for path, _ in group]):
            masks, probabilities = segment_images(
                self.predictor, [image for _, image in group], self.tiling.tta, self.save_probabilities
            )
        if masks is None:
            return
        for index, (path, image) in enumerate(group):
            kept = None if probabilities is None else probabilities[index]
            write = partial(self.write, path, image, from_batch(masks[index], kept))
            self.writer.submit(path, write)
        # One batch's writes wait while the next batch runs: their images stay within a batch of tiles.
        for written in self.writer.done_beyond(len(group)):
            self.collect(*written)

    def collect(self, path: Path, written: Future[int]) -> None:
        """Count the pixels of ``path``'s finished write, or list its failure."""
        with self.listing_failures([path]):
            self.pixels += written.result()

    def write(self, path: Path, image: np.ndarray, segment: Callable[[np.ndarray | None], np.ndarray]) -> int:
        roi = None if self.rois is None else self.rois[path]
        return write_outputs(
            self.predictor, path, image, self.output_dir, self.save_probabilities, roi, segment
        )

    @contextmanager
    def listing_failures(self, paths: Sequence[Path]) -> Iterator[None]:
        """Raise a failure, or with ``skip_errors`` list it for each of ``paths`` (one corrupt file in a
        folder of thousands should not cost the rest)."""
        try:
            yield
        except Exception as error:  # noqa: BLE001 -- with skip_errors every failure is listed, none hidden
            if not self.skip_errors:
                raise
            self.failed.extend(
                {"file": str(path), "error": f"{type(error).__name__}: {error}"} for path in paths
            )


def predict_files(
    predictor: Predictor,
    inputs: Sequence[Path],
    output_dir: str | Path,
    tile_size: int = 512,
    overlap: float = 0.25,
    tta: bool = False,
    save_probabilities: bool = False,
    batch_size: int = 4,
    skip_errors: bool = False,
    rois: Mapping[Path, Path] | None = None,
    batch_images: bool = True,
) -> dict[str, Any]:
    """Segment every input into ``output_dir``; returns a summary (images, seconds, images/s, failed).

    Images no larger than a tile are segmented ``batch_images`` at a time, images of one shape together,
    as many per forward pass as fit in the pixels of ``batch_size`` tiles (:func:`images_per_batch`):
    their masks equal those made one by one, and memory stays within a batch of tiles. An input that
    cannot be read or segmented stops the run with its error, or with ``skip_errors`` is listed in
    ``failed`` (``{"file", "error"}``) while the others are segmented: one corrupt file in a folder of
    thousands should not cost the rest (a failed forward pass lists every image of its batch).
    ``rois``: input -> its region of interest (:func:`find_rois`); the masks are written as
    :data:`ROI_OUTSIDE` outside it.
    """
    if save_probabilities:
        refuse_probabilities_of_masks(predictor)
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputExistsError(
            f"output={output_dir} is a file: the predictions go into a folder; name a new or existing folder"
        )
    output_dir.mkdir(parents=True, exist_ok=True)
    check_outputs_free(inputs, output_dir, save_probabilities, predictor.metadata["in_channels"])
    tiling = TilingSettings(tile_size, overlap, tta, batch_size)
    check_tiling(tile_size, predictor.metadata["min_size"], batch_size, overlap)
    segmenter = FileSegmenter(
        predictor, output_dir, tiling, save_probabilities, rois, batch_images, skip_errors
    )
    start = time.perf_counter()
    try:
        for path in tqdm(inputs, desc="predict", unit="image"):
            segmenter.add(path)
        segmenter.finish()
    finally:
        segmenter.close()
    seconds = time.perf_counter() - start
    done = len(inputs) - len(segmenter.failed)
    return {
        "images": done,
        "seconds": seconds,
        "images_per_s": done / seconds if seconds else 0.0,
        "megapixels": segmenter.pixels / 1e6,
        "megapixels_per_s": segmenter.pixels / 1e6 / seconds if seconds else 0.0,
        "peak_memory_mb": peak_resident_bytes() / 2**20,
        "failed": segmenter.failed,
    }
