"""Data layer: Lightning datamodules serving ``(images (B, C, H, W) float32, masks (B, H, W) int64)`` batches.

Datamodules are built by ``hydra.utils.instantiate`` from ``configs/data/*.yaml``; nothing here knows of
models, the Lightning module or Hydra.
"""

from unet.data.base import SegmentationDataModule
from unet.data.camvid import CamVidDataModule
from unet.data.errors import (
    AnnotationError,
    DataError,
    DataNotFoundError,
    ImageReadError,
    LossyMaskError,
    MaskValueError,
    PairingError,
    SizeMismatchError,
)
from unet.data.folder import FolderDataModule
from unet.data.isbi2012 import ISBI2012DataModule
from unet.data.oxford_pet import OxfordPetDataModule
from unet.data.synthetic import SyntheticDataModule

__all__ = [
    "AnnotationError",
    "CamVidDataModule",
    "DataError",
    "DataNotFoundError",
    "FolderDataModule",
    "ISBI2012DataModule",
    "ImageReadError",
    "LossyMaskError",
    "MaskValueError",
    "OxfordPetDataModule",
    "PairingError",
    "SegmentationDataModule",
    "SizeMismatchError",
    "SyntheticDataModule",
]
