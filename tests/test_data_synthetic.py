"""SyntheticDataModule: the batch contract, determinism by seed, disjoint splits, speed, pipeline."""

import time

import albumentations as A
import numpy as np
import pytest
import torch

from unet.data import DataError, SegmentationDataModule, SyntheticDataModule
from unet.data.shapes import CLASS_NAMES, generate_shapes
from unet.data.transforms import SamplePipeline


def small(**kwargs) -> SyntheticDataModule:
    options = {
        "num_train": 24,
        "num_val": 8,
        "num_test": 8,
        "image_size": 32,
        "batch_size": 4,
        "num_workers": 0,
    }
    return SyntheticDataModule(**{**options, **kwargs})


def all_arrays(dm: SyntheticDataModule, split: str) -> np.ndarray:
    return np.asarray(dm.dataset(split).source.images)


def test_description_is_available_before_setup():
    dm = small(in_channels=3)
    assert isinstance(dm, SegmentationDataModule)
    assert dm.num_classes == 4 and dm.class_names == list(CLASS_NAMES)
    assert dm.in_channels == 3 and len(dm.mean) == len(dm.std) == 3
    assert dm.ignore_index is None
    assert dm.has_test and not small(num_test=0).has_test
    assert dm.datasets == {}


@pytest.mark.parametrize("in_channels", [1, 3])
def test_batches_follow_the_contract(in_channels):
    dm = small(in_channels=in_channels, image_size=[32, 48])
    dm.setup("fit")
    dm.setup("test")
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        images, masks = next(iter(loader))
        assert images.shape == (4, in_channels, 32, 48) and images.dtype == torch.float32
        assert masks.shape == (4, 32, 48) and masks.dtype == torch.int64
        assert masks.min() >= 0 and masks.max() < dm.num_classes
    # normalised with the default mean/std: roughly zero-mean, unit-variance
    images = torch.cat([x for x, _ in dm.val_dataloader()])
    assert abs(images.mean().item()) < 0.3 and 0.7 < images.std().item() < 1.3


def test_every_class_is_drawn():
    _, masks = generate_shapes(64, (32, 32), 1, (1, 4), 0.05, np.random.default_rng(0))
    assert set(np.unique(masks)) == {0, 1, 2, 3}


def test_same_seed_same_data_other_seed_other_data():
    a, b, c = small(seed=1), small(seed=1), small(seed=2)
    for dm in (a, b, c):
        dm.setup()
    for split in ("train", "val", "test"):
        assert np.array_equal(all_arrays(a, split), all_arrays(b, split))
        assert not np.array_equal(all_arrays(a, split), all_arrays(c, split))
    assert np.array_equal(a.dataset("val").source.masks, b.dataset("val").source.masks)


def test_splits_are_disjoint():
    dm = small(num_train=64, num_val=32, num_test=32)
    dm.setup()
    seen = {split: {image.tobytes() for image in all_arrays(dm, split)} for split in ("train", "val", "test")}
    assert (
        not seen["train"] & seen["val"]
        and not seen["train"] & seen["test"]
        and not seen["val"] & seen["test"]
    )


def test_augmented_training_batches_are_reproducible():
    transforms = [A.HorizontalFlip(), A.RandomRotate90()]
    batches = []
    for _ in range(2):
        torch.manual_seed(0)  # the shuffle order
        dm = small(train_transforms=transforms, seed=3)
        batches.append(next(iter(dm.train_dataloader())))
    assert torch.equal(batches[0][0], batches[1][0]) and torch.equal(batches[0][1], batches[1][1])


def test_pipeline_moves_image_and_mask_together():
    image = np.arange(12, dtype=np.uint8).reshape(3, 4, 1)
    mask = (np.arange(12).reshape(3, 4) % 3).astype(np.uint8)
    x, y = SamplePipeline([A.HorizontalFlip(p=1.0)], mean=[0.0], std=[1.0])(image, mask)
    assert torch.allclose(x[0], torch.from_numpy(image[:, ::-1, 0].copy()).float() / 255)
    assert torch.equal(y, torch.from_numpy(mask[:, ::-1].copy()).long())


def test_pipeline_refuses_totensor():
    pipeline = SamplePipeline([], mean=[0.0], std=[1.0])
    with pytest.raises(DataError, match="ToTensorV2"):
        pipeline(torch.zeros(1, 4, 4), np.zeros((4, 4), np.uint8))


def test_no_test_split_is_a_clear_error():
    dm = small(num_test=0)
    dm.setup("test")  # nothing to build, no error
    with pytest.raises(DataError, match="no test split"):
        dm.test_dataloader()


def test_worker_processes_load_batches():
    dm = small(num_workers=2, train_transforms=[A.HorizontalFlip()])
    assert dm.persistent_workers
    shapes = [tuple(images.shape) for images, _ in dm.train_dataloader()]
    assert shapes == [(4, 1, 32, 32)] * 6


def test_generation_is_fast():
    start = time.perf_counter()
    images, masks = generate_shapes(2000, (64, 64), 1, (1, 4), 0.08, np.random.default_rng(0))
    assert images.shape == (2000, 64, 64, 1) and masks.shape == (2000, 64, 64)
    assert time.perf_counter() - start < 5.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"in_channels": 0},
        {"num_val": 0},
        {"num_shapes": [3, 2]},
        {"image_size": [4, 4]},
        {"mean": [0.5, 0.5]},
        {"batch_size": 0},
        {"drop_last": True, "batch_size": 64},
    ],
)
def test_bad_options_are_data_errors(kwargs):
    with pytest.raises(DataError):
        small(**kwargs).train_dataloader()


def test_built_by_hydra_from_yaml_like_config():
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(
        {
            "_target_": "unet.data.SyntheticDataModule",
            "num_train": 8,
            "num_val": 4,
            "num_test": 0,
            "image_size": [16, 24],
            "num_shapes": [1, 2],
            "num_workers": 0,
            "batch_size": 2,
            "train_transforms": [{"_target_": "albumentations.HorizontalFlip", "p": 0.5}],
        }
    )
    dm = instantiate(cfg)
    images, masks = next(iter(dm.train_dataloader()))
    assert images.shape == (2, 1, 16, 24) and masks.shape == (2, 16, 24)
