"""Per-sample pipeline: the configured albumentations transforms, then normalisation and tensor conversion.

Normalisation and conversion are done here with numpy/torch rather than by ``A.Normalize``/``ToTensorV2``,
so they are the same for uint8 and float images and do not depend on albumentations' versions.
Do not put ``Normalize`` or ``ToTensorV2`` in the configured lists.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.augmentations.crops.transforms import BaseCrop

from unet.data.errors import DataError
from unet.utils.normalization import channel_tensor
from unet.utils.seeding import derive_seed

log = logging.getLogger(__name__)

# Colour transforms and the channel counts they take (albumentations refuses others): for images of
# other channels (multispectral, several stains) they are skipped, with a line saying so.
COLOUR_TRANSFORMS: dict[str, tuple[int, ...]] = {
    "ColorJitter": (1, 3),
    "HueSaturationValue": (1, 3),
    "ToGray": (1, 3),
    "ToSepia": (1, 3),
    "CLAHE": (1, 3),
    "Equalize": (1, 3),
    "RGBShift": (1, 2, 3),
    "PlanckianJitter": (3,),
}


def as_transform_list(transforms: Any) -> list[Any]:
    """``None``, one transform, or a (Hydra/OmegaConf) list of them -> a plain list."""
    if transforms is None:
        return []
    if isinstance(transforms, A.BasicTransform | A.BaseCompose):
        return [transforms]
    return list(transforms)


def for_channels(transforms: list[Any], channels: int, key: str) -> list[Any]:
    """``transforms`` without the colour transforms that cannot take ``channels``-channel images
    (:data:`COLOUR_TRANSFORMS`), logging one line naming those skipped and the config ``key``."""
    kept, skipped = [], []
    for transform in transforms:
        takes = COLOUR_TRANSFORMS.get(type(transform).__name__)
        (skipped if takes is not None and channels not in takes else kept).append(transform)
    if skipped:
        names = ", ".join(type(transform).__name__ for transform in skipped)
        log.info("%s: %s skipped: the images have %d channels (not RGB)", key, names, channels)
    return kept


def resize_transform(size: tuple[int, int]) -> A.Resize:
    """Fixed-size resize: bilinear for the image, nearest for the mask (labels must not be blended)."""
    return A.Resize(*size, interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST)


def normalize_image(image: np.ndarray, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``(H, W, C)`` or ``(H, W)`` uint8/float image -> normalised float32 ``(C, H, W)``.

    uint8 images are scaled to [0, 1] first, so ``mean``/``std`` (``(C, 1, 1)``) are always in [0, 1] units.
    """
    if image.ndim == 2:
        image = image[..., None]
    tensor = _from_numpy(image.transpose(2, 0, 1))
    tensor = tensor.float() / 255.0 if tensor.dtype == torch.uint8 else tensor.float()
    # Out of place: the arrays may be a cached source's own memory.
    return (tensor - mean) / std


def to_tensors(
    image: np.ndarray, mask: np.ndarray, mean: torch.Tensor, std: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Image and ``(H, W)`` mask -> normalised float32 ``(C, H, W)`` (see :func:`normalize_image`), int64 ``(H, W)``."""
    if isinstance(image, torch.Tensor) or isinstance(mask, torch.Tensor):
        raise DataError("a configured transform returned tensors: remove ToTensorV2, the datamodule converts")
    return normalize_image(image, mean, std), _from_numpy(mask).long()


def _from_numpy(array: np.ndarray) -> torch.Tensor:
    """A tensor viewing ``array`` (copied only if not contiguous or read-only, e.g. fresh from PIL)."""
    array = np.ascontiguousarray(array)
    return torch.from_numpy(array if array.flags.writeable else array.copy())


class SamplePipeline:
    """Callable ``(image (H, W, C), mask (H, W), seed) -> (float32 (C, H, W), int64 (H, W))``.

    The augmentations are re-seeded for every sample from ``(seed, epoch, index)``, so what a sample
    looks like never depends on which worker process drew it or on what was drawn before.
    """

    def __init__(self, transforms: Any, mean: Sequence[float], std: Sequence[float], seed: int = 0) -> None:
        transforms = as_transform_list(transforms)
        self.compose = A.Compose(transforms, seed=seed) if transforms else None
        self.seed = int(seed)
        self.mean = channel_tensor(mean)
        self.std = channel_tensor(std)

    def __call__(
        self, image: np.ndarray, mask: np.ndarray, epoch: int = 0, index: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.compose is not None:
            self.compose.set_random_seed(derive_seed(self.seed, epoch, index))
            out = self.compose(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        return to_tensors(image, mask, self.mean, self.std)


class RareClassCrop(BaseCrop):
    """A crop window of ``size`` centred on a pixel of a rare class, as nnU-Net oversamples foreground.

    Of the ``classes`` present in the mask one is picked uniformly, then one of its pixels uniformly; the
    window is centred on it and shifted inside the image (so the pixel always stays in the window; an
    image smaller than the window is kept whole). Without a rare class in the mask the sample passes
    unchanged, and the configured crop after it draws as usual. Applied with probability ``p``, drawing
    from the generators ``A.Compose`` re-seeds per sample, so it is a function of ``(seed, epoch, index)``.
    """

    def __init__(self, classes: Sequence[int], size: tuple[int, int], p: float = 0.5) -> None:
        super().__init__(p=p)
        self.classes = tuple(int(c) for c in classes)
        self.size = (int(size[0]), int(size[1]))

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        mask = data["mask"]
        height, width = mask.shape[:2]
        present = np.intersect1d(self.classes, np.unique(mask))
        if not len(present):
            return {"crop_coords": (0, 0, width, height)}
        chosen = present[self.random_generator.integers(len(present))]
        rows, cols = np.nonzero(mask == chosen)
        pick = self.random_generator.integers(len(rows))
        crop_h, crop_w = min(self.size[0], height), min(self.size[1], width)
        top = int(np.clip(rows[pick] - crop_h // 2, 0, height - crop_h))
        left = int(np.clip(cols[pick] - crop_w // 2, 0, width - crop_w))
        return {"crop_coords": (left, top, left + crop_w, top + crop_h)}

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("classes", "size")


def with_rare_class_crop(transforms: Any, classes: Sequence[int], p: float) -> list[Any]:
    """The configured ``transforms`` with a :class:`RareClassCrop` of their ``RandomCrop``'s size just before it.

    Placed after whatever comes first (scale jitter, padding), the rare-class window is exactly what the
    ``RandomCrop`` then takes whole, so the rare pixel stays in view and the rest of the pipeline
    (flips, colour) is unchanged.
    """
    transforms = as_transform_list(transforms)
    at = next((i for i, t in enumerate(transforms) if isinstance(t, A.RandomCrop)), None)
    if at is None:
        raise DataError(
            "data.rare_class_crop_p > 0 needs an albumentations.RandomCrop in data.train_transforms "
            "(its size is the rare-class window)"
        )
    crop = transforms[at]
    return [*transforms[:at], RareClassCrop(classes, (crop.height, crop.width), p=p), *transforms[at:]]
