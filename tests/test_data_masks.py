"""Masks as people save them: soft-edged binary masks (mask_threshold), colour-coded masks (mask_palette),
the advice of unet-check-data, and the alpha / 16-bit / palette-mode formats of images and masks."""

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import yaml
from conftest import run_in_process
from PIL import Image

from unet.data import DataError, FolderDataModule, ImageReadError, MaskValueError
from unet.data.inspect import check_data

H, W = 48, 64

# Colour-coded classes as a labelling tool exports them.
BACKGROUND, ROAD, CAR, VOID = (0, 0, 0), (128, 64, 128), (64, 0, 128), (255, 255, 255)


def folder(root: Path, **kwargs) -> FolderDataModule:
    options = {"num_classes": 2, "in_channels": 1, "batch_size": 2, "num_workers": 0, "val_fraction": 0.5}
    return FolderDataModule(root=str(root), **{**options, **kwargs})


def all_masks(dm: FolderDataModule, split: str = "val") -> np.ndarray:
    dm.setup()
    return torch.cat([masks for _, masks in dm.dataloader(split)]).numpy()


def write_images(root: Path, count: int) -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(np.full((H, W), 10 * i, np.uint8)).save(root / "images" / f"{i}.png")


def soft_disc(seed: int) -> np.ndarray:
    """A 0..255 disc with a linear anti-aliased rim, as drawing tools and resizing leave binary masks."""
    centre = np.random.default_rng(seed).uniform([H / 3, W / 3], [2 * H / 3, 2 * W / 3])
    distance = np.hypot(*(np.indices((H, W)) - centre[:, None, None]))
    return (255 * np.clip(H / 4 - distance, 0, 1)).round().astype(np.uint8)


def write_soft_masks(root: Path, count: int = 2) -> list[np.ndarray]:
    write_images(root, count)
    masks = [soft_disc(i) for i in range(count)]
    for i, mask in enumerate(masks):
        Image.fromarray(mask).save(root / "masks" / f"{i}.png")
    return masks


def colour_labels(seed: int) -> np.ndarray:
    """Class indices 0 (background), 1 (road), 2 (car), 3 (void) with every class present."""
    labels = np.random.default_rng(seed).choice(4, (H, W), p=[0.5, 0.25, 0.15, 0.1])
    labels.flat[:4] = [0, 1, 2, 3]
    return labels


def write_colour_masks(root: Path, count: int = 2, mode: str = "RGB") -> list[np.ndarray]:
    write_images(root, count)
    colours = np.array([BACKGROUND, ROAD, CAR, VOID], np.uint8)
    labels = [colour_labels(i) for i in range(count)]
    for i, label in enumerate(labels):
        Image.fromarray(colours[label]).convert(mode).save(root / "masks" / f"{i}.png")
    return labels


def val_labels(dm: FolderDataModule, labels: list[np.ndarray]) -> np.ndarray:
    return np.stack([labels[int(pair.mask.stem)] for pair in dm.pairs["val"]])


# --- mask_threshold -------------------------------------------------------------------------------
def test_threshold_turns_a_soft_mask_into_exactly_two_classes(tmp_path):
    masks = write_soft_masks(tmp_path)
    assert len(np.unique(masks[0])) > 3  # really anti-aliased
    dm = folder(tmp_path, mask_threshold=127)
    expected = np.stack([masks[int(pair.mask.stem)] > 127 for pair in dm.pairs["val"]])
    assert np.array_equal(all_masks(dm), expected.astype(np.int64))


def test_threshold_on_jpeg_and_16_bit_masks(tmp_path):
    write_images(tmp_path, 2)
    binary = [soft_disc(i) > 127 for i in range(2)]
    Image.fromarray(binary[0].astype(np.uint8) * 255).save(tmp_path / "masks" / "0.jpg", quality=70)
    tifffile.imwrite(tmp_path / "masks" / "1.tif", binary[1].astype(np.uint16) * 65535)
    dm = folder(tmp_path, mask_threshold=127, val_fraction=0.0, val_stems=["0"])
    assert np.array_equal(all_masks(dm, "val")[0], binary[0])  # JPEG ringing stays on its side
    assert np.array_equal(all_masks(dm, "train")[0], binary[1])


def test_soft_mask_without_threshold_points_to_it(tmp_path):
    write_soft_masks(tmp_path)
    with pytest.raises(MaskValueError, match=r"[01]\.png holds values .*mask_threshold=127"):
        all_masks(folder(tmp_path, val_stems=["0"], val_fraction=0.0))
    with pytest.raises(MaskValueError, match=r"mask_mapping keys \[0, 255\].*mask_threshold=127"):
        all_masks(folder(tmp_path, mask_mapping={0: 0, 255: 1}, val_stems=["0"], val_fraction=0.0))


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"mask_threshold": 127, "num_classes": 3}, r"mask_threshold .*num_classes is 3"),
        ({"mask_threshold": 127, "mask_mapping": {0: 0}}, r"mask_mapping and mask_threshold"),
        ({"mask_palette": {"0,0,0": 0}, "mask_mapping": {0: 0}}, r"mask_mapping and mask_palette"),
        ({"mask_palette": {"0,0,0": 5}}, r"mask_palette maps 0,0,0 to 5"),
        ({"mask_palette": {"0,0": 0}}, r"mask_palette colour '0,0'"),
        ({"mask_palette": {"0,0,0": "ignore"}}, r"ignore but ignore_index is null"),
        ({"mask_palette": "missing.yaml"}, r"mask_palette file missing\.yaml does not exist"),
    ],
)
def test_bad_mask_options_are_refused(tmp_path, kwargs, named):
    write_soft_masks(tmp_path)
    with pytest.raises(DataError, match=named):
        folder(tmp_path, **kwargs)


# --- mask_palette ---------------------------------------------------------------------------------
INLINE_PALETTES = {
    "strings": {"0,0,0": 0, "128, 64, 128": 1, "#400080": 2, "255,255,255": "ignore"},
    "rows": [[0, 0, 0, 0], [128, 64, 128, 1], [64, 0, 128, 2], [255, 255, 255, "ignore"]],
    "tuples": {BACKGROUND: 0, ROAD: 1, CAR: 2, VOID: 255},
}


@pytest.mark.parametrize("form", sorted(INLINE_PALETTES))
def test_inline_palette_maps_every_colour(tmp_path, form):
    labels = write_colour_masks(tmp_path)
    dm = folder(tmp_path, num_classes=3, ignore_index=255, mask_palette=INLINE_PALETTES[form])
    expected = np.where(val_labels(dm, labels) == 3, 255, val_labels(dm, labels))
    assert np.array_equal(all_masks(dm), expected)


def test_palette_file_maps_every_colour_of_rgba_masks(tmp_path):
    labels = write_colour_masks(tmp_path, mode="RGBA")  # alpha is dropped
    palette = tmp_path / "palette.yaml"
    palette.write_text('# road scenes\n"0,0,0": 0\n"128,64,128": 1\n"64,0,128": 1\n255,255,255: ignore\n')
    dm = folder(tmp_path, ignore_index=255, mask_palette=str(palette))
    merged = np.select([val_labels(dm, labels) == 3, val_labels(dm, labels) >= 1], [255, 1], 0)
    assert np.array_equal(all_masks(dm), merged)


def test_unknown_colour_is_named_with_its_pixel_count(tmp_path):
    labels = write_colour_masks(tmp_path)
    colours = np.array([BACKGROUND, ROAD, CAR, VOID], np.uint8)[labels[1]]
    colours[:2, :3] = (9, 9, 9)
    Image.fromarray(colours).save(tmp_path / "masks" / "1.png")
    palette = {BACKGROUND: 0, ROAD: 1, CAR: 1, VOID: 1}
    with pytest.raises(MaskValueError, match=r"1\.png holds colours not in mask_palette: 9,9,9 \(6 px\)"):
        all_masks(folder(tmp_path, mask_palette=palette, val_stems=["1"], val_fraction=0.0))


def test_colour_mask_without_palette_points_to_it(tmp_path):
    write_colour_masks(tmp_path)
    with pytest.raises(ImageReadError, match=r"[01]\.png is a colour image.*mask_palette"):
        all_masks(folder(tmp_path, num_classes=4))


# --- unet-check-data ------------------------------------------------------------------------------
def test_check_data_writes_a_palette_that_makes_colour_masks_pass(tmp_path, capsys):
    write_colour_masks(tmp_path / "d", count=4)
    with pytest.raises(MaskValueError, match=r"4 colours.*data\.mask_palette=.*palette\.yaml"):
        check_data(folder(tmp_path / "d", num_classes=4), tmp_path / "run")
    out = capsys.readouterr().out
    assert "128,64,128" in out and "pixels" in out
    palette = yaml.safe_load((tmp_path / "run" / "palette.yaml").read_text())
    assert list(palette) == ["0,0,0", "128,64,128", "64,0,128", "255,255,255"]  # most frequent first
    assert list(palette.values()) == [0, 1, 2, 3]
    summary = check_data(
        folder(tmp_path / "d", num_classes=4, mask_palette=str(tmp_path / "run" / "palette.yaml")),
        tmp_path / "run2",
    )
    assert set(summary) == {"train", "val"} and summary["train"]["class_pixel_fraction"]["class_3"] > 0


def test_check_data_suggests_a_threshold_for_soft_binary_masks(tmp_path):
    write_images(tmp_path, 2)
    for i in range(2):  # mostly 0 and 255, a few rim values
        mask = np.where(soft_disc(i) > 127, 255, 0).astype(np.uint8)
        mask[0, :3] = (60, 128, 200)
        Image.fromarray(mask).save(tmp_path / "masks" / f"{i}.png")
    with pytest.raises(MaskValueError, match=r"5 values .* at 0 and 255.*data\.mask_threshold=127"):
        check_data(folder(tmp_path), tmp_path / "run")


def test_check_data_cli_round_trip_with_a_palette(tmp_path, monkeypatch, capsys):
    """unet-check-data's end-to-end run, both commands as the console script's ``main`` (in this process:
    a process of its own would only add the seconds of importing torch)."""
    write_colour_masks(tmp_path / "d", count=4)
    args = ["unet-check-data", "data=folder", f"data.root={tmp_path / 'd'}", "data.num_classes=4"]
    refused = run_in_process(
        *args, f"hydra.run.dir={tmp_path / 'a'}", cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys
    )
    palette = tmp_path / "a" / "palette.yaml"
    assert refused.returncode == 2 and f"data.mask_palette={palette}" in refused.stderr
    assert refused.stderr.strip().startswith("error:") and len(refused.stderr.strip().splitlines()) == 1
    passed = run_in_process(
        *args, f"data.mask_palette={palette}", f"hydra.run.dir={tmp_path / 'b'}",
        cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert passed.returncode == 0, passed.stderr
    assert "all samples read and checked" in passed.stdout


# --- formats that keep working --------------------------------------------------------------------
def save(array: np.ndarray, path: Path, kind: str) -> Path:
    """Write a (H, W) uint8 array as ``kind``: gray+alpha, RGBA, 16-bit PNG/TIFF or palette-mode PNG."""
    if kind == "tiff16":
        tifffile.imwrite(path.with_suffix(".tif"), array.astype(np.uint16) * 257)
        return path.with_suffix(".tif")
    if kind == "png16":
        Image.fromarray(array.astype(np.uint16) * 257).save(path)
    elif kind == "palette":
        image = Image.fromarray(array, "L").convert("P")
        image.putpalette([c for i in range(256) for c in (i, 255 - i, (7 * i) % 256)])
        image.save(path)
    else:
        Image.fromarray(array, "L").convert(kind).save(path)
    return path


@pytest.mark.parametrize("kind", ["LA", "RGBA", "png16", "tiff16", "palette"])
def test_images_and_masks_in_every_format_keep_working(tmp_path, kind):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    labels = [np.random.default_rng(i).choice(3, (H, W)).astype(np.uint8) for i in range(2)]
    for i, label in enumerate(labels):
        save(np.full((H, W), 40 * (i + 1), np.uint8), tmp_path / "images" / f"{i}.png", kind)
        save(
            label if kind in ("LA", "RGBA", "palette") else label // 2 * 2,
            tmp_path / "masks" / f"{i}.png",
            kind,
        )
    mapping = None if kind in ("LA", "RGBA", "palette") else {0: 0, 514: 2}  # 16-bit: v * 257
    dm = folder(
        tmp_path, num_classes=3, in_channels=3, mask_mapping=mapping, val_stems=["1"], val_fraction=0.0
    )
    images, masks = next(iter(dm.dataloader("val")))
    expected = labels[1] if mapping is None else labels[1] // 2 * 2
    assert images.shape == (1, 3, H, W) and np.array_equal(masks[0].numpy(), expected)
    if kind != "palette":  # gray replicated, alpha dropped (palette images read as their colours)
        assert torch.allclose(images[0], images[0, :1].expand(3, -1, -1))
