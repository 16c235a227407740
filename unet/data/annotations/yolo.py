"""YOLO segmentation labels: one ``.txt`` per image (``data.annotations`` is their folder, searched
recursively), a line ``class x1 y1 x2 y2 ...`` per object in coordinates normalised to 0..1.

Class names come from a ``data.yaml`` (its ``names``), ``classes.txt`` or ``*.names`` in the labels folder
or one of its two parents; YOLO's class ``i`` is class ``i + 1`` after background (unless a name is
``background``). A line of 4 coordinates is a detection box (centre x, centre y, width, height). An image
without a label file has no objects, as YOLO reads it. Lines are drawn in order, later on top.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from unet.data.annotations.base import (
    AnnotationFormat,
    Annotations,
    ImageAnnotation,
    Shape,
    box,
    polygon,
    register_annotation_format,
    with_background,
)
from unet.data.errors import AnnotationError
from unet.data.io import image_size

NAMES_FILES = ("data.yaml", "dataset.yaml", "classes.txt")


def _label_files(path: Path) -> list[Path]:
    if not path.is_dir():
        return []
    return sorted(file for file in path.rglob("*.txt") if file.name not in NAMES_FILES)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _names_file(path: Path) -> Path | None:
    """The first class-names file in the labels folder, its parent or its grandparent."""
    for folder in (path, path.parent, path.parent.parent):
        candidates = [folder / name for name in NAMES_FILES] + sorted(folder.glob("*.names"))
        found = next((file for file in candidates if file.is_file()), None)
        if found is not None:
            return found
    return None


def _read_names(file: Path) -> list[str]:
    if file.suffix != ".yaml":
        return [line.strip() for line in file.read_text().splitlines() if line.strip()]
    try:
        names = (yaml.safe_load(file.read_text()) or {}).get("names")
    except (yaml.YAMLError, AttributeError) as error:
        raise AnnotationError(f"cannot read class names from {file}: {error}") from None
    if isinstance(names, dict):
        if sorted(int(k) for k in names) != list(range(len(names))):
            raise AnnotationError(f"{file}: names' ids {sorted(names)} are not 0..{len(names) - 1}")
        names = [names[k] for k in sorted(names, key=int)]
    if not isinstance(names, list):
        raise AnnotationError(f"{file} has no 'names' list")
    return [str(name) for name in names]


@register_annotation_format("yolo")
class YoloFormat(AnnotationFormat):
    def detect(self, path: Path) -> bool:
        """A folder of ``.txt`` files whose lines are numbers (``labels.txt`` of names is not one)."""
        lines = (
            line for file in _label_files(path) for line in file.read_text().splitlines() if line.strip()
        )
        first = next(lines, None)
        return bool(_label_files(path)) and (first is None or all(_is_number(v) for v in first.split()))

    def sources(self, path: Path) -> list[Path]:
        names = _names_file(path)
        return _label_files(path) + ([] if names is None else [names])

    def read(self, path: Path, images: Mapping[str, Path]) -> Annotations:
        names_file = _names_file(path)
        if names_file is None:
            raise AnnotationError(
                f"no class names for the YOLO labels in {path}: put a data.yaml (names: [...]), classes.txt "
                "or .names file in that folder or its parent"
            )
        class_names, indices = with_background(_read_names(names_file), names_file)
        labels: dict[str, Path] = {}
        for file in _label_files(path):
            if file.stem in labels:
                raise AnnotationError(
                    f"{path} has two label files of stem {file.stem!r}: {labels[file.stem]}, {file}"
                )
            labels[file.stem] = file
        result = {stem: ImageAnnotation(file.name) for stem, file in labels.items() if stem not in images}
        for stem, image in images.items():
            shapes = () if stem not in labels else _read_lines(labels[stem], indices, image_size(image))
            result[stem] = ImageAnnotation(image.name, shapes)
        return Annotations(class_names, result)


def _read_lines(file: Path, indices: list[int], size: tuple[int, int]) -> tuple[Shape, ...]:
    height, width = size
    shapes = []
    for number, line in enumerate(file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        head, *coordinates = line.split()
        if not head.isdigit() or int(head) >= len(indices):
            raise AnnotationError(
                f"{file}: {where} has class id {head!r}; the names define 0..{len(indices) - 1}"
            )
        values = (
            polygon(coordinates, file, where) if len(coordinates) != 4 else _box(coordinates, file, where)
        )
        scaled = tuple(v * (width if i % 2 == 0 else height) for i, v in enumerate(values))
        shapes.append(Shape(indices[int(head)], polygons=(scaled,)))
    return tuple(shapes)


def _box(coordinates: list[str], file: Path, where: str) -> tuple[float, ...]:
    try:
        cx, cy, w, h = (float(v) for v in coordinates)
    except ValueError:
        raise AnnotationError(f"{file}: {where} has a box of non-numbers: {coordinates}") from None
    return box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
