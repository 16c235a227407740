"""Sampling that is a pure function of ``(seed, epoch)``: the same batches after a restart, on any ranks.

The torch ``RandomSampler`` draws its permutation from the global random state when an epoch's iterator
is created, so a run resumed from a checkpoint (or one whose loop consumed random numbers in a different
order) shuffles differently from the uninterrupted run. :class:`EpochSampler` instead derives the
permutation from the run's seed and the epoch Lightning sets through :meth:`EpochSampler.set_epoch`, and
hands the epoch to the dataset with every index, so a sample's augmentation is seeded by
``(seed, epoch, index)``: independent of worker processes, of their count, and of what ran before.

Under ``torch.distributed`` the sampler shards itself (rank ``r`` takes every ``world_size``-th sample
of the epoch's order), so the trainer must not wrap it in a ``DistributedSampler`` (the trainer configs
set ``use_distributed_sampler: false``).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from unet.utils.seeding import derive_seed

# What the sampler yields and :class:`unet.data.dataset.SegmentationDataset` accepts.
EpochIndex = tuple[int, int]


def process_group_shape() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group, ``(0, 1)`` outside distributed runs."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class EpochSampler(Sampler[EpochIndex]):
    """Yields ``(epoch, draw)`` pairs: this rank's share of the epoch's order of ``epoch_size`` draws.

    Draw ``d`` is sample ``d % num_samples`` (see :class:`unet.data.dataset.SegmentationDataset`);
    its augmentation is seeded by ``(seed, epoch, d)``, so a sample drawn twice in one epoch is
    augmented twice differently.

    Args:
        num_samples: size of the dataset.
        shuffle: a new permutation per epoch (training); otherwise ``0 .. num_samples - 1``.
        seed: the run's seed; epoch ``e``'s permutation is seeded by ``(seed, e)``.
        even_shards: pad the order (repeating its start) so every rank gets the same number of samples,
            as training needs (ranks step together). Evaluation leaves it off, so every sample is
            scored exactly once and distributed metrics equal single-process ones.
        epoch_size: draws per epoch (``None``: one pass, ``num_samples``). Beyond one pass the order
            continues with further permutations (the ``k``-th seeded by ``(seed, e, k)``), so an epoch
            of a small data set can hold enough optimizer steps to be worth a validation.
    """

    def __init__(
        self, num_samples: int, *, shuffle: bool, seed: int, even_shards: bool, epoch_size: int | None = None
    ) -> None:
        if epoch_size is not None and epoch_size < 1:
            raise ValueError(f"epoch_size must be >= 1, got {epoch_size}")
        self.num_samples = int(num_samples)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.even_shards = even_shards
        self.epoch_size = self.num_samples if epoch_size is None else int(epoch_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning before every training epoch (also on resume)."""
        self.epoch = int(epoch)

    def order(self) -> list[int]:
        """This rank's indices for the current epoch."""
        indices: list[int] = []
        for cycle in range(-(-self.epoch_size // self.num_samples) if self.num_samples else 0):
            if self.shuffle:
                keys = (self.epoch,) if cycle == 0 else (self.epoch, cycle)  # one pass: as it always was
                generator = torch.Generator().manual_seed(derive_seed(self.seed, *keys))
                order = torch.randperm(self.num_samples, generator=generator).tolist()
            else:
                order = list(range(self.num_samples))
            indices += [cycle * self.num_samples + index for index in order]
        indices = indices[: self.epoch_size]
        rank, world_size = process_group_shape()
        if self.even_shards and indices and len(indices) % world_size:
            padding = world_size - len(indices) % world_size
            indices += (indices * (padding // len(indices) + 1))[:padding]
        return indices[rank::world_size]

    def __iter__(self) -> Iterator[EpochIndex]:
        epoch = self.epoch
        return iter([(epoch, index) for index in self.order()])

    def __len__(self) -> int:
        rank, world_size = process_group_shape()
        size = self.epoch_size if self.num_samples else 0
        if self.even_shards:
            return -(-size // world_size)
        return len(range(rank, size, world_size))
