"""What every annotation format reads into, and the registry that maps a format's name to its reader.

A reader turns a labelling tool's file (or folder of files) into :class:`Annotations`: the class names in
the file's order and, per image, the shapes to draw in the order they are drawn. Coordinates are image
coordinates in pixels where pixel ``(row, col)`` covers ``[col, col + 1) x [row, row + 1)`` (the COCO
convention every tool here writes): a square with corners ``(2, 2)`` and ``(6, 6)`` covers pixels 2..5.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from unet.data.errors import AnnotationError
from unet.utils.errors import ConfigError

# The class index of pixels a shape marks as "do not score" (COCO's iscrowd, labelme's __ignore__);
# the datamodule maps it to its ignore_index. Classes are therefore below it.
IGNORE_LABEL = 255

# Category names that mean "background": such a category is class 0 instead of one added in front.
BACKGROUND_NAMES = ("background", "_background_", "__background__")
BACKGROUND = "background"


@dataclass(frozen=True)
class Shape:
    """One region to paint with ``label`` (a class index or :data:`IGNORE_LABEL`).

    ``polygons``: flat ``[x0, y0, x1, y1, ...]`` outlines (several for a shape in parts); ``rle``: a COCO
    run-length encoding (``{"counts", "size"}``, compressed or not); ``bitmap``: a ``(H, W)`` bool mask.
    Exactly one of them is given.
    """

    label: int
    polygons: tuple[tuple[float, ...], ...] = ()
    rle: Mapping[str, Any] | None = None
    bitmap: np.ndarray | None = None


@dataclass(frozen=True)
class ImageAnnotation:
    """One image's shapes, later ones drawn over earlier ones; ``size`` ``(H, W)`` when the file states it."""

    name: str
    shapes: tuple[Shape, ...] = ()
    size: tuple[int, int] | None = None


@dataclass(frozen=True)
class Annotations:
    """A file's class names (index = class, 0 is background) and its images keyed by file stem."""

    class_names: tuple[str, ...]
    images: dict[str, ImageAnnotation] = field(default_factory=dict)

    @property
    def has_ignore(self) -> bool:
        return any(shape.label == IGNORE_LABEL for image in self.images.values() for shape in image.shapes)


class AnnotationFormat:
    """A labelling tool's export: how to recognise it, which files it is, and how to read it."""

    name: ClassVar[str] = ""

    def detect(self, path: Path) -> bool:
        """Whether ``path`` (a file or folder) looks like this format."""
        raise NotImplementedError

    def sources(self, path: Path) -> list[Path]:
        """The files :meth:`read` reads (their identity keys the cache of rasterised masks)."""
        return [path]

    def read(self, path: Path, images: Mapping[str, Path]) -> Annotations:
        """The annotations of ``path``; ``images`` maps the data's image stems to their files."""
        raise NotImplementedError


# How much of a JSON file format detection reads: the top-level keys of both JSON formats come early.
DETECT_BYTES = 1 << 16


def head(path: Path) -> str:
    """The start of a text file (for detection), empty when unreadable."""
    try:
        with path.open("r", encoding="utf-8", errors="replace") as file:
            return file.read(DETECT_BYTES)
    except OSError:
        return ""


def load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise AnnotationError(f"cannot read annotation file {path}: {error}") from None


ANNOTATION_FORMATS: dict[str, AnnotationFormat] = {}


def register_annotation_format(name: str) -> Callable[[type[AnnotationFormat]], type[AnnotationFormat]]:
    """Class decorator: make a format readable as ``data.annotation_format=<name>`` and auto-detected."""

    def decorator(cls: type[AnnotationFormat]) -> type[AnnotationFormat]:
        if name in ANNOTATION_FORMATS:
            raise ValueError(f"annotation format {name!r} is already registered")
        cls.name = name
        ANNOTATION_FORMATS[name] = cls()
        return cls

    return decorator


def annotation_format(path: Path, name: str | None) -> AnnotationFormat:
    """The format ``name``, or the one format that recognises ``path`` when ``name`` is ``None``."""
    if name is not None and name not in ANNOTATION_FORMATS:
        raise ConfigError(
            f"unknown data.annotation_format {name!r}; valid names: {', '.join(sorted(ANNOTATION_FORMATS))}"
        )
    if not path.exists():
        raise AnnotationError(f"annotation file {path} does not exist")
    if name is not None:
        return ANNOTATION_FORMATS[name]
    found = [fmt for fmt in ANNOTATION_FORMATS.values() if fmt.detect(path)]
    if len(found) != 1:
        what = (
            "no known format" if not found else "several formats (" + ", ".join(f.name for f in found) + ")"
        )
        raise AnnotationError(
            f"{path} looks like {what}; set data.annotation_format to one of {', '.join(sorted(ANNOTATION_FORMATS))}"
        )
    return found[0]


def with_background(names: Sequence[str], source: Path) -> tuple[tuple[str, ...], list[int]]:
    """The class names for the file's categories ``names`` (in file order) and each category's class index.

    Class 0 is background: the file's own category of that name (:data:`BACKGROUND_NAMES`) when it has
    one, else a ``background`` class put in front. The other categories follow in the file's order.
    """
    own = [i for i, name in enumerate(names) if name.lower() in BACKGROUND_NAMES]
    if len(own) > 1:
        raise AnnotationError(f"{source} has {len(own)} background categories: {[names[i] for i in own]}")
    order = own + [i for i in range(len(names)) if i not in own]
    class_names = ([] if own else [BACKGROUND]) + [names[i] for i in order]
    index = {position: (i if own else i + 1) for i, position in enumerate(order)}
    if len(class_names) >= IGNORE_LABEL:
        raise AnnotationError(f"{source} has {len(class_names)} classes; at most {IGNORE_LABEL - 1} are read")
    return tuple(class_names), [index[i] for i in range(len(names))]


def polygon(values: Sequence[Any], source: Path, where: str) -> tuple[float, ...]:
    """A flat ``[x0, y0, ...]`` outline of at least 3 points, or an :class:`AnnotationError` saying where."""
    try:
        flat = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise AnnotationError(f"{source}: {where} has a polygon of non-numbers: {list(values)[:6]}") from None
    if len(flat) % 2 or len(flat) < 6:
        raise AnnotationError(
            f"{source}: {where} has a polygon of {len(flat) / 2:g} points (at least 3 needed)"
        )
    return flat


def box(left: float, top: float, right: float, bottom: float) -> tuple[float, ...]:
    """An axis-aligned rectangle as a polygon (corners in any order)."""
    x0, x1 = sorted((left, right))
    y0, y1 = sorted((top, bottom))
    return (x0, y0, x1, y0, x1, y1, x0, y1)
