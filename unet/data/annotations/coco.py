"""COCO JSON (``instances_*.json``): polygons and run-length encodings, ``iscrowd`` regions ignored.

Categories are classes in the file's order after background (:func:`~unet.data.annotations.base.with_background`);
annotations are drawn in the file's order, later ones on top. A crowd annotation (``iscrowd: 1``) is
painted as ignore: its pixels count in neither the loss nor the scores.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from unet.data.annotations.base import (
    IGNORE_LABEL,
    AnnotationFormat,
    Annotations,
    ImageAnnotation,
    Shape,
    head,
    load_json,
    polygon,
    register_annotation_format,
    with_background,
)
from unet.data.errors import AnnotationError


@register_annotation_format("coco")
class CocoFormat(AnnotationFormat):
    def detect(self, path: Path) -> bool:
        text = head(path) if path.is_file() and path.suffix.lower() == ".json" else ""
        return '"images"' in text and '"shapes"' not in text

    def read(self, path: Path, images: Mapping[str, Path]) -> Annotations:
        data = load_json(path)
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise AnnotationError(f"{path} is not a COCO file: no 'images' list")
        categories = data.get("categories") or []
        class_names, indices = with_background([str(c["name"]) for c in categories], path)
        classes = {category["id"]: index for category, index in zip(categories, indices, strict=True)}
        by_id = _images_by_id(data["images"], path)
        shapes: dict[Any, list[Shape]] = {image_id: [] for image_id in by_id}
        for number, annotation in enumerate(data.get("annotations") or []):
            where = f"annotation {annotation.get('id', number)}"
            image_id = annotation.get("image_id")
            if image_id not in by_id:
                raise AnnotationError(
                    f"{path}: {where} names image_id {image_id!r}, which is not in 'images'"
                )
            if annotation.get("category_id") not in classes:
                raise AnnotationError(
                    f"{path}: {where} has category_id {annotation.get('category_id')!r}, not one of the "
                    f"categories' ids {sorted(classes)}"
                )
            label = IGNORE_LABEL if annotation.get("iscrowd") else classes[annotation["category_id"]]
            shapes[image_id].append(
                _shape(annotation.get("segmentation"), label, by_id[image_id], path, where)
            )
        return Annotations(
            class_names,
            {
                Path(image["file_name"]).stem: ImageAnnotation(
                    image["file_name"], tuple(shapes[image_id]), (int(image["height"]), int(image["width"]))
                )
                for image_id, image in by_id.items()
            },
        )


def _images_by_id(images: list[dict[str, Any]], path: Path) -> dict[Any, dict[str, Any]]:
    """The file's images by id; every one with a file name and a size, no two of the same file stem."""
    by_id, stems = {}, {}
    for image in images:
        if not {"id", "file_name", "height", "width"} <= set(image):
            raise AnnotationError(f"{path}: image {image} lacks one of id, file_name, height, width")
        stem = Path(image["file_name"]).stem
        if stem in stems:
            raise AnnotationError(
                f"{path} lists two images of stem {stem!r}: {stems[stem]} and {image['file_name']}"
            )
        stems[stem] = image["file_name"]
        by_id[image["id"]] = image
    return by_id


def _shape(segmentation: Any, label: int, image: dict[str, Any], path: Path, where: str) -> Shape:
    """A COCO ``segmentation``: a list of polygons, or an RLE of the image's size."""
    if isinstance(segmentation, list) and segmentation:
        return Shape(label, polygons=tuple(polygon(part, path, where) for part in segmentation))
    if isinstance(segmentation, dict) and {"counts", "size"} <= set(segmentation):
        size = [int(v) for v in segmentation["size"]]
        if size != [int(image["height"]), int(image["width"])]:
            raise AnnotationError(
                f"{path}: {where} has an RLE of size {size} on image {image['file_name']} of size "
                f"{[image['height'], image['width']]}"
            )
        return Shape(label, rle=segmentation)
    raise AnnotationError(f"{path}: {where} has no polygon or RLE segmentation (got {segmentation!r:.60})")
