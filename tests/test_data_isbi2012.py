"""ISBI2012DataModule on the real slices (skipped where the data is not on this machine)."""

import pytest
import torch
from conftest import ISBI_ROOT as ROOT
from conftest import requires_isbi

from unet.data import ISBI2012DataModule

pytestmark = requires_isbi


@pytest.fixture(scope="module")
def isbi() -> ISBI2012DataModule:
    dm = ISBI2012DataModule(root=str(ROOT), batch_size=5, num_workers=0)
    dm.setup()
    return dm


def test_description(isbi):
    assert isbi.num_classes == 2 and isbi.class_names == ["cell", "membrane"]
    assert isbi.in_channels == 1 and isbi.ignore_index is None and isbi.has_test


def test_fixed_held_out_slices(isbi):
    stems = {split: [pair.image.stem for pair in isbi.pairs[split]] for split in ("train", "val", "test")}
    assert stems["train"] == [f"{i:02d}" for i in range(20)]
    assert stems["val"] == [f"{i:02d}" for i in range(20, 25)]
    assert stems["test"] == [f"{i:02d}" for i in range(25, 30)]
    assert all(pair.image.stem == pair.mask.stem for pair in isbi.pairs["train"])


def test_membrane_is_the_minority_foreground_class(isbi):
    masks = torch.cat([m for split in ("train", "val", "test") for _, m in isbi.dataloader(split)])
    assert masks.shape == (30, 512, 512) and set(masks.unique().tolist()) == {0, 1}
    assert 0.18 < (masks == 1).float().mean().item() < 0.26


def test_hard_coded_statistics_normalise_the_slices(isbi):
    images = torch.cat([x for split in ("train", "val", "test") for x, _ in isbi.dataloader(split)])
    assert images.shape == (30, 1, 512, 512) and images.dtype == torch.float32
    assert abs(images.mean().item()) < 0.01 and abs(images.std().item() - 1) < 0.01


def test_random_split_instead_of_fixed_slices():
    dm = ISBI2012DataModule(root=str(ROOT), val_stems=None, test_stems=None, val_fraction=0.2, seed=5)
    assert [len(dm.pairs[s]) for s in ("train", "val")] == [24, 6] and not dm.has_test
