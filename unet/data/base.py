"""The base of every datamodule: data description, per-split pipelines and the DataLoaders.

Subclasses only say what the data are (``num_classes``, ``in_channels``, ...) and where each split's raw
samples come from (:meth:`SegmentationDataModule.split_source`); everything else lives here once.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from unet.data.batching import probe, size_clash, unbatchable_message
from unet.data.dataset import SegmentationDataset
from unet.data.errors import DataError, DataNotFoundError
from unet.data.sampling import EpochSampler, ResumableDataLoader, training_position
from unet.data.sources import SampleSource, SubsetSource
from unet.data.statistics import split_class_counts
from unet.data.transforms import SamplePipeline, as_transform_list, for_channels, with_rare_class_crop
from unet.utils.limits import check_num_classes
from unet.utils.seeding import derive_seed

SPLITS: tuple[str, ...] = ("train", "val", "test")
# The random stream (under the validation split's seed) that draws the validation subset.
VAL_SUBSET_STREAM = 1

# Which splits a Lightning stage needs (``None``: all the data has).
STAGE_SPLITS: dict[str | None, tuple[str, ...]] = {
    "fit": ("train", "val"),
    "validate": ("val",),
    "test": ("test",),
    "predict": (),
    None: SPLITS,
}


def default_num_workers() -> int:
    """Up to 4 loader processes, never more than the machine's cores."""
    return min(4, os.cpu_count() or 1)


def as_pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    """``n`` -> ``(n, n)``; ``[a, b]`` -> ``(a, b)``."""
    pair = (int(value), int(value)) if isinstance(value, int | np.integer) else tuple(int(v) for v in value)
    if len(pair) != 2:
        raise DataError(f"{name} must be an int or a pair, got {value!r}")
    return pair


class SegmentationDataModule(L.LightningDataModule, ABC):
    """Serves ``(images float32 (B, in_channels, H, W), masks int64 (B, H, W))`` batches for train/val/test.

    Images are normalised with ``mean``/``std`` (per channel, in [0, 1] units); masks hold class indices in
    ``[0, num_classes)`` or ``ignore_index``. The data description below is set in ``__init__`` so the model
    can be built before :meth:`setup`.

    Common keywords (every subclass accepts them):
        batch_size: samples per batch.
        num_workers: DataLoader processes; ``None`` -> ``min(4, cpu count)``; 0 loads in the main process.
        pin_memory: ``None`` -> pin when CUDA is available.
        persistent_workers: keep workers alive between epochs (only when ``num_workers > 0``).
        drop_last: drop the last incomplete training batch (val/test never drop).
        train_transforms / val_transforms / test_transforms: lists of instantiated albumentations
            transforms applied to the numpy image ``(H, W, C)`` and mask ``(H, W)`` before normalisation;
            ``None`` means none (no augmentation).
        seed: seeds splits, generated data and the augmentation streams.
        train_scale: the resolution the network works at, as a fraction of the data's (e.g. 0.5 to fit
            a CPU budget). The data stays at its own size: the network downscales its input and
            upsamples its logits back (``unet.models.networks``), so losses, scores, exports and
            predictions are all at the original resolution.
        rare_class_crop_p: probability that a training sample's crop is centred on a pixel of a rare
            class (one whose SegNet frequency in the training masks is below the median, see
            :mod:`unet.data.statistics`), as nnU-Net oversamples foreground; needs a ``RandomCrop`` in
            ``train_transforms`` (:func:`unet.data.transforms.with_rare_class_crop`). 0: plain crops.
        epoch_size: training samples drawn per epoch; ``None``: one pass over the training split. A
            small data set (a few dozen images) otherwise makes epochs of one or two optimizer steps,
            each followed by a validation (see :class:`unet.data.sampling.EpochSampler`).
        val_subset: validation images scored at each validation during training, a subset drawn once
            with ``seed`` (the same images every time, so the scores compare across epochs and choose
            the best checkpoint); ``None``: every image. A large split would otherwise spend the time
            budget validating. Validation outside training (a run's final scores, ``unet-eval``) scores
            the whole split.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        class_names: Sequence[str] | None,
        in_channels: int,
        ignore_index: int | None,
        mean: Sequence[float],
        std: Sequence[float],
        batch_size: int = 8,
        num_workers: int | None = None,
        pin_memory: bool | None = None,
        persistent_workers: bool = True,
        drop_last: bool = False,
        train_transforms: Any = None,
        val_transforms: Any = None,
        test_transforms: Any = None,
        seed: int = 0,
        train_scale: float = 1.0,
        epoch_size: int | None = None,
        rare_class_crop_p: float = 0.0,
        val_subset: int | None = None,
    ) -> None:
        super().__init__()
        check_num_classes(num_classes, "data.num_classes")
        if in_channels < 1:
            raise DataError(f"in_channels must be >= 1, got {in_channels}")
        class_names = [f"class_{i}" for i in range(num_classes)] if class_names is None else list(class_names)
        if len(class_names) != num_classes:
            raise DataError(f"{len(class_names)} class_names {class_names} for num_classes={num_classes}")
        if ignore_index is not None and 0 <= ignore_index < num_classes:
            raise DataError(f"ignore_index {ignore_index} is a class index (num_classes={num_classes})")
        mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        if len(mean) != in_channels or len(std) != in_channels:
            raise DataError(
                f"mean {mean} and std {std} need one value per channel (in_channels={in_channels})"
            )
        if min(std) <= 0:
            raise DataError(f"std must be positive, got {std}")
        if batch_size < 1:
            raise DataError(f"batch_size must be >= 1, got {batch_size}")
        if epoch_size is not None and epoch_size < 1:
            raise DataError(f"epoch_size must be >= 1 or null, got {epoch_size}")
        if val_subset is not None and val_subset < 1:
            raise DataError(f"val_subset must be >= 1 (validation images) or null (all), got {val_subset}")
        if not 0 < train_scale <= 1:
            raise DataError(f"train_scale must be in (0, 1], got {train_scale}")
        if not 0 <= rare_class_crop_p <= 1:
            raise DataError(f"rare_class_crop_p must be in [0, 1], got {rare_class_crop_p}")

        self.num_classes = int(num_classes)
        self.class_names = class_names
        self.in_channels = int(in_channels)
        self.ignore_index = None if ignore_index is None else int(ignore_index)
        self.mean = mean
        self.std = std
        self.batch_size = int(batch_size)
        self.num_workers = default_num_workers() if num_workers is None else int(num_workers)
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else bool(pin_memory)
        self.persistent_workers = bool(persistent_workers) and self.num_workers > 0
        self.drop_last = bool(drop_last)
        self.split_transforms = {
            split: for_channels(as_transform_list(transforms), self.in_channels, f"data.{split}_transforms")
            for split, transforms in (
                ("train", train_transforms),
                ("val", val_transforms),
                ("test", test_transforms),
            )
        }
        self.seed = int(seed)
        self.train_scale = float(train_scale)
        self.epoch_size = None if epoch_size is None else int(epoch_size)
        self.rare_class_crop_p = float(rare_class_crop_p)
        self.val_subset = None if val_subset is None else int(val_subset)
        self.datasets: dict[str, SegmentationDataset] = {}
        self._train_loader_state: dict[str, Any] | None = None  # from a checkpoint, see load_state_dict

    # --- what subclasses provide -------------------------------------------------------------------
    @abstractmethod
    def split_source(self, split: str) -> SampleSource:
        """The raw samples of ``split`` (called at most once per split, from :meth:`setup`)."""

    @property
    @abstractmethod
    def has_test(self) -> bool:
        """Whether a test split exists."""

    # --- shared machinery --------------------------------------------------------------------------
    def has_split(self, split: str) -> bool:
        return split != "test" or self.has_test

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets the stage needs (each once; later calls reuse them)."""
        for split in STAGE_SPLITS.get(stage, SPLITS):
            if self.has_split(split):
                self.dataset(split)

    def split_seed(self, split: str) -> int:
        """The seed of ``split``'s order and augmentations, derived from the run's ``seed``."""
        return derive_seed(self.seed, SPLITS.index(split))

    def dataset(self, split: str) -> SegmentationDataset:
        """The dataset of ``split``, built on first use."""
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        if not self.has_split(split):
            raise DataNotFoundError(f"{type(self).__name__} has no {split} split")
        if split not in self.datasets:
            source = self.split_source(split)
            transforms = self.split_transforms[split]
            if split == "train" and self.rare_class_crop_p > 0:
                rare = split_class_counts(self, split, source).rare_classes()
                transforms = with_rare_class_crop(transforms, rare, self.rare_class_crop_p)
            pipeline = SamplePipeline(transforms, self.mean, self.std, seed=self.split_seed(split))
            self.datasets[split] = SegmentationDataset(source, pipeline)
        return self.datasets[split]

    def empty_epoch_message(self, train_samples: int) -> str | None:
        """Why a training epoch would hold no batch (drop_last with fewer samples than a batch), or ``None``."""
        samples = self.epoch_size or train_samples
        if self.drop_last and samples < self.batch_size:
            return (
                f"drop_last with batch_size {self.batch_size} but only {samples} training samples per epoch: "
                "no batch would be left (set data.epoch_size)"
            )
        return None

    def val_subset_indices(self) -> list[int] | None:
        """The validation images scored during training, by index: ``val_subset`` of them drawn once with
        the run's seed, sorted; ``None`` when every image is (no subset, or one as large as the split)."""
        count = len(self.dataset("val"))
        if self.val_subset is None or self.val_subset >= count:
            return None
        rng = np.random.default_rng(derive_seed(self.split_seed("val"), VAL_SUBSET_STREAM))
        return sorted(int(index) for index in rng.choice(count, self.val_subset, replace=False))

    def dataloader(self, split: str, subset: bool = False) -> DataLoader:
        """A DataLoader over ``split``: shuffled (and optionally dropping the last batch) only for train;
        ``subset``: only the validation images scored during training (:meth:`val_subset_indices`).

        Its :class:`EpochSampler` makes the order and the augmentations a function of (seed, epoch), and
        shards the split across ranks in distributed runs; the training loader is a
        :class:`~unet.data.sampling.ResumableDataLoader`, so a mid-epoch checkpoint resumes mid-epoch. Samples that would leave the pipeline at
        different sizes (:func:`~unet.data.batching.size_clash`) cannot be stacked: for train that is
        refused here, naming two files and the keys that fix it; val and test, scored on whole images,
        are then served one image per batch.
        """
        dataset = self.dataset(split)
        indices = self.val_subset_indices() if subset and split == "val" else None
        served = (
            dataset
            if indices is None
            else SegmentationDataset(SubsetSource(dataset.source, indices), dataset.pipeline)
        )
        train = split == "train"
        epoch_size = self.epoch_size if train else None
        if train and (empty := self.empty_epoch_message(len(dataset))) is not None:
            raise DataError(empty)
        batch_size = self.batch_size
        probes = probe(dataset.source, dataset.pipeline, "training" if train else f"{split}")
        clash = size_clash(probes) if batch_size > 1 else None
        if clash is not None and train:
            raise DataError(unbatchable_message(clash, batch_size))
        if clash is not None:
            batch_size = 1
        sampler = EpochSampler(
            len(served), shuffle=train, seed=self.split_seed(split), even_shards=train, epoch_size=epoch_size
        )
        options: dict[str, Any] = {
            "batch_size": batch_size,
            "sampler": sampler,
            "drop_last": train and self.drop_last,
            "num_workers": self.num_workers,
            "pin_memory": self.pin_memory,
            "persistent_workers": self.persistent_workers,
        }
        if not train:
            return DataLoader(served, **options)
        # A mid-epoch checkpoint resumes mid-epoch (the trainer says where training stands).
        loader = ResumableDataLoader(dataset, position=lambda: training_position(self.trainer), **options)
        if self._train_loader_state is not None:  # the first training loader after a restore resumes
            loader.load_state_dict(self._train_loader_state)
            self._train_loader_state = None
        return loader

    # Lightning restores a training loader's own state only when the loader is built after the loops'
    # state is restored; a scheduler that asks for ``trainer.estimated_stepping_batches`` builds it
    # before (Lightning issue #20550), and the state is dropped. The datamodule's state is restored
    # before either, so the position travels here too and the loader is built already resumed.
    def state_dict(self) -> dict[str, Any]:
        """The training position (see :func:`~unet.data.sampling.training_position`) while fitting."""
        position = training_position(self.trainer)
        return {} if position is None else {"train_loader": {"epoch": position[0], "batches": position[1]}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Keep the checkpoint's training position for the next training loader built."""
        self._train_loader_state = state_dict.get("train_loader")

    def train_dataloader(self) -> DataLoader:
        return self.dataloader("train")

    def val_dataloader(self) -> DataLoader:
        """The validation split; while fitting only the images scored during training (``val_subset``)."""
        fitting = self.trainer is not None and self.trainer.state.fn == "fit"
        return self.dataloader("val", subset=fitting)

    def test_dataloader(self) -> DataLoader:
        return self.dataloader("test")
