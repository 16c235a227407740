"""Order and augmentation are functions of (seed, epoch): what resumed and distributed runs rely on."""

import albumentations as A
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from unet.data import SyntheticDataModule
from unet.data.dataset import SegmentationDataset
from unet.data.sampling import EpochSampler
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
