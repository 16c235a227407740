"""Shapes painted into a label mask with pycocotools, the COCO reference rasteriser, for every format.

One rasteriser for all formats gives one rule for which pixels a polygon covers (COCO's: the pixels whose
area it encloses), and RLEs decode exactly as COCO's own tools decode them.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from unet.data.annotations.base import ImageAnnotation, Shape
from unet.utils.extras import requires_extra


def rasterise(annotation: ImageAnnotation, size: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` uint8 class indices: 0 where no shape is, each shape painted over the earlier ones."""
    with requires_extra("annotations"):
        from pycocotools import mask as coco_mask
    mask = np.zeros(size, dtype=np.uint8)
    with warnings.catch_warnings():
        # pycocotools' decoding under numpy 2 warns of its own use of numpy, nothing a user can act on.
        warnings.filterwarnings("ignore", message=".*__array__ implementation", category=DeprecationWarning)
        for shape in annotation.shapes:
            mask[_pixels(shape, size, coco_mask)] = shape.label
    return mask


def _pixels(shape: Shape, size: tuple[int, int], coco_mask: Any) -> np.ndarray:
    """``(H, W)`` bool: the pixels ``shape`` covers."""
    height, width = size
    if shape.bitmap is not None:
        return shape.bitmap
    if shape.rle is not None:
        rle = dict(shape.rle)
        if isinstance(rle["counts"], list):  # uncompressed: run lengths as numbers
            rle = coco_mask.frPyObjects(rle, height, width)
        return coco_mask.decode(rle).astype(bool)
    parts = coco_mask.frPyObjects([list(outline) for outline in shape.polygons], height, width)
    return coco_mask.decode(coco_mask.merge(parts)).astype(bool)
