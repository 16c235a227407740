"""CVAT for images 1.1 XML (``annotations.xml``): polygons, boxes and masks per ``<image>``.

Class names are the ``<meta>`` labels in their order after background. Shapes are drawn by ``z_order``
(higher on top; equal ``z_order`` in the file's order, later on top), as CVAT shows them. Boxes are
painted filled, as CVAT's own segmentation-mask export paints them; polylines and points enclose no
pixels and are skipped with a warning.
"""

from __future__ import annotations

import warnings
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from unet.data.annotations.base import (
    AnnotationFormat,
    Annotations,
    ImageAnnotation,
    Shape,
    box,
    head,
    polygon,
    register_annotation_format,
    with_background,
)
from unet.data.errors import AnnotationError

SHAPE_TAGS = ("polygon", "box", "mask")
OUTLINE_TAGS = ("polyline", "points", "skeleton", "ellipse", "cuboid")


@register_annotation_format("cvat")
class CvatFormat(AnnotationFormat):
    def detect(self, path: Path) -> bool:
        return path.is_file() and path.suffix.lower() == ".xml" and "<annotations" in head(path)

    def read(self, path: Path, images: Mapping[str, Path]) -> Annotations:
        try:
            root = ElementTree.parse(path).getroot()
        except (OSError, ElementTree.ParseError) as error:
            raise AnnotationError(f"cannot read CVAT file {path}: {error}") from None
        names = list(
            dict.fromkeys(label.findtext("name", "") for label in root.iterfind("meta//labels/label"))
        )
        class_names, indices = with_background(names, path)
        classes = dict(zip(names, indices, strict=True))
        result: dict[str, ImageAnnotation] = {}
        skipped = 0
        for image in root.iterfind("image"):
            name = image.get("name", "")
            shapes = []
            for order, element in enumerate(image):
                skipped += element.tag in OUTLINE_TAGS
                if element.tag in SHAPE_TAGS:
                    where = f"image {name}: {element.tag} {order}"
                    label = element.get("label", "")
                    if label not in classes:
                        raise AnnotationError(f"{path}: {where} has label {label!r}, not one of {names}")
                    shape = _shape(element, classes[label], image, path, where)
                    shapes.append((int(element.get("z_order", 0)), order, shape))
            stem = Path(name).stem
            if stem in result:
                raise AnnotationError(f"{path} has two <image> elements of stem {stem!r}")
            size = (int(image.get("height", 0)), int(image.get("width", 0)))
            result[stem] = ImageAnnotation(
                name, tuple(shape for *_, shape in sorted(shapes, key=lambda s: s[:2])), size
            )
        if skipped:
            warnings.warn(
                f"{path}: {skipped} CVAT polylines/points skipped (they enclose no pixels)", stacklevel=2
            )
        return Annotations(class_names, result)


def _shape(
    element: ElementTree.Element, label: int, image: ElementTree.Element, path: Path, where: str
) -> Shape:
    try:
        if element.tag == "polygon":
            points = [v for point in element.get("points", "").split(";") for v in point.split(",") if point]
            return Shape(label, polygons=(polygon(points, path, where),))
        if element.tag == "box":
            return Shape(
                label, polygons=(box(*(float(element.get(k, "")) for k in ("xtl", "ytl", "xbr", "ybr"))),)
            )
        return Shape(label, bitmap=_mask(element, image))
    except ValueError as error:
        raise AnnotationError(f"{path}: {where} cannot be read: {error}") from None


def _mask(element: ElementTree.Element, image: ElementTree.Element) -> np.ndarray:
    """A CVAT ``<mask>``: run lengths alternating 0s and 1s (0s first), row by row over its box."""
    left, top, width, height = (int(float(element.get(k, ""))) for k in ("left", "top", "width", "height"))
    runs = [int(v) for v in element.get("rle", "").split(",") if v.strip()]
    if sum(runs) != width * height:
        raise ValueError(f"its rle covers {sum(runs)} pixels, its box {width}x{height}")
    values = np.repeat(np.arange(len(runs)) % 2 == 1, runs).reshape(height, width)
    bitmap = np.zeros((int(image.get("height", 0)), int(image.get("width", 0))), dtype=bool)
    target = bitmap[top : top + height, left : left + width]
    if target.shape != values.shape:
        raise ValueError(f"its box {left},{top} {width}x{height} leaves the image")
    target[...] = values
    return bitmap
