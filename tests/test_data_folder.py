"""FolderDataModule: layouts, pairing, splits, mask mapping, channel conversion, formats and errors."""

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from unet.data import (
    DataError,
    DataNotFoundError,
    FolderDataModule,
    ImageReadError,
    MaskValueError,
    PairingError,
    SizeMismatchError,
)

SIZE = 8


def gray(seed: int, size: tuple[int, int] = (SIZE, SIZE)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)


def labels(seed: int, values=(0, 1), size: tuple[int, int] = (SIZE, SIZE)) -> np.ndarray:
    return np.random.default_rng(seed).choice(np.array(values, dtype=np.uint8), size)


def write_pairs(directory: Path, count: int, ext: str = ".png", values=(0, 1), start: int = 0) -> None:
    """``count`` gray images and label masks named ``NN<ext>`` / ``NN.png`` under ``directory``."""
    (directory / "images").mkdir(parents=True, exist_ok=True)
    (directory / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(start, start + count):
        Image.fromarray(gray(i)).save(directory / "images" / f"{i:02d}{ext}")
        Image.fromarray(labels(i, values)).save(directory / "masks" / f"{i:02d}.png")


def folder(root: Path, **kwargs) -> FolderDataModule:
    options = {"num_classes": 2, "in_channels": 1, "batch_size": 2, "num_workers": 0}
    return FolderDataModule(root=str(root), **{**options, **kwargs})


def stems(dm: FolderDataModule, split: str) -> list[str]:
    return [pair.image.stem for pair in dm.pairs[split]]


def all_masks(dm: FolderDataModule, split: str) -> torch.Tensor:
    return torch.cat([masks for _, masks in dm.dataloader(split)])


# --- layouts and splits ----------------------------------------------------------------------------
def test_single_pool_is_split_by_seeded_shuffle(tmp_path):
    write_pairs(tmp_path, 10)
    dm = folder(tmp_path, val_fraction=0.2, test_fraction=0.2, seed=1)
    assert [len(dm.pairs[s]) for s in ("train", "val", "test")] == [6, 2, 2] and dm.has_test
    assert not set(stems(dm, "train")) & set(stems(dm, "val")) and not set(stems(dm, "val")) & set(
        stems(dm, "test")
    )
    assert sorted(stems(dm, "train") + stems(dm, "val") + stems(dm, "test")) == [
        f"{i:02d}" for i in range(10)
    ]
    assert stems(folder(tmp_path, val_fraction=0.2, test_fraction=0.2, seed=1), "val") == stems(dm, "val")
    splits = {tuple(stems(folder(tmp_path, val_fraction=0.2, seed=s), "val")) for s in range(5)}
    assert len(splits) > 1  # the seed matters
    assert not folder(tmp_path).has_test


def test_split_directories_layout(tmp_path):
    write_pairs(tmp_path / "train", 4)
    write_pairs(tmp_path / "val", 2, start=4)
    dm = folder(tmp_path)
    assert stems(dm, "train") == ["00", "01", "02", "03"] and stems(dm, "val") == ["04", "05"]
    assert not dm.has_test
    with pytest.raises(DataError, match="no test split"):
        dm.test_dataloader()
    write_pairs(tmp_path / "test", 3, start=6)
    dm = folder(tmp_path)
    assert dm.has_test and stems(dm, "test") == ["06", "07", "08"]
    images, masks = next(iter(dm.test_dataloader()))
    assert images.shape == (2, 1, SIZE, SIZE) and images.dtype == torch.float32
    assert masks.shape == (2, SIZE, SIZE) and masks.dtype == torch.int64


def test_explicit_directories_relative_and_absolute(tmp_path):
    write_pairs(tmp_path / "a", 3)
    write_pairs(tmp_path / "b", 2, start=3)
    dm = folder(
        tmp_path,
        train_images="a/images",
        train_masks="a/masks",
        val_images=str(tmp_path / "b" / "images"),
        val_masks=str(tmp_path / "b" / "masks"),
    )
    assert stems(dm, "train") == ["00", "01", "02"] and stems(dm, "val") == ["03", "04"]
    with pytest.raises(DataNotFoundError, match=f"mask directory {tmp_path / 'masks'} does not exist"):
        folder(tmp_path, train_images="a/images")  # alone: the masks are the layout's masks/
    with pytest.raises(DataError, match="val_images and val_masks must be given together"):
        folder(tmp_path, train_images="a/images", train_masks="a/masks", val_images="b/images")


def test_a_split_folder_with_other_folder_names_is_named_with_the_keys_that_point_elsewhere(tmp_path):
    write_pairs(tmp_path / "training", 3)
    (tmp_path / "test" / "images").mkdir(parents=True)
    (tmp_path / "test" / "1st_manual").mkdir()
    with pytest.raises(DataNotFoundError, match=r"test is read as the test split, but .*test/masks does not exist.*"
                       r"data.test_images=\.\.\. data.test_masks=\.\.\."):  # fmt: skip
        folder(tmp_path, train_images="training/images", train_masks="training/masks")


def test_explicit_stems(tmp_path):
    write_pairs(tmp_path, 6)
    dm = folder(tmp_path, val_stems=["01", "02"], test_stems=["05"])
    assert stems(dm, "val") == ["01", "02"] and stems(dm, "test") == ["05"]
    assert stems(dm, "train") == ["00", "03", "04"]
    with pytest.raises(DataError, match="07"):
        folder(tmp_path, val_stems=["07"])


def test_cache_and_no_cache_give_the_same_batches(tmp_path):
    write_pairs(tmp_path, 5)
    cached, lazy = folder(tmp_path, cache=True), folder(tmp_path, cache=False)
    for a, b in zip(cached.val_dataloader(), lazy.val_dataloader(), strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


# --- mask values -----------------------------------------------------------------------------------
def test_mask_mapping_is_applied(tmp_path):
    write_pairs(tmp_path, 4, values=(0, 255))
    dm = folder(tmp_path, mask_mapping={0: 1, 255: 0}, val_fraction=0.25)
    raw = np.stack([np.asarray(Image.open(pair.mask)) for pair in dm.pairs["val"]])
    masks = all_masks(dm, "val").numpy()
    assert np.array_equal(masks == 0, raw == 255) and np.array_equal(masks == 1, raw == 0)


def test_mapping_keys_from_yaml_strings(tmp_path):
    write_pairs(tmp_path, 4, values=(0, 255))
    dm = folder(tmp_path, mask_mapping={"0": "1", "255": "0"}, val_fraction=0.25)
    assert set(all_masks(dm, "val").unique().tolist()) <= {0, 1}


def test_ignore_index_passes_through(tmp_path):
    write_pairs(tmp_path, 4, values=(0, 1, 255))
    dm = folder(tmp_path, ignore_index=255, val_fraction=0.5)
    assert set(all_masks(dm, "val").unique().tolist()) == {0, 1, 255}
    mapped = folder(tmp_path, ignore_index=255, mask_mapping={0: 0, 1: 1, 255: 255}, val_fraction=0.5)
    assert set(all_masks(mapped, "val").unique().tolist()) == {0, 1, 255}


def test_palette_masks_are_read_as_indices(tmp_path):
    write_pairs(tmp_path, 2)
    for path in (tmp_path / "masks").iterdir():
        mask = Image.fromarray(labels(7, (0, 1, 2))).convert("P")
        mask.putpalette([0, 0, 0, 200, 10, 10, 10, 200, 10] + [0] * (256 * 3 - 9))
        mask.save(path)
        assert Image.open(path).mode == "P"
    dm = folder(tmp_path, num_classes=3, val_fraction=0.5)
    assert set(all_masks(dm, "val").unique().tolist()) == {0, 1, 2}


def test_values_outside_the_classes_name_values_and_file(tmp_path):
    write_pairs(tmp_path, 3, values=(0, 1))
    Image.fromarray(labels(0, (0, 7, 9))).save(tmp_path / "masks" / "01.png")
    with pytest.raises(MaskValueError, match=r"01\.png.*7, 9"):
        folder(tmp_path, val_fraction=0.34).setup()


def test_unmapped_values_name_values_and_file(tmp_path):
    write_pairs(tmp_path, 3, values=(0, 255))
    Image.fromarray(labels(0, (0, 128, 255))).save(tmp_path / "masks" / "02.png")
    dm = folder(tmp_path, mask_mapping={0: 1, 255: 0}, val_fraction=0.34, cache=False)
    with pytest.raises(MaskValueError, match=r"02\.png.*128"):
        for split in ("train", "val"):
            all_masks(dm, split)


def test_mapping_to_a_non_class_is_rejected(tmp_path):
    write_pairs(tmp_path, 3)
    with pytest.raises(DataError, match="mask_mapping"):
        folder(tmp_path, mask_mapping={0: 0, 1: 5})


# --- channels and formats --------------------------------------------------------------------------
def test_gray_images_are_replicated_to_three_channels(tmp_path):
    write_pairs(tmp_path, 2)
    dm = folder(tmp_path, in_channels=3, val_fraction=0.5, mean=[0, 0, 0], std=[1, 1, 1])
    images, _ = next(iter(dm.val_dataloader()))
    assert images.shape == (1, 3, SIZE, SIZE)
    assert torch.equal(images[:, 0], images[:, 1]) and torch.equal(images[:, 0], images[:, 2])
    stem = stems(dm, "val")[0]
    expected = torch.from_numpy(np.array(Image.open(tmp_path / "images" / f"{stem}.png"))).float() / 255
    assert torch.allclose(images[0, 0], expected)


def test_rgb_images_become_luminance_for_one_channel(tmp_path):
    write_pairs(tmp_path, 2)
    rgb = np.zeros((SIZE, SIZE, 3), np.uint8)
    rgb[..., 0] = 255  # pure red -> 0.299 * 255 = 76
    for i in range(2):
        Image.fromarray(rgb).save(tmp_path / "images" / f"{i:02d}.png")
    dm = folder(tmp_path, in_channels=1, val_fraction=0.5, mean=[0], std=[1])
    images, _ = next(iter(dm.val_dataloader()))
    assert images.shape == (1, 1, SIZE, SIZE)
    assert torch.allclose(images, torch.full_like(images, 76 / 255))


def test_jpeg_and_tiff_images_are_read(tmp_path):
    write_pairs(tmp_path, 2, ext=".jpg")
    write_pairs(tmp_path, 1, ext=".tif", start=2)
    tifffile.imwrite(tmp_path / "images" / "03.tiff", (gray(3).astype(np.uint16) * 257))
    Image.fromarray(labels(3)).save(tmp_path / "masks" / "03.png")
    dm = folder(tmp_path, val_fraction=0.25, mean=[0], std=[1])
    assert sorted(pair.image.suffix for pair in dm.pairs["train"] + dm.pairs["val"]) == [
        ".jpg",
        ".jpg",
        ".tif",
        ".tiff",
    ]
    dm.setup()
    images = torch.cat([x for split in ("train", "val") for x, _ in dm.dataloader(split)])
    assert images.shape == (4, 1, SIZE, SIZE) and 0 <= images.min() and images.max() <= 1


def test_sixteen_bit_tiff_is_scaled_to_unit_range(tmp_path):
    write_pairs(tmp_path, 2)
    tifffile.imwrite(tmp_path / "images" / "00.tif", np.full((SIZE, SIZE), 65535, np.uint16))
    (tmp_path / "images" / "00.png").unlink()
    dm = folder(tmp_path, val_stems=["00"], val_fraction=0, mean=[0], std=[1])
    images, _ = next(iter(dm.val_dataloader()))
    assert torch.allclose(images, torch.ones_like(images))


def test_image_size_resizes_varying_sizes_so_batches_collate(tmp_path):
    write_pairs(tmp_path, 4)
    Image.fromarray(gray(0, (12, 20))).save(tmp_path / "images" / "00.png")
    Image.fromarray(labels(0, (0, 1), (12, 20))).save(tmp_path / "masks" / "00.png")
    dm = folder(tmp_path, image_size=[6, 10], val_fraction=0.5, batch_size=4)
    images, masks = next(iter(dm.train_dataloader()))
    assert images.shape[-2:] == (6, 10) and masks.shape[-2:] == (6, 10)
    assert set(masks.unique().tolist()) <= {0, 1}


# --- errors ----------------------------------------------------------------------------------------
def test_missing_root(tmp_path):
    with pytest.raises(DataNotFoundError, match="nowhere") as error:
        folder(tmp_path / "nowhere")
    assert isinstance(error.value, FileNotFoundError) and isinstance(error.value, ValueError)


def test_unknown_layout(tmp_path):
    (tmp_path / "stuff").mkdir()
    with pytest.raises(DataNotFoundError, match="images/ and masks/"):
        folder(tmp_path)


def test_no_images_found(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    (tmp_path / "images" / "notes.txt").write_text("not an image")
    with pytest.raises(DataNotFoundError, match=r"no image files .*images"):
        folder(tmp_path)


def test_missing_masks_dir(tmp_path):
    write_pairs(tmp_path, 2)
    for mask in (tmp_path / "masks").iterdir():
        mask.unlink()
    (tmp_path / "masks").rmdir()
    with pytest.raises(DataNotFoundError, match="masks"):
        folder(tmp_path)


def test_images_without_masks_are_listed(tmp_path):
    write_pairs(tmp_path, 15)
    for i in range(12):
        (tmp_path / "masks" / f"{i:02d}.png").unlink()
    with pytest.raises(PairingError) as error:
        folder(tmp_path)
    message = str(error.value)
    assert "12 images without a mask" in message and "00.png" in message and "09.png" in message
    assert "10.png" not in message and "and 2 more" in message


def test_masks_without_images_are_listed(tmp_path):
    write_pairs(tmp_path, 3)
    Image.fromarray(labels(5)).save(tmp_path / "masks" / "extra.png")
    with pytest.raises(PairingError, match=r"1 masks without an image.*extra\.png"):
        folder(tmp_path)


def test_image_mask_size_mismatch_names_files(tmp_path):
    write_pairs(tmp_path, 3)
    Image.fromarray(labels(1, (0, 1), (SIZE, SIZE + 2))).save(tmp_path / "masks" / "01.png")
    with pytest.raises(SizeMismatchError, match=r"01\.png.*8x8.*01\.png.*10x8"):
        folder(tmp_path, val_fraction=0.34).setup()


def test_truncated_image_names_the_file(tmp_path):
    write_pairs(tmp_path, 3)
    path = tmp_path / "images" / "02.png"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ImageReadError, match=r"02\.png"):
        folder(tmp_path, val_fraction=0.34).setup()


def test_colour_mask_is_rejected(tmp_path):
    write_pairs(tmp_path, 3)
    colour = np.zeros((SIZE, SIZE, 3), np.uint8)
    colour[..., 0] = 1
    Image.fromarray(colour).save(tmp_path / "masks" / "00.png")
    with pytest.raises(ImageReadError, match=r"00\.png.*channels"):
        folder(tmp_path, val_fraction=0.34).setup()


def test_no_validation_split(tmp_path):
    write_pairs(tmp_path, 3)
    with pytest.raises(DataError, match="no validation data"):
        folder(tmp_path, val_fraction=0)


@pytest.mark.parametrize(
    "kwargs",
    [{"num_classes": 2, "class_names": ["a"]}, {"ignore_index": 1}, {"in_channels": 3, "mean": [0.5]}],
)
def test_inconsistent_description(tmp_path, kwargs):
    write_pairs(tmp_path, 3)
    with pytest.raises(DataError):
        folder(tmp_path, **kwargs)


def test_default_class_names(tmp_path):
    write_pairs(tmp_path, 3)
    dm = folder(tmp_path, num_classes=3)
    assert dm.class_names == ["class_0", "class_1", "class_2"]
    assert dm.mean == (0.5,) and dm.std == (0.25,)


def test_two_images_with_one_stem_are_ambiguous(tmp_path):
    write_pairs(tmp_path, 3)
    Image.fromarray(gray(0)).save(tmp_path / "images" / "00.jpg")
    with pytest.raises(DataError, match=r"00\.jpg.*00\.png|00\.png.*00\.jpg"):
        folder(tmp_path)
    dm = folder(tmp_path, extensions=["png"])  # restricting the extensions resolves it
    assert len(dm.pairs["train"]) + len(dm.pairs["val"]) == 3
