"""Images and masks read as a viewer shows them: EXIF / TIFF orientation, float and 16-bit intensities,
files holding several images, and masks saved in a lossy format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import yaml
from PIL import Image
from test_export_predict import save_checkpoint

from unet.data import FolderDataModule, ImageReadError, MaskValueError
from unet.data.io import ORIENTATION_TAG, image_size, lossy_format, read_image, read_mask
from unet.inference import load_predictor, predict_files
from unet.inference.files import collect_inputs

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "data"

# A 40 wide, 20 tall picture stored with orientation 6 ("rotate 90 degrees clockwise to display"),
# as phones save photos taken upright: viewers show it 20 wide and 40 tall.
STORED = (20, 40)  # (H, W) as stored
DISPLAYED = (40, 20)  # (H, W) as displayed


def with_orientation(array: np.ndarray, path: Path, orientation: int = 6, **options) -> Path:
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[ORIENTATION_TAG] = orientation
    image.save(path, exif=exif, **options)
    return path


def stored_gray() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, STORED, dtype=np.uint8)


def stored_labels() -> np.ndarray:
    labels = np.zeros(STORED, np.uint8)
    labels[:, : STORED[1] // 4] = 1  # a band on the stored left: on the displayed top
    return labels


def folder(root: Path, **kwargs) -> FolderDataModule:
    options = {"num_classes": 2, "in_channels": 1, "batch_size": 1, "num_workers": 0, "mean": [0], "std": [1]}
    return FolderDataModule(root=str(root), **{**options, **kwargs})


def make_dirs(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    return root


# --- orientation ----------------------------------------------------------------------------------
def test_exif_orientation_turns_png_images_and_masks_upright(tmp_path):
    gray, labels = stored_gray(), stored_labels()
    image = read_image(with_orientation(gray, tmp_path / "image.png"), 1)
    mask = read_mask(with_orientation(labels, tmp_path / "mask.png"))
    assert image.shape == (*DISPLAYED, 1) and np.array_equal(image[..., 0], np.rot90(gray, -1))
    assert mask.shape == DISPLAYED and np.array_equal(mask, np.rot90(labels, -1))
    assert mask[0].all() and not mask[-1].any()  # the band is on top, as a viewer shows it
    assert image_size(tmp_path / "image.png") == DISPLAYED  # the header-only size agrees


def test_training_samples_of_a_rotated_jpeg_photo_are_upright(tmp_path):
    root = make_dirs(tmp_path / "d")
    for stem in ("a", "b"):
        with_orientation(stored_gray(), root / "images" / f"{stem}.jpg", quality=95)
        with_orientation(stored_labels(), root / "masks" / f"{stem}.png")
    dm = folder(root, val_stems=["b"], val_fraction=0.0)
    dm.setup()
    images, masks = next(iter(dm.train_dataloader()))
    assert images.shape == (1, 1, *DISPLAYED) and masks.shape == (1, *DISPLAYED)
    assert masks[0, 0].all() and not masks[0, -1].any()


def test_tiff_orientation_tag_is_applied(tmp_path):
    gray = stored_gray()
    path = tmp_path / "image.tif"
    tifffile.imwrite(path, gray, extratags=[(ORIENTATION_TAG, "H", 1, 6, False)])
    assert np.array_equal(read_image(path, 1)[..., 0], np.rot90(gray, -1))
    assert image_size(path) == DISPLAYED


def test_predicted_masks_have_the_displayed_size(tmp_path):
    checkpoint = save_checkpoint(tmp_path / "run" / "best.ckpt", "bilinear")
    inputs = make_dirs(tmp_path / "in") / "images"
    with_orientation(np.stack([stored_gray()] * 3, -1), inputs / "photo.jpg")
    with_orientation(stored_gray(), inputs / "scan.png")
    predict_files(load_predictor(checkpoint), collect_inputs(str(inputs)), tmp_path / "out", tile_size=64)
    for stem in ("photo", "scan"):
        with Image.open(tmp_path / "out" / f"{stem}_mask.png") as mask:
            assert mask.size == DISPLAYED[::-1]  # PIL sizes are (W, H)


# --- intensities ----------------------------------------------------------------------------------
def test_float_images_in_unit_range_are_used_as_they_are(tmp_path):
    values = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    tifffile.imwrite(tmp_path / "f.tif", values)
    assert np.array_equal(read_image(tmp_path / "f.tif", 1)[..., 0], values)


@pytest.mark.parametrize(
    ("values", "named"),
    [
        (np.linspace(-3, 840.5, 64), r"f\.tif holds values in \[-3, 840\.5\].*intensities in \[0, 1\]"),
        (np.where(np.arange(64) == 5, np.nan, 0.5), r"f\.tif holds 1 NaN and 0 infinite values"),
        (np.where(np.arange(64) < 2, np.inf, 0.5), r"f\.tif holds 0 NaN and 2 infinite values"),
    ],
)
def test_float_images_out_of_range_or_not_finite_are_refused(tmp_path, values, named):
    tifffile.imwrite(tmp_path / "f.tif", values.astype(np.float32).reshape(8, 8))
    with pytest.raises(ImageReadError, match=named):
        read_image(tmp_path / "f.tif", 1)


@pytest.mark.parametrize("fmt", ["png", "tif"])
def test_sixteen_bit_images_keep_their_scale(tmp_path, fmt):
    values = (np.arange(64, dtype=np.uint16) * 1000).reshape(8, 8)
    path = tmp_path / f"i.{fmt}"
    Image.fromarray(values).save(path) if fmt == "png" else tifffile.imwrite(path, values)
    np.testing.assert_allclose(read_image(path, 1)[..., 0], values / 65535, atol=1e-6)


# --- several images in one file -------------------------------------------------------------------
def test_a_multi_page_tiff_is_refused_with_its_page_count(tmp_path):
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((12, 8, 8), np.uint8))
    with pytest.raises(ImageReadError, match=r"stack\.tif has 12 pages; unet reads single-page images"):
        read_image(tmp_path / "stack.tif", 1)
    with pytest.raises(ImageReadError, match=r"mask .*stack\.tif has 12 pages"):
        read_mask(tmp_path / "stack.tif")


def test_an_animated_gif_is_refused_with_its_frame_count(tmp_path):
    frames = [Image.fromarray(np.full((8, 8), 60 * i, np.uint8)) for i in range(3)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    with pytest.raises(ImageReadError, match=r"a\.gif has 3 frames; unet reads single-frame images"):
        read_image(tmp_path / "a.gif", 1)


# --- lossy masks ----------------------------------------------------------------------------------
def write_jpeg_binary_masks(root: Path) -> int:
    """Two gray images and 0/255 disc masks saved as JPEG; returns the pixels of ``0.jpg`` that are
    neither 0 nor 255 once compressed."""
    make_dirs(root)
    disc = np.hypot(*(np.indices((32, 32)) - 16)) < 9
    for stem in ("0", "1"):
        Image.fromarray(np.full((32, 32), 99, np.uint8)).save(root / "images" / f"{stem}.png")
        Image.fromarray(disc.astype(np.uint8) * 255).save(root / "masks" / f"{stem}.jpg", quality=75)
    with Image.open(root / "masks" / "0.jpg") as mask:
        values = np.asarray(mask)
    return int(((values != 0) & (values != 255)).sum())


def test_jpeg_masks_are_refused_counting_the_values_that_are_not_classes(tmp_path):
    blended = write_jpeg_binary_masks(tmp_path)
    assert blended > 0
    dm = folder(tmp_path, mask_mapping={0: 0, 255: 1}, val_stems=["0"], val_fraction=0.0)
    with pytest.raises(
        MaskValueError,
        match=rf"mask .*[01]\.jpg is saved as JPEG, a lossy format .*: {blended} of its 1024 pixels hold .*"
        r"data\.mask_threshold=T .*data\.allow_lossy_masks=true",
    ):
        dm.setup()


def test_jpeg_masks_whose_values_are_all_classes_are_refused_until_allowed(tmp_path):
    make_dirs(tmp_path)
    for stem in ("0", "1"):
        Image.fromarray(np.full((16, 16), 50, np.uint8)).save(tmp_path / "images" / f"{stem}.png")
        Image.fromarray(np.ones((16, 16), np.uint8)).save(tmp_path / "masks" / f"{stem}.jpg")
    options = {"val_stems": ["0"], "val_fraction": 0.0}
    with pytest.raises(MaskValueError, match=r"all its values are classes, but edge pixels"):
        folder(tmp_path, **options).setup()
    dm = folder(tmp_path, allow_lossy_masks=True, **options)
    dm.setup()
    assert torch.equal(next(iter(dm.val_dataloader()))[1], torch.ones(1, 16, 16, dtype=torch.int64))


def test_lossy_webp_is_told_from_lossless(tmp_path):
    mask = Image.fromarray(np.tile(np.arange(16, dtype=np.uint8) * 16, (16, 1)))
    mask.save(tmp_path / "lossy.webp", lossless=False)
    mask.save(tmp_path / "lossless.webp", lossless=True)
    assert lossy_format(tmp_path / "lossy.webp") == "lossy WebP"
    assert lossy_format(tmp_path / "lossless.webp") is None
    assert lossy_format(tmp_path / "m.JPG") == "JPEG" and lossy_format(tmp_path / "m.png") is None


@pytest.mark.parametrize("name", ["folder", "isbi2012", "camvid"])
def test_data_configs_reading_mask_files_refuse_lossy_masks_by_default(name):
    assert yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())["allow_lossy_masks"] is False
