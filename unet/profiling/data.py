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

import numpy as np
import torch
from PIL import Image

from unet.data import FolderDataModule, SyntheticDataModule
from unet.data.base import SegmentationDataModule
from unet.data.shapes import CLASS_NAMES
from unet.data.street_scenes import street_scene

# The street proxy's first seed per split: its splits never share a scene.
SPLIT_SEEDS = {"train": 0, "val": 100_000, "test": 200_000}


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


def write_png_folder(
    root: Path,
    datamodule: SegmentationDataModule,
    splits: Sequence[str] = ("train", "val"),
    binary: bool = False,
) -> Path:
    """The datamodule's samples of ``splits`` as PNG files in ``root/<split>/{images,masks}``.

    As users' data arrives: decoding them is the work that caching and loader workers could save.
    ``binary`` saves masks as 0/255 (every class but 0 as 255), as binary masks are usually saved.
    """
    for split in splits:
        source = datamodule.split_source(split)
        for kind in ("images", "masks"):
            (root / split / kind).mkdir(parents=True, exist_ok=True)
        for index in range(len(source)):
            image, mask = source[index]  # (H, W, C) and (H, W)
            Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(
                root / split / "images" / f"{index:05d}.png"
            )
            mask = (mask > 0).astype(np.uint8) * 255 if binary else mask
            Image.fromarray(mask).save(root / split / "masks" / f"{index:05d}.png")
    return root


def write_mitochondria_proxy(root: str | Path) -> Path:
    """A stand-in for an EM mitochondria set, as a user's folder: 22 training, 5 validation and 8 test
    gray 768x1024 images of noisy shapes, binary masks saved 0/255 (``data.mask_threshold=127``).

    Few large images of large objects: the case where one pass is a handful of steps and a full-size
    validation costs more than training, which the plan must handle (README, Planned defaults).
    """
    datamodule = SyntheticDataModule(
        num_train=22, num_val=5, num_test=8, image_size=[768, 1024], in_channels=1, num_shapes=[10, 24],
        noise=0.25, seed=7,
    )  # fmt: skip
    return write_png_folder(Path(root), datamodule, ("train", "val", "test"), binary=True)


def write_street_proxy(
    root: str | Path, size: tuple[int, int] = (360, 480), images: tuple[int, int, int] = (367, 101, 100)
) -> Path:
    """A stand-in for a street-scene set, as a user's folder: by default 367 training, 101 validation and
    100 test RGB 360x480 street scenes (:mod:`unet.data.street_scenes`: perspective, textures, occlusion,
    poles a few pixels wide, CamVid's 11 classes long-tailed), masks holding the class indices.

    Many mid-sized photographs: the case where a CPU budget sees each pixel only a few times at full
    resolution. Each split's scenes come from seeds of their own, so no image is in two splits.
    """
    root = Path(root)
    for split, count in zip(("train", "val", "test"), images, strict=True):
        for kind in ("images", "masks"):
            (root / split / kind).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            image, mask = street_scene(*size, seed=SPLIT_SEEDS[split] + index)
            Image.fromarray(image).save(root / split / "images" / f"{index:05d}.png")
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
