"""OxfordPetDataModule on a tiny fake copy of torchvision's on-disk layout (no download)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from unet.data import DataError, DataNotFoundError, OxfordPetDataModule

# (image id, width, height); trainval and test lists as torchvision reads them: "id class species breed".
TRAINVAL = [(f"Abyssinian_{i}", 20 + i, 16 + i) for i in range(1, 11)]
TEST = [(f"beagle_{i}", 18, 14) for i in range(1, 4)]


def make_fake_pets(root: Path) -> None:
    base = root / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True)
    (base / "annotations" / "trimaps").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, entries in (("trainval", TRAINVAL), ("test", TEST)):
        lines = []
        for image_id, width, height in entries:
            pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(base / "images" / f"{image_id}.jpg")
            trimap = np.full((height, width), 2, np.uint8)  # background
            trimap[2:-2, 2:-2] = 3  # border ring
            trimap[4:-4, 4:-4] = 1  # pet
            Image.fromarray(trimap).save(base / "annotations" / "trimaps" / f"{image_id}.png")
            lines.append(f"{image_id} 1 1 1")
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def pets(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pets")
    make_fake_pets(root)
    return root


def pet_module(root: Path, **kwargs) -> OxfordPetDataModule:
    options = {"image_size": [12, 16], "batch_size": 4, "num_workers": 0, "val_fraction": 0.2}
    return OxfordPetDataModule(root=str(root), **{**options, **kwargs})


def test_loads_resized_batches_with_border_ignored(pets):
    dm = pet_module(pets)
    assert dm.num_classes == 2 and dm.class_names == ["background", "pet"] and dm.in_channels == 3
    assert dm.ignore_index == 255 and dm.has_test and len(dm.mean) == 3
    dm.setup("fit")
    dm.setup("test")
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [8, 2, 3]
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        images, masks = next(iter(loader))
        assert images.shape[1:] == (3, 12, 16) and images.dtype == torch.float32
        assert masks.shape[1:] == (12, 16) and masks.dtype == torch.int64
        assert set(masks.unique().tolist()) == {0, 1, 255}


@pytest.mark.parametrize(("border_as", "expected"), [("pet", {0, 1}), ("background", {0, 1})])
def test_border_as_a_class(pets, border_as, expected):
    dm = pet_module(pets, border_as=border_as, image_size=None, batch_size=1)
    _, mask = next(iter(dm.test_dataloader()))
    assert set(mask.unique().tolist()) == expected
    pet_pixels = (mask == 1).sum().item()
    # 18x14 trimap: the pet core is 10x6, the border ring around it 14x10 - 10x6
    assert pet_pixels == (140 if border_as == "pet" else 60)


def test_native_sizes_without_image_size(pets):
    dm = pet_module(pets, image_size=None, batch_size=1)
    images, masks = next(iter(dm.test_dataloader()))
    assert images.shape == (1, 3, 14, 18) and masks.shape == (1, 14, 18)


def test_val_split_is_seeded_and_disjoint(pets):
    def split_indices(seed: int) -> dict[str, list[int]]:
        dm = pet_module(pets, image_size=None, seed=seed)
        return {split: dm.dataset(split).source.indices for split in ("train", "val")}

    first, again, other = split_indices(1), split_indices(1), [split_indices(s)["val"] for s in range(2, 6)]
    assert first == again and any(val != first["val"] for val in other)
    assert not set(first["val"]) & set(first["train"])
    assert sorted(first["val"] + first["train"]) == list(range(len(TRAINVAL)))


def test_cached(pets):
    dm = pet_module(pets, cache=True)
    lazy = pet_module(pets, cache=False)
    for a, b in zip(dm.val_dataloader(), lazy.val_dataloader(), strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_missing_data_without_download_is_a_clear_error(tmp_path):
    with pytest.raises(DataNotFoundError, match="download=true") as error:
        OxfordPetDataModule(root=str(tmp_path))
    assert str(tmp_path / "oxford-iiit-pet") in str(error.value)


def test_bad_border_option(pets):
    with pytest.raises(DataError, match="border_as"):
        pet_module(pets, border_as="edge")
    with pytest.raises(DataError, match="ignore_index"):
        pet_module(pets, ignore_index=None)
