"""The torch ``Dataset`` every datamodule serves: a sample source plus the per-split pipeline."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from unet.data.sources import SampleSource
from unet.data.transforms import SamplePipeline


class SegmentationDataset(Dataset):
    """Item ``i`` is ``(image float32 (C, H, W) normalised, mask int64 (H, W))``."""

    def __init__(self, source: SampleSource, pipeline: SamplePipeline) -> None:
        self.source = source
        self.pipeline = pipeline

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.source[index]
        return self.pipeline(image, mask)


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn``: give each DataLoader worker its own augmentation stream.

    albumentations keeps its own random state, copied unchanged into every forked worker, so without this
    all workers would draw the same augmentations. The worker's torch seed (base seed of the epoch's
    iterator + worker id) is reproducible under ``seed_everything``.
    """
    info = get_worker_info()
    seed = info.seed % 2**32
    np.random.seed(seed)
    random.seed(seed)
    dataset = info.dataset
    if isinstance(dataset, SegmentationDataset):
        dataset.pipeline.reseed(seed)
