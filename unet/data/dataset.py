"""The torch ``Dataset`` every datamodule serves: a sample source plus the per-split pipeline."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from unet.data.sampling import EpochIndex
from unet.data.sources import SampleSource
from unet.data.transforms import SamplePipeline


class SegmentationDataset(Dataset):
    """Item ``i`` (or ``(epoch, i)``) is ``(image float32 (C, H, W) normalised, mask int64 (H, W))``.

    The key ``(epoch, i)`` comes from :class:`unet.data.sampling.EpochSampler`; it seeds sample ``i``'s
    augmentations for that epoch. A plain ``i`` is epoch 0. An ``i`` beyond the data set is a repeated
    draw of sample ``i % len(self)``, augmented by its own seed.
    """

    def __init__(self, source: SampleSource, pipeline: SamplePipeline) -> None:
        self.source = source
        self.pipeline = pipeline

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: int | EpochIndex) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        image, mask = self.source[index % len(self.source)]
        return self.pipeline(image, mask, epoch, index)
