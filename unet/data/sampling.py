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

The training loader (:class:`ResumableDataLoader`) tells Lightning how far into the epoch a checkpoint
was written, so a run resumed from a mid-epoch checkpoint (a signal, a mid-epoch validation) trains the
epoch's remaining batches instead of repeating its first ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import lightning as L
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Sampler

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
        self._resume: tuple[int, int] | None = None  # (epoch, draws to skip), see resume_at

    def resume_at(self, epoch: int, draws: int) -> None:
        """Skip the first ``draws`` of this rank's order the next time epoch ``epoch`` is iterated (once).

        Those draws were trained on before a mid-epoch checkpoint was written; iterations at other
        epochs are unaffected. ``len`` stays the whole epoch's, as Lightning counts the resumed
        batches from the saved position.
        """
        self._resume = (int(epoch), int(draws)) if draws > 0 else None

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
        order = self.order()
        if self._resume is not None and self._resume[0] == epoch:
            order = order[self._resume[1] :]
            self._resume = None
        return iter([(epoch, index) for index in order])

    def __len__(self) -> int:
        rank, world_size = process_group_shape()
        size = self.epoch_size if self.num_samples else 0
        if self.even_shards:
            return -(-size // world_size)
        return len(range(rank, size, world_size))


# Where training stands: ``(epoch, batches of it finished)``, or ``None`` when no training runs.
TrainingPosition = Callable[[], "tuple[int, int] | None"]


def training_position(trainer: L.Trainer | None) -> tuple[int, int] | None:
    """``(epoch, batches the fit loop has finished in it)``: the point a checkpoint written now resumes at.

    Lightning counts a batch as processed before ``on_train_batch_end`` (where a signal's checkpoint
    is written), so the count is exact there, whereas the batches the loader has handed out run ahead
    (the fetcher and worker processes prefetch). A finished epoch (an epoch-end checkpoint, or a
    signal on its last batch) is reported as the next epoch's start, where Lightning resumes: with
    ``limit_train_batches`` an epoch ends before the loader's last batch.
    """
    if trainer is None:
        return None
    epoch = trainer.current_epoch
    batches = trainer.fit_loop.epoch_loop.batch_progress.current.processed
    if batches >= trainer.num_training_batches:
        return epoch + 1, 0
    return epoch, batches


class ResumableDataLoader(DataLoader):
    """The training DataLoader, stateful in Lightning's sense: a mid-epoch checkpoint resumes mid-epoch.

    Lightning resumes a mid-epoch checkpoint with ``batch_idx`` counted on from the saved position but
    iterates a plain loader from its start: the resumed run would repeat the epoch's first batches and
    never see its last ones. :meth:`state_dict` records the position (from ``position``, which reads
    the trainer: only the loop knows which batches were trained on), :meth:`load_state_dict` makes the
    :class:`EpochSampler` skip the batches already trained on. Checkpoints without this state (written
    before it existed) resume as before: from the epoch's start. The datamodule carries the same
    position too (:meth:`unet.data.base.SegmentationDataModule.state_dict`): Lightning drops a loader's
    own state when the loader is built before the loops' state is restored (Lightning issue #20550).

    Args:
        position: returns :func:`training_position` of the trainer training with this loader.
        Everything else as :class:`~torch.utils.data.DataLoader`; ``sampler`` must be an
        :class:`EpochSampler`.
    """

    def __init__(self, *args: Any, position: TrainingPosition | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.sampler, EpochSampler) or self.batch_size is None:
            raise TypeError("ResumableDataLoader needs an EpochSampler and a batch_size")
        self.position = position

    def state_dict(self) -> dict[str, int]:
        position = None if self.position is None else self.position()
        epoch, batches = (self.sampler.epoch, 0) if position is None else position
        return {"epoch": int(epoch), "batches": int(batches)}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        epoch, batches = int(state_dict["epoch"]), int(state_dict["batches"])
        if batches >= len(self):  # the epoch was finished: resume at the next one's start
            epoch, batches = epoch + 1, 0
        # Set now, not only when Lightning sets the epoch: Lightning creates the epoch's iterator first,
        # and worker processes take their indices from the sampler as soon as it is created.
        self.sampler.set_epoch(epoch)
        self.sampler.resume_at(epoch, batches * self.batch_size)
