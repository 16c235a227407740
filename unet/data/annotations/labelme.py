"""labelme JSON: one file per image (``data.annotations`` is their folder, or one file), shapes by label name.

Class names come from a ``labels.txt`` beside the files when there is one (labelme's own convention: one
name a line, ``__ignore__`` for "do not score", ``_background_`` for class 0), else from the labels in
order of first appearance over the files sorted by name. Shapes are drawn in the file's order, later on top:
polygons, rectangles and circles; lines and points enclose no pixels and are skipped with a warning.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from unet.data.annotations.base import (
    IGNORE_LABEL,
    AnnotationFormat,
    Annotations,
    ImageAnnotation,
    Shape,
    box,
    head,
    load_json,
    polygon,
    register_annotation_format,
    with_background,
)
from unet.data.errors import AnnotationError

LABELS_FILE = "labels.txt"
IGNORE_NAME = "__ignore__"
# Shapes without an area: nothing to paint.
OUTLINE_TYPES = ("line", "linestrip", "point", "points")
# Vertices of the polygon a circle is drawn as.
CIRCLE_VERTICES = 64


def _json_files(path: Path) -> list[Path]:
    return sorted(path.glob("*.json")) if path.is_dir() else [path] if path.suffix.lower() == ".json" else []


@register_annotation_format("labelme")
class LabelmeFormat(AnnotationFormat):
    def detect(self, path: Path) -> bool:
        files = _json_files(path)
        return bool(files) and '"shapes"' in head(files[0])

    def sources(self, path: Path) -> list[Path]:
        labels = _labels_file(path)
        return _json_files(path) + ([labels] if labels.is_file() else [])

    def read(self, path: Path, images: Mapping[str, Path]) -> Annotations:
        documents = {file: load_json(file) for file in _json_files(path)}
        if not documents:
            raise AnnotationError(f"no labelme .json files in {path}")
        names = _label_names(path, documents)
        class_names, indices = with_background([n for n in names if n != IGNORE_NAME], path)
        classes = dict(zip([n for n in names if n != IGNORE_NAME], indices, strict=True)) | {
            IGNORE_NAME: IGNORE_LABEL
        }
        result: dict[str, ImageAnnotation] = {}
        skipped = 0
        for file, document in documents.items():
            name = str(document.get("imagePath") or file.name)
            shapes = []
            for number, shape in enumerate(document.get("shapes") or []):
                label = str(shape.get("label"))
                if label not in classes:
                    raise AnnotationError(
                        f"{file}: shape {number} has label {label!r}, not in {_labels_file(path)}"
                    )
                outline = _outline(shape, file, f"shape {number} ({label})")
                skipped += outline is None
                if outline is not None:
                    shapes.append(Shape(classes[label], polygons=(outline,)))
            stem = Path(name).stem
            if stem in result:
                raise AnnotationError(f"{file} and another labelme file both annotate image {stem!r}")
            size = (
                (int(document["imageHeight"]), int(document["imageWidth"]))
                if "imageHeight" in document
                else None
            )
            result[stem] = ImageAnnotation(name, tuple(shapes), size)
        if skipped:
            warnings.warn(
                f"{path}: {skipped} labelme lines/points skipped (they enclose no pixels)", stacklevel=2
            )
        return Annotations(class_names, result)


def _labels_file(path: Path) -> Path:
    return (path if path.is_dir() else path.parent) / LABELS_FILE


def _label_names(path: Path, documents: Mapping[Path, Any]) -> list[str]:
    """``labels.txt``'s names when it exists, else every label in order of first appearance."""
    labels = _labels_file(path)
    if labels.is_file():
        return [line.strip() for line in labels.read_text().splitlines() if line.strip()]
    names: dict[str, None] = {}
    for document in documents.values():
        names.update((str(shape.get("label")), None) for shape in document.get("shapes") or [])
    return list(names)


def _outline(shape: Mapping[str, Any], file: Path, where: str) -> tuple[float, ...] | None:
    """The polygon a labelme shape covers; ``None`` for one without an area (a line, a point)."""
    kind = shape.get("shape_type") or "polygon"
    points = [[float(v) for v in point] for point in shape.get("points") or []]
    if kind in OUTLINE_TYPES:
        return None
    if kind == "polygon":
        return polygon([v for point in points for v in point], file, where)
    if kind in ("rectangle", "circle") and len(points) != 2:
        raise AnnotationError(f"{file}: {where} is a {kind} of {len(points)} points (2 expected)")
    if kind == "rectangle":
        return box(*points[0], *points[1])
    if kind == "circle":
        (cx, cy), (x, y) = points
        radius = math.hypot(x - cx, y - cy)
        angles = [2 * math.pi * i / CIRCLE_VERTICES for i in range(CIRCLE_VERTICES)]
        return tuple(v for a in angles for v in (cx + radius * math.cos(a), cy + radius * math.sin(a)))
    raise AnnotationError(f"{file}: {where} has shape_type {kind!r}; polygon, rectangle and circle are read")
