"""Order and augmentation are functions of (seed, epoch): what resumed and distributed runs rely on."""

import albumentations as A
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from unet.data import SyntheticDataModule
from unet.data.dataset import SegmentationDataset
from unet.data.sampling import EpochSampler, ResumableDataLoader
from unet.data.sources import ArraySource
from unet.data.transforms import SamplePipeline


def flip_dataset(count: int = 32) -> SegmentationDataset:
    """Sample ``i`` is a 4x4 ramp plus ``i``: whether it was flipped shows in its first pixel."""
    images = [np.arange(16, dtype=np.float32).reshape(4, 4, 1) + 16 * i for i in range(count)]
    source = ArraySource(images, [np.zeros((4, 4), np.uint8)] * count)
    return SegmentationDataset(source, SamplePipeline([A.HorizontalFlip()], mean=[0.0], std=[1.0], seed=0))


def epoch_batches(dataset: SegmentationDataset, epoch: int, num_workers: int) -> torch.Tensor:
    sampler = EpochSampler(len(dataset), shuffle=True, seed=7, even_shards=True)
    sampler.set_epoch(epoch)
    loader = DataLoader(dataset, batch_size=4, sampler=sampler, num_workers=num_workers)
    return torch.cat([images for images, _ in loader])


def test_an_epoch_is_the_same_with_or_without_worker_processes():
    dataset = flip_dataset()
    in_process = epoch_batches(dataset, epoch=3, num_workers=0)
    assert torch.equal(in_process, epoch_batches(dataset, epoch=3, num_workers=2))
    # ... and it is a real shuffle with real augmentation: samples flipped and not, out of order.
    first_pixels = in_process[:, 0, 0, 0]
    flipped = (first_pixels % 16) == 3
    assert 0 < int(flipped.sum()) < len(dataset)
    assert not torch.equal(first_pixels.sort().values, first_pixels)


def test_each_epoch_has_its_own_order_and_augmentations_repeatable_on_demand():
    dataset = flip_dataset()
    epoch_1 = epoch_batches(dataset, epoch=1, num_workers=0)
    assert not torch.equal(epoch_1, epoch_batches(dataset, epoch=2, num_workers=0))
    torch.manual_seed(123)  # the global random state plays no part
    assert torch.equal(epoch_1, epoch_batches(dataset, epoch=1, num_workers=0))


@pytest.mark.parametrize("num_samples", [10, 11, 3])
def test_shards_cover_the_split_evenly_for_training_and_exactly_once_for_evaluation(monkeypatch, num_samples):
    def shards(even_shards: bool) -> list[list[int]]:
        result = []
        for rank in range(4):
            monkeypatch.setattr("unet.data.sampling.process_group_shape", lambda rank=rank: (rank, 4))
            sampler = EpochSampler(num_samples, shuffle=even_shards, seed=0, even_shards=even_shards)
            indices = [index for _, index in sampler]
            assert len(indices) == len(sampler)
            result.append(indices)
        return result

    training = shards(even_shards=True)
    assert len({len(shard) for shard in training}) == 1  # ranks step together
    assert set(sum(training, [])) == set(range(num_samples))
    evaluation = shards(even_shards=False)
    assert sorted(sum(evaluation, [])) == list(range(num_samples))


def test_datamodule_loaders_use_the_epoch_sampler():
    datamodule = SyntheticDataModule(
        num_train=12, num_val=5, num_test=5, image_size=16, batch_size=4, num_workers=0
    )
    datamodule.setup("fit")
    train, val = datamodule.train_dataloader(), datamodule.val_dataloader()
    assert isinstance(train.sampler, EpochSampler) and train.sampler.shuffle
    assert [index for _, index in val.sampler] == list(range(5))


def test_one_pass_epochs_keep_the_order_they_always_had():
    from unet.utils.seeding import derive_seed

    sampler = EpochSampler(10, shuffle=True, seed=7, even_shards=True)
    sampler.set_epoch(3)
    expected = torch.randperm(10, generator=torch.Generator().manual_seed(derive_seed(7, 3))).tolist()
    assert [index for _, index in sampler] == expected and len(sampler) == 10


def test_an_epoch_of_more_draws_than_samples_repeats_each_sample_with_its_own_augmentation():
    sampler = EpochSampler(3, shuffle=True, seed=7, even_shards=True, epoch_size=10)
    sampler.set_epoch(2)
    draws = [index for _, index in sampler]
    assert len(sampler) == len(draws) == 10 and len(set(draws)) == 10  # every draw its own seed
    assert sorted(np.bincount([d % 3 for d in draws]).tolist()) == [3, 3, 4]
    assert sorted(draws[:3]) == [0, 1, 2]  # the first pass is the one-pass order
    assert [index for _, index in sampler] == draws  # a function of (seed, epoch)
    dataset = flip_dataset(count=3)
    # Draws 0 and 3, 6, 9 are sample 0: the same image, each with the flip decided by its own draw.
    firsts = {float(dataset[(2, draw)][0][0, 0, 0]) for draw in (0, 3, 6, 9, 12, 15)}
    assert firsts == {0.0, 3.0}  # flipped and not, never another sample's pixels


def test_epoch_size_sets_the_steps_of_a_training_epoch_and_only_of_training():
    datamodule = SyntheticDataModule(
        num_train=8, num_val=4, num_test=0, image_size=16, batch_size=4, num_workers=0, epoch_size=20
    )
    datamodule.setup("fit")
    assert len(datamodule.train_dataloader()) == 5 and len(datamodule.val_dataloader()) == 1
    with pytest.raises(ValueError, match="epoch_size must be >= 1"):
        SyntheticDataModule(num_train=8, num_val=4, num_test=0, epoch_size=0)


def test_a_resumed_epoch_skips_the_draws_already_trained_on_only_at_its_epoch_and_once():
    sampler = EpochSampler(10, shuffle=True, seed=7, even_shards=True, epoch_size=24)
    sampler.set_epoch(3)
    full = list(sampler)
    sampler.resume_at(3, draws=8)
    sampler.set_epoch(2)
    assert len(list(sampler)) == 24  # another epoch: untouched, and the skip still waits for epoch 3
    sampler.set_epoch(3)
    assert list(sampler) == full[8:] and len(sampler) == 24  # len: the whole epoch, as Lightning counts
    assert list(sampler) == full  # once


def test_each_rank_skips_its_own_share_of_a_resumed_epoch(monkeypatch):
    for rank in range(3):
        monkeypatch.setattr("unet.data.sampling.process_group_shape", lambda rank=rank: (rank, 3))
        sampler = EpochSampler(20, shuffle=True, seed=0, even_shards=True)
        sampler.set_epoch(1)
        full = list(sampler)
        sampler.resume_at(1, draws=4)
        assert list(sampler) == full[4:]


def resumable_loader(
    dataset: SegmentationDataset, num_workers: int = 0, position=None
) -> ResumableDataLoader:
    sampler = EpochSampler(len(dataset), shuffle=True, seed=7, even_shards=True)
    return ResumableDataLoader(
        dataset, batch_size=4, sampler=sampler, num_workers=num_workers, position=position
    )


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_loader_restored_mid_epoch_serves_the_rest_of_the_epoch(num_workers):
    dataset = flip_dataset()  # 8 batches of 4
    full = epoch_batches(dataset, epoch=2, num_workers=0)
    saved = resumable_loader(dataset, position=lambda: (2, 3)).state_dict()
    assert saved == {"epoch": 2, "batches": 3}
    loader = resumable_loader(dataset, num_workers)
    loader.load_state_dict(saved)
    # As Lightning resumes: the iterator is created (worker processes take their indices at once)
    # before the epoch is set; then the next epoch is whole again.
    iterator = iter(loader)
    loader.sampler.set_epoch(2)
    assert torch.equal(torch.cat([images for images, _ in iterator]), full[3 * 4 :])
    loader.sampler.set_epoch(3)
    assert torch.equal(torch.cat([images for images, _ in loader]), epoch_batches(dataset, 3, 0))


def test_a_loader_restored_after_a_finished_epoch_starts_the_next_one_whole():
    dataset = flip_dataset()
    loader = resumable_loader(dataset)
    loader.load_state_dict({"epoch": 2, "batches": 8})  # all 8 batches of epoch 2 were trained on
    assert loader.sampler.epoch == 3
    assert torch.equal(torch.cat([images for images, _ in loader]), epoch_batches(dataset, 3, 0))
    # Outside training the loader states its sampler's epoch, nothing trained.
    assert resumable_loader(dataset).state_dict() == {"epoch": 0, "batches": 0}


def test_the_datamodule_carries_the_position_to_the_first_training_loader_it_builds():
    # Lightning restores a loader's state only when it builds the loader after the loops' state, not
    # when the learning-rate schedule asked for the number of steps before (Lightning issue #20550).
    datamodule = SyntheticDataModule(
        num_train=12, num_val=4, num_test=0, image_size=16, batch_size=4, num_workers=0
    )
    datamodule.setup("fit")
    assert datamodule.state_dict() == {}  # no trainer: nothing to resume
    full = [index for _, index in datamodule.train_dataloader().sampler]
    datamodule.load_state_dict({"train_loader": {"epoch": 0, "batches": 2}})
    assert [index for _, index in datamodule.train_dataloader().sampler] == full[8:]
    assert [index for _, index in datamodule.train_dataloader().sampler] == full
