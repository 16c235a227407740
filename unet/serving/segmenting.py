"""An uploaded image segmented as ``unet-predict`` segments a file: read by the same reader (orientation,
bit depth and channels as in training), tiled with the same settings; answered as PNG or polygons."""

from __future__ import annotations

import base64
import io
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from unet.data.io import IMAGE_EXTENSIONS, read_image
from unet.inference.files import overlay, segment_image
from unet.inference.tiling import TilingSettings
from unet.serving.models import ServedModel
from unet.serving.polygons import class_name, class_polygons
from unet.utils.errors import UserError
from unet.utils.visualize import colourize


def read_upload(data: bytes, filename: str | None, in_channels: int) -> np.ndarray:
    """The uploaded file's bytes as an image ``(H, W, in_channels)``, read as ``unet-predict`` reads a file;
    a file that is no image, or one of another layout, is refused naming the upload, not a temporary file."""
    name = Path(filename or "image")
    suffix = name.suffix.lower() if name.suffix.lower() in IMAGE_EXTENSIONS else ".png"
    with tempfile.TemporaryDirectory(prefix="unet-serve-") as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            return read_image(path, in_channels)
        except UserError as error:
            raise type(error)(str(error).replace(str(path), name.name)) from None


def segment_upload(model: ServedModel, image: np.ndarray, tiling: TilingSettings) -> np.ndarray:
    """The class map ``(H, W)`` of ``image`` ``(H, W, C)`` by ``model``, tiled as ``tiling`` says."""
    return segment_image(
        model.predictor, image, tiling.tile_size, tiling.overlap, tiling.tta, tiling.batch_size
    )


def png_bytes(array: np.ndarray) -> bytes:
    """``(H, W)`` class indices or ``(H, W, 3)`` colours as PNG bytes (the mask as unet-predict writes it)."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def png_data_url(array: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(array)).decode("ascii")


def polygons_answer(model: ServedModel, mask: np.ndarray) -> dict[str, Any]:
    """``POST /predict?format=json``'s answer: the image's size and each present class's outlines."""
    height, width = mask.shape
    names = model.predictor.metadata.get("class_names") or []
    return {"model": model.name, "width": width, "height": height, "classes": class_polygons(mask, names)}


def compare_models(
    models: list[ServedModel], data: bytes, filename: str | None, tiling: TilingSettings
) -> dict[str, Any]:
    """``POST /compare``'s answer: each model's mask and overlay (PNG data URLs), latency and the classes
    it found, and where the models disagree (a white-on-black PNG and the fraction of pixels)."""
    results, masks = [], []
    for model in models:
        metadata = model.predictor.metadata
        names = metadata.get("class_names") or []
        image = read_upload(data, filename, metadata["in_channels"])
        start = time.perf_counter()
        mask = segment_upload(model, image, tiling)
        latency_ms = (time.perf_counter() - start) * 1000
        coloured = colourize(torch.from_numpy(mask), metadata.get("ignore_index")).permute(1, 2, 0).numpy()
        results.append(
            {
                "name": model.name,
                "latency_ms": latency_ms,
                "classes": [class_name(names, index) for index in np.unique(mask).tolist()],
                "mask": png_data_url(coloured),
                "overlay": png_data_url(overlay(image, mask, metadata.get("ignore_index"))),
            }
        )
        masks.append(mask)
    disagree = np.any(np.stack(masks) != masks[0], axis=0)
    return {
        "width": int(masks[0].shape[1]),
        "height": int(masks[0].shape[0]),
        "models": results,
        "disagreement": png_data_url(disagree.astype(np.uint8) * 255),
        "disagreement_fraction": float(disagree.mean()),
    }
