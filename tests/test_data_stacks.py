"""Multi-page TIFF stacks: pages pair by index, splits are contiguous blocks of pages, page-count
mismatches are refused with both counts, training runs on a stack and predicting a stack writes one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from conftest import TINY_RUN
from PIL import Image
from test_export_predict import save_checkpoint

from unet.data import FolderDataModule
from unet.data.errors import DataError, ImageReadError, PairingError
from unet.data.io import Page, image_size, read_image, read_mask
from unet.inference import load_predictor, predict_files
from unet.training.run import train

SIZE = (16, 16)


def write_stacks(images: Path, masks: Path, pages: int = 8, mask_pages: int | None = None) -> np.ndarray:
    """An image stack whose page ``k`` is filled with ``k`` (and a bright square), and a mask stack whose
    page ``k`` marks ``k`` columns as class 1: a page paired with another's mask is told by its values."""
    stack = np.zeros((pages, *SIZE), np.uint8)
    for k in range(pages):
        stack[k] = k
        stack[k, 4:8, 4:8] = 200
    labels = np.zeros((pages if mask_pages is None else mask_pages, *SIZE), np.uint8)
    for k in range(len(labels)):
        labels[k, :, :k] = 1
    images.parent.mkdir(parents=True, exist_ok=True)
    masks.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(images, stack, photometric="minisblack")
    tifffile.imwrite(masks, labels, photometric="minisblack")
    return stack


def stack_module(root: Path, **options) -> FolderDataModule:
    defaults = {
        "num_classes": 2, "in_channels": 1, "batch_size": 2, "num_workers": 0, "mean": [0], "std": [1],
        "train_images": "training.tif", "train_masks": "training_groundtruth.tif",
    }  # fmt: skip
    return FolderDataModule(root=str(root), **{**defaults, **options})


def test_a_page_of_a_stack_is_read_on_its_own(tmp_path):
    stack = write_stacks(tmp_path / "i.tif", tmp_path / "m.tif", pages=3)
    assert np.array_equal(read_image(Page(tmp_path / "i.tif", 2), 1)[..., 0], stack[2])
    assert np.array_equal(read_mask(Page(tmp_path / "m.tif", 1)), np.pad(np.ones((16, 1)), ((0, 0), (0, 15))))
    assert image_size(Page(tmp_path / "i.tif", 2)) == SIZE
    with pytest.raises(ImageReadError, match=r"i\.tif has 3 pages, no page 3"):
        read_image(Page(tmp_path / "i.tif", 3), 1)


def test_stack_files_pair_page_by_page_and_split_into_contiguous_blocks(tmp_path):
    write_stacks(tmp_path / "training.tif", tmp_path / "training_groundtruth.tif", pages=8)
    dm = stack_module(tmp_path, val_fraction=0.25, test_fraction=0.125)
    pages = {split: [pair.image.index for pair in pairs] for split, pairs in dm.pairs.items()}
    assert pages == {"train": [0, 1, 2, 3, 4], "val": [5, 6], "test": [7]}  # train, then val, then test
    for split in ("train", "val", "test"):
        for (image, mask, _), (pixels, labels) in zip(dm.pairs[split], dm.dataset(split).source, strict=True):
            assert image.index == mask.index
            assert pixels[0, 0, 0] == image.index and labels.sum() == 16 * mask.index  # page k with mask k
    assert dm.dataset("val").source.names == [f"{tmp_path / 'training.tif'}/page{k}" for k in (5, 6)]


def test_same_stem_stacks_in_images_and_masks_folders_are_a_data_set(tmp_path):
    write_stacks(tmp_path / "images" / "vol.tif", tmp_path / "masks" / "vol.tif", pages=5)
    dm = stack_module(tmp_path, train_images=None, train_masks=None)  # the default images/ + masks/ layout
    assert [pair.image.index for pair in dm.pairs["train"]] == [0, 1, 2, 3]
    assert [pair.image.index for pair in dm.pairs["val"]] == [4]  # val_fraction 0.2 of 5 pages: the last one


@pytest.mark.parametrize(("pages", "mask_pages"), [(6, 4), (6, 1)])
def test_a_page_count_mismatch_is_refused_with_both_counts(tmp_path, pages, mask_pages):
    write_stacks(tmp_path / "training.tif", tmp_path / "training_groundtruth.tif", pages, mask_pages)
    with pytest.raises(
        PairingError,
        match=rf"training\.tif has {pages} pages but its mask .*groundtruth\.tif has {mask_pages}",
    ):
        stack_module(tmp_path)


def test_stems_cannot_pick_slices(tmp_path):
    write_stacks(tmp_path / "training.tif", tmp_path / "training_groundtruth.tif", pages=4)
    with pytest.raises(DataError, match="val_stems cannot pick slices of a stack.*val_fraction"):
        stack_module(tmp_path, val_stems=["training"])


def test_a_few_steps_train_on_a_stack(compose_config, tmp_path):
    write_stacks(tmp_path / "data" / "training.tif", tmp_path / "data" / "training_groundtruth.tif", pages=6)
    tiny_model = [o for o in TINY_RUN if not o.startswith("data.") and not o.startswith("trainer.max_epochs")]
    cfg = compose_config(
        "train",
        "data=folder", f"data.root={tmp_path / 'data'}", "++data.train_images=training.tif",
        "++data.train_masks=training_groundtruth.tif", "data.in_channels=1", "data.num_workers=0",
        "data.batch_size=2", "data.epoch_size=null", "data.mean=[0.1]", "data.std=[0.2]",
        "data/augment=microscopy", "augment.crop=16", "trainer.max_epochs=1", *tiny_model,
        output_dir=tmp_path / "run",
    )  # fmt: skip
    metrics = train(cfg)
    assert 0 <= metrics["val/pixel_acc"] <= 1
    scored = (tmp_path / "run" / "per_image.csv").read_text()
    # The validation block is the last page of 6, named within its stack as a file within its folder.
    assert [line.split(",")[:2] for line in scored.splitlines()[1:]] == [["val", "page5"]]


def test_predicting_a_stack_writes_a_stack_of_the_same_pages(tmp_path):
    checkpoint = save_checkpoint(tmp_path / "run" / "best.ckpt", "bilinear")
    stack = write_stacks(tmp_path / "in" / "volume.tif", tmp_path / "unused.tif", pages=5)
    predictor = load_predictor(checkpoint)
    summary = predict_files(
        predictor, [tmp_path / "in" / "volume.tif"], tmp_path / "out", tile_size=64, save_probabilities=True
    )
    assert summary["images"] == 1 and summary["megapixels"] == 5 * 16 * 16 / 1e6
    masks = tifffile.imread(tmp_path / "out" / "volume_mask.tif")
    overlays = tifffile.imread(tmp_path / "out" / "volume_overlay.tif")
    probabilities = np.load(tmp_path / "out" / "volume_probs.npy")
    assert (
        masks.shape == (5, *SIZE) and overlays.shape == (5, *SIZE, 3) and probabilities.shape == (5, 3, *SIZE)
    )
    for k in (0, 3):  # each page predicted on its own, in the stack's order
        tifffile.imwrite(tmp_path / f"page{k}.tif", stack[k])
        predict_files(predictor, [tmp_path / f"page{k}.tif"], tmp_path / f"one{k}", tile_size=64)
        single = np.asarray(Image.open(tmp_path / f"one{k}" / f"page{k}_mask.png"))
        assert np.array_equal(masks[k], single)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-2)


def test_three_gray_pages_for_a_three_channel_model_are_refused_as_ambiguous(tmp_path):
    checkpoint = save_checkpoint(tmp_path / "run" / "best.ckpt", "bilinear", in_channels=3)
    write_stacks(tmp_path / "three.tif", tmp_path / "unused.tif", pages=3)
    with pytest.raises(ImageReadError, match=r"three\.tif has 3 pages for a model of 3 channels"):
        predict_files(load_predictor(checkpoint), [tmp_path / "three.tif"], tmp_path / "out", tile_size=64)
