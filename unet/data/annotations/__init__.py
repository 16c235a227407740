"""Annotations from labelling tools (COCO, labelme, CVAT, YOLO) rasterised into cached label masks.

Importing this package imports every module in it, which registers each format in
:data:`ANNOTATION_FORMATS`: a new format is one new module here holding a class decorated with
:func:`register_annotation_format`, and nothing else changes.
"""

import importlib
import pkgutil

from unet.data.annotations.base import (
    ANNOTATION_FORMATS,
    IGNORE_LABEL,
    AnnotationFormat,
    Annotations,
    ImageAnnotation,
    Shape,
    annotation_format,
    register_annotation_format,
)
from unet.data.annotations.cache import AUTO, AnnotatedMasks, annotation_masks

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "ANNOTATION_FORMATS",
    "AUTO",
    "IGNORE_LABEL",
    "AnnotatedMasks",
    "AnnotationFormat",
    "Annotations",
    "ImageAnnotation",
    "Shape",
    "annotation_format",
    "annotation_masks",
    "register_annotation_format",
]
