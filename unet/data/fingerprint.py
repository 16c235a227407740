"""The data fingerprint: what a training split looks like, the numbers a planner derives defaults from.

As nnU-Net does, a run can be configured from the data instead of by hand: image sizes bound the patch
size and the depth, intensity statistics give the normalisation, class frequencies and object sizes
tell whether rare-class measures are needed. The fingerprint is those numbers for the raw, un-augmented
training samples, read in the same pass that counts the classes (:mod:`unet.data.statistics`).

Computing it reads every training file, so :func:`fingerprint` caches it as JSON under
``<cache_dir>/fingerprints/<key>.json``, keyed by what the data is: every training file's path, size
and modification time plus the settings that change the numbers. The data folder itself is never
written (it may be read-only). Datamodules without files of their own (``synthetic``, generated from a
seed; ``oxford_pet``, read through torchvision) have no such key and are computed on every call.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage  # a dependency of albumentations

from unet.data.io import source_files
from unet.data.statistics import ClassCounts, split_class_counts
from unet.utils.files import write_json
from unet.utils.tables import text_table

# Bumped whenever the fields or their meaning change: older cache files then miss.
FINGERPRINT_FORMAT = 2

# Percentiles of the connected components' pixel areas kept per class.
AREA_PERCENTILES = (10, 50, 90)

# The distance histogram behind a class's width: bins of half a pixel, the last one open.
WIDTH_BINS_PER_PIXEL = 2
WIDTH_MAX_DISTANCE = 1024


@dataclass(frozen=True)
class Fingerprint:
    """A training split's fingerprint (all from raw, un-augmented samples; ``K`` classes, ``C`` channels).

    Attributes:
        images: training images.
        channels: ``C``, the channels the network sees (``in_channels``).
        class_names: ``(K,)`` the class names.
        height / width: ``(min, median, max)`` over the images, in pixels.
        distinct_sizes: distinct ``(height, width)`` pairs.
        mean / std: ``(C,)`` per-channel intensity over all training pixels (inside the regions of
            interest when the data has them), in the [0, 1] units the
            datamodules normalise from (uint8 / 255, float as is); ``std`` is the population std.
        class_pixels: ``(K,)`` labelled pixels of each class.
        class_fraction: ``(K,)`` share of the labelled (not ignored) pixels held by each class.
        objects: ``(K,)`` connected components (4-connected) of each class over all masks.
        object_area: ``(K,)`` of ``(p10, median, p90)`` component areas in pixels, ``None`` for an absent class.
        class_width: ``(K,)`` the typical width of each class's structures in pixels, ``None`` for an
            absent class: ``2 d - 1`` where ``d`` is the 90th percentile, over the class's pixels, of the
            distance to the nearest pixel outside the class (image borders count as outside). Exact for
            straight stripes (a 3-pixel membrane gives 3); about 0.7 x the diameter of a disk. It tells
            how far a class survives downscaling: a planner keeps it above a pixel or two.
        ignore_fraction: share of all mask pixels that are ``ignore_index``.
    """

    images: int
    channels: int
    class_names: tuple[str, ...]
    height: tuple[int, float, int]
    width: tuple[int, float, int]
    distinct_sizes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_pixels: tuple[int, ...]
    class_fraction: tuple[float, ...]
    objects: tuple[int, ...]
    object_area: tuple[tuple[float, float, float] | None, ...]
    class_width: tuple[float | None, ...]
    ignore_fraction: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (tuples as lists)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fingerprint:
        """The inverse of :meth:`to_dict`; raises ``KeyError``/``TypeError``/``ValueError`` on anything else."""
        names = {field.name for field in fields(cls)}
        if set(data) != names:
            raise ValueError(f"fingerprint fields {sorted(data)} are not {sorted(names)}")
        result = cls(
            images=int(data["images"]),
            channels=int(data["channels"]),
            class_names=tuple(str(name) for name in data["class_names"]),
            height=_as_extent(data["height"]),
            width=_as_extent(data["width"]),
            distinct_sizes=int(data["distinct_sizes"]),
            mean=_floats(data["mean"]),
            std=_floats(data["std"]),
            class_pixels=tuple(int(v) for v in data["class_pixels"]),
            class_fraction=_floats(data["class_fraction"]),
            objects=tuple(int(v) for v in data["objects"]),
            object_area=tuple(None if area is None else _floats(area, 3) for area in data["object_area"]),
            class_width=tuple(None if width is None else float(width) for width in data["class_width"]),
            ignore_fraction=float(data["ignore_fraction"]),
        )
        per_class = ("class_names", "class_pixels", "class_fraction", "objects", "object_area", "class_width")
        if len({len(getattr(result, name)) for name in per_class}) != 1:
            raise ValueError("fingerprint per-class fields differ in length")
        if len(result.mean) != result.channels or len(result.std) != result.channels:
            raise ValueError("fingerprint mean/std do not have one value per channel")
        return result


def _floats(values: Any, length: int | None = None) -> tuple[float, ...]:
    """``values`` as a tuple of floats, of ``length`` when given (``ValueError`` otherwise)."""
    result = tuple(float(v) for v in values)
    if length is not None and len(result) != length:
        raise ValueError(f"expected {length} numbers, got {len(result)}")
    return result


def _as_extent(values: Any) -> tuple[int, float, int]:
    """A stored ``(min, median, max)``."""
    low, median, high = values
    return int(low), float(median), int(high)


class _SampleScan:
    """Streaming accumulator of the statistics :class:`ClassCounts` lacks, fed one raw sample at a time.

    Intensities are sums and sums of squares in float64 (no image is kept); object areas are one int
    array per class and mask, the only part that grows with the data; widths are a fixed histogram of
    distances per class.
    """

    def __init__(self, channels: int, num_classes: int, outside_label: int | None = None) -> None:
        self.outside_label = outside_label
        self.sums = np.zeros(channels, dtype=np.float64)
        self.squares = np.zeros(channels, dtype=np.float64)
        self.pixels = 0
        self.heights: list[int] = []
        self.widths: list[int] = []
        self.areas: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
        bins = WIDTH_MAX_DISTANCE * WIDTH_BINS_PER_PIXEL + 1
        self.distances = np.zeros((num_classes, bins), dtype=np.int64)

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> None:
        """Add one raw sample: ``image (H, W, C)`` uint8 or float, ``mask (H, W)`` of class indices."""
        height, width = image.shape[:2]
        values = image.reshape(height * width, -1)
        if self.outside_label is not None:
            values = values[mask.ravel() != self.outside_label]
        values = values.astype(np.float64)
        if image.dtype == np.uint8:
            values /= 255.0
        self.sums += values.sum(axis=0)
        self.squares += np.einsum("ij,ij->j", values, values)
        self.pixels += len(values)
        self.heights.append(int(height))
        self.widths.append(int(width))
        for label in np.unique(mask):
            if label < len(self.areas):  # not ignore_index (the counting pass refused other labels)
                inside = mask == label
                components, count = ndimage.label(inside)
                self.areas[label].append(np.bincount(components.ravel(), minlength=count + 1)[1:])
                # Zero padding: the image border bounds a structure like another class does.
                distance = ndimage.distance_transform_edt(np.pad(inside, 1))[1:-1, 1:-1][inside]
                bins = np.minimum(distance * WIDTH_BINS_PER_PIXEL, self.distances.shape[1] - 1).astype(
                    np.int64
                )
                self.distances[label] += np.bincount(bins, minlength=self.distances.shape[1])

    def fingerprint(self, counts: ClassCounts, class_names: list[str]) -> Fingerprint:
        """The fingerprint of the samples added, with the split's class counts."""
        pixels = max(self.pixels, 1)
        mean = self.sums / pixels
        std = np.sqrt(np.maximum(self.squares / pixels - mean**2, 0.0))
        labelled = int(counts.pixels.sum())
        areas = [np.concatenate(arrays) if arrays else np.zeros(0, np.int64) for arrays in self.areas]
        return Fingerprint(
            images=len(self.heights),
            channels=len(self.sums),
            class_names=tuple(class_names),
            height=_extent(self.heights),
            width=_extent(self.widths),
            distinct_sizes=len(counts.sizes),
            mean=tuple(float(m) for m in mean),
            std=tuple(float(s) for s in std),
            class_pixels=tuple(int(p) for p in counts.pixels),
            class_fraction=tuple(float(p / labelled) if labelled else 0.0 for p in counts.pixels),
            objects=tuple(len(a) for a in areas),
            object_area=tuple(
                tuple(float(q) for q in np.percentile(a, AREA_PERCENTILES)) if len(a) else None for a in areas
            ),
            class_width=tuple(_width(histogram) for histogram in self.distances),
            ignore_fraction=float(counts.ignored / (labelled + counts.ignored))
            if labelled + counts.ignored
            else 0.0,
        )


def _width(histogram: np.ndarray) -> float | None:
    """``2 d - 1`` for ``d`` the 90th percentile of a half-pixel distance histogram; ``None`` when empty."""
    total = int(histogram.sum())
    if total == 0:
        return None
    index = int(np.searchsorted(np.cumsum(histogram), 0.9 * total))
    return 2 * index / WIDTH_BINS_PER_PIXEL - 1


def _extent(values: list[int]) -> tuple[int, float, int]:
    """``(min, median, max)`` of ``values`` (zeros for none)."""
    return (min(values), float(np.median(values)), max(values)) if values else (0, 0.0, 0)


def compute_fingerprint(datamodule: Any) -> Fingerprint:
    """The fingerprint of ``datamodule``'s training split, from one reading of every raw training sample.

    Shares the pass with the class counts (:func:`split_class_counts`, which then keeps them for class
    weights and rare-class crops); if they were counted already, only the fingerprint's pass reads.
    """
    datamodule.setup("fit")
    # With regions of interest, the intensities are those inside them (the label outside is ignored).
    outside = datamodule.ignore_index if getattr(datamodule, "has_rois", False) else None
    scan = _SampleScan(datamodule.in_channels, datamodule.num_classes, outside)
    counts = split_class_counts(datamodule, "train", visit=scan)
    return scan.fingerprint(counts, list(datamodule.class_names))


def file_identity(path: str | Path) -> list[Any]:
    """What a cache keys a file by: its absolute path, size and modification time (ns); ``OSError`` if gone."""
    stat = Path(path).stat()
    return [str(Path(path).absolute()), stat.st_size, stat.st_mtime_ns]


def fingerprint_key(datamodule: Any) -> str | None:
    """What the training data is, as a hex digest; ``None`` for datamodules without files (not cached).

    Every training image, mask and ROI file's absolute path (and page, for a stack's slices), size and
    modification time (ns), plus the settings that change the numbers: classes, ignore_index,
    channels, the mask encoding (mapping, threshold, palette) and image_size. Any file changed, added
    or removed gives another key.
    """
    pairs = getattr(datamodule, "pairs", None)
    if not pairs or not pairs.get("train"):
        return None
    encoder = getattr(datamodule, "encoder", None)
    try:
        files = [
            [*file_identity(path), getattr(part, "index", None)]
            for pair in pairs["train"]
            for part in pair
            if part is not None
            for path in source_files(part)
        ]
    except OSError:
        return None  # a file gone: computing raises the data layer's own error
    size = getattr(datamodule, "image_size", None)
    identity = {
        "format": FINGERPRINT_FORMAT,
        "datamodule": type(datamodule).__qualname__,
        "num_classes": datamodule.num_classes,
        "class_names": list(datamodule.class_names),
        "ignore_index": datamodule.ignore_index,
        "in_channels": datamodule.in_channels,
        "mask_mapping": sorted((getattr(encoder, "mapping", None) or {}).items()),
        "mask_threshold": getattr(encoder, "threshold", None),
        "mask_palette": sorted((getattr(encoder, "palette", None) or {}).items()),
        "image_size": None if size is None else list(size),
        "files": files,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]


def fingerprint(datamodule: Any, cache_dir: str | Path | None = None) -> Fingerprint:
    """:func:`compute_fingerprint`, cached in ``<cache_dir>/fingerprints/<key>.json`` when the data has files.

    A cache file that does not parse, holds another key or other fields is recomputed and rewritten,
    never trusted. A cache directory that cannot be written costs a warning and a recomputation next time.
    ``cache_dir=None`` computes without caching.
    """
    key = None if cache_dir is None else fingerprint_key(datamodule)
    if key is None:
        return compute_fingerprint(datamodule)
    path = Path(cache_dir).expanduser() / "fingerprints" / f"{key}.json"
    cached = _read_cached(path, key)
    if cached is not None:
        return cached
    result = compute_fingerprint(datamodule)
    try:
        write_json(path, {"format": FINGERPRINT_FORMAT, "key": key, "fingerprint": result.to_dict()})
    except OSError as error:
        warnings.warn(f"data fingerprint not cached: {error}", stacklevel=2)
    return result


def _read_cached(path: Path, key: str) -> Fingerprint | None:
    """The fingerprint in ``path`` if it parses and is the one for ``key``; ``None`` otherwise."""
    try:
        document = json.loads(path.read_text())
        if document["format"] != FINGERPRINT_FORMAT or document["key"] != key:
            return None
        return Fingerprint.from_dict(document["fingerprint"])
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


def format_fingerprint(result: Fingerprint) -> str:
    """The fingerprint as text: sizes and intensities on top, then one row per class."""
    height, width = result.height, result.width
    lines = [
        f"fingerprint of the training split: {result.images} images, {result.distinct_sizes} distinct size(s), "
        f"HxW min {height[0]}x{width[0]}, median {height[1]:g}x{width[1]:g}, max {height[2]}x{width[2]}",
        "intensity (0..1 units) mean "
        + ", ".join(f"{m:.4f}" for m in result.mean)
        + "  std "
        + ", ".join(f"{s:.4f}" for s in result.std)
        + f"  ignored pixels {100 * result.ignore_fraction:.2f}%",
    ]
    records = [
        {
            "class": name,
            "fraction": 100 * fraction,
            "objects": objects,
            **dict(zip(("p10", "median", "p90"), area or (), strict=False)),
            **({} if width is None else {"width": width}),
        }
        for name, fraction, objects, area, width in zip(
            result.class_names,
            result.class_fraction,
            result.objects,
            result.object_area,
            result.class_width,
            strict=True,
        )
    ]
    columns = [
        ("class", "class", "{}"),
        ("pixels", "fraction", "{:.2f}%"),
        ("objects", "objects", "{}"),
        ("area p10", "p10", "{:g}"),
        ("area median", "median", "{:g}"),
        ("area p90", "p90", "{:g}"),
        ("width px", "width", "{:g}"),
    ]
    return "\n".join([*lines, text_table(columns, records, rule=True)])
