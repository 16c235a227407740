"""How fast the data layer delivers training batches, on in-memory data and on PNG files.

Data delivery is timed with the augmentation training really runs: callers pass the instantiated
training transforms of their data preset (``unet-benchmark`` passes its ``train_transforms`` key).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from unet.data import FolderDataModule, SyntheticDataModule
from unet.data.base import SegmentationDataModule
from unet.data.shapes import CLASS_NAMES


def synthetic_datamodule(
    size: int,
    in_channels: int,
    batch_size: int,
    batches: int,
    train_transforms: Sequence[Any],
    **options: Any,
) -> SyntheticDataModule:
    """The default synthetic data at ``size`` x ``size``: ``batches`` training batches, in memory.

    ``options``: the datamodule's keywords (``num_workers``, 0 unless given; ``pin_memory``, ...).
    Every datamodule gets copies of the transforms, so none shares random state with another.
    """
    return SyntheticDataModule(
        num_train=batch_size * batches, num_val=1, num_test=0, image_size=size, in_channels=in_channels,
        batch_size=batch_size,
        **{"num_workers": 0, "train_transforms": copy.deepcopy(list(train_transforms)), **options},
    )  # fmt: skip


def write_png_folder(root: Path, datamodule: SegmentationDataModule) -> Path:
    """The datamodule's train and val samples as PNG files in ``root/{train,val}/{images,masks}``.

    As users' data arrives: decoding them is the work that caching and loader workers could save.
    """
    for split in ("train", "val"):
        source = datamodule.split_source(split)
        for kind in ("images", "masks"):
            (root / split / kind).mkdir(parents=True, exist_ok=True)
        for index in range(len(source)):
            image, mask = source[index]  # (H, W, C) and (H, W)
            Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(
                root / split / "images" / f"{index:05d}.png"
            )
            Image.fromarray(mask).save(root / split / "masks" / f"{index:05d}.png")
    return root


def folder_datamodule(
    root: Path, in_channels: int, batch_size: int, train_transforms: Sequence[Any], **options: Any
) -> FolderDataModule:
    """The folder datamodule over :func:`write_png_folder`'s files (``options``: cache, num_workers, ...)."""
    return FolderDataModule(
        root=str(root), num_classes=len(CLASS_NAMES), in_channels=in_channels, batch_size=batch_size,
        train_transforms=copy.deepcopy(list(train_transforms)), **options,
    )  # fmt: skip


def data_throughput(datamodule: SegmentationDataModule, device: torch.device | None = None) -> float:
    """Images/s the datamodule's training loader delivers (its augmentation included), onto ``device`` if given.

    Timed over a second epoch, as in training: worker processes persist, so their start-up is paid once per
    run. With a CUDA ``device`` every batch is copied to it (asynchronously from pinned memory).
    """
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()

    def epoch() -> int:
        count = 0
        for images, masks in loader:
            if device is not None:
                images = images.to(device, non_blocking=datamodule.pin_memory)
                masks = masks.to(device, non_blocking=datamodule.pin_memory)
            count += len(images)
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)
        return count

    epoch()
    start = time.perf_counter()
    count = epoch()
    return count / (time.perf_counter() - start)
