"""The data fingerprint (``unet.data.fingerprint``): exact numbers on a hand-made folder, one reading of
every training sample, the JSON cache keyed by the files (hit, invalidated, corrupt), and unet-check-data."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import unet.data.fingerprint as fingerprint_module
import unet.data.sources as sources_module
from unet.data import FolderDataModule
from unet.data.fingerprint import Fingerprint, compute_fingerprint, fingerprint, fingerprint_key
from unet.data.inspect import check_data
from unet.data.statistics import split_class_counts
from unet.data.synthetic import SyntheticDataModule

IGNORE = 255

# Training images (gray uint8) and masks: classes 0, 1, 2 and IGNORE, components known by construction.
IMAGES = [
    (np.arange(24).reshape(4, 6) * 10).astype(np.uint8),
    np.full((4, 6), 200, np.uint8),
    (np.arange(48).reshape(6, 8) * 5).astype(np.uint8),
]
MASKS = [
    np.array(
        [[0, 0, 1, 1, 0, 0], [0, 0, 1, 1, 0, 2], [0, 0, 0, 0, 0, 2], [IGNORE, IGNORE, 0, 0, 0, 0]], np.uint8
    ),  # class 0: one area 16; class 1: one area 4; class 2: one area 2; 2 ignored
    np.array([[1, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0], [0, 0, 2, 0, 0, 0], [0, 0, 0, 0, 0, 1]], np.uint8),
    # class 0: one area 20; class 1: three of area 1; class 2: one area 1
    np.array(
        [
            [1, 0, 0, 0, 0, 0, 0, 0],
            [0, 1, 0, 0, 0, 0, 0, 0],  # diagonal neighbours: two components (4-connectivity)
            [0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 2, 2, 2, 0, 0],
            [0, 0, 0, 2, 2, 2, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0],
        ],
        np.uint8,
    ),  # class 0: one area 40; class 1: two of area 1; class 2: one area 6
]


def save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def write_data(root: Path) -> Path:
    """``root/train`` with :data:`IMAGES`/:data:`MASKS`, ``root/val`` with one sample."""
    for index, (image, mask) in enumerate(zip(IMAGES, MASKS, strict=True)):
        save(root / "train" / "images" / f"{index}.png", image)
        save(root / "train" / "masks" / f"{index}.png", mask)
    save(root / "val" / "images" / "v.png", IMAGES[0])
    save(root / "val" / "masks" / "v.png", MASKS[0])
    return root


def datamodule(root: Path, **kwargs) -> FolderDataModule:
    options = {"num_classes": 3, "in_channels": 1, "ignore_index": IGNORE, "batch_size": 2, "num_workers": 0}
    return FolderDataModule(root=str(root), **{**options, **kwargs})


@pytest.fixture
def data(tmp_path) -> Path:
    return write_data(tmp_path / "data")


def counting_compute(monkeypatch) -> list[int]:
    """Count the calls of ``compute_fingerprint`` made by :func:`fingerprint`."""
    calls: list[int] = []
    original = fingerprint_module.compute_fingerprint

    def compute(dm):
        calls.append(1)
        return original(dm)

    monkeypatch.setattr(fingerprint_module, "compute_fingerprint", compute)
    return calls


def test_fingerprint_of_a_hand_made_folder_is_exact(data):
    result = compute_fingerprint(datamodule(data, class_names=["bg", "a", "b"]))
    pixels = np.concatenate([image.ravel() for image in IMAGES]).astype(np.float64) / 255
    assert result.images == 3 and result.channels == 1 and result.class_names == ("bg", "a", "b")
    assert result.height == (4, 4.0, 6) and result.width == (6, 6.0, 8) and result.distinct_sizes == 2
    assert result.mean == pytest.approx((pixels.mean(),), rel=1e-12)
    assert result.std == pytest.approx((pixels.std(),), rel=1e-9)
    assert result.class_pixels == (76, 9, 9)
    assert result.class_fraction == pytest.approx((76 / 94, 9 / 94, 9 / 94))
    assert result.ignore_fraction == pytest.approx(2 / 96)
    assert result.objects == (3, 6, 3)
    # areas 0: [16, 20, 40]; 1: [4, 1, 1, 1, 1, 1]; 2: [2, 1, 6] -> numpy's linear percentiles 10/50/90
    assert result.object_area == (
        pytest.approx((16.8, 20, 36)),
        pytest.approx((1, 1, 2.5)),
        pytest.approx((1.2, 2, 5.2)),
    )
    # every pixel of classes 1 and 2 touches another class or the border
    assert result.class_width[1:] == (1.0, 1.0)
    assert Fingerprint.from_dict(json.loads(json.dumps(result.to_dict()))) == result


def test_class_width_is_the_width_of_stripes(tmp_path):
    """A 3-pixel and a 5-pixel stripe across a 24x24 image: widths 3 and 5, whatever their length."""
    mask = np.zeros((24, 24), np.uint8)
    mask[4:7, :] = 1
    mask[12:17, 2:22] = 2
    save(tmp_path / "train" / "images" / "a.png", np.zeros((24, 24), np.uint8))
    save(tmp_path / "train" / "masks" / "a.png", mask)
    save(tmp_path / "val" / "images" / "a.png", np.zeros((24, 24), np.uint8))
    save(tmp_path / "val" / "masks" / "a.png", mask)
    result = compute_fingerprint(datamodule(tmp_path))
    assert result.class_width[1:] == (3.0, 5.0)


def test_rgb_channels_and_an_absent_class(data):
    result = compute_fingerprint(datamodule(data, in_channels=3, num_classes=4))
    assert result.channels == 3 and len(set(result.mean)) == 1 and len(result.std) == 3
    assert result.class_pixels[3] == 0 and result.objects[3] == 0 and result.object_area[3] is None
    assert Fingerprint.from_dict(result.to_dict()) == result


def test_every_training_file_is_read_once_with_the_class_counts(data, monkeypatch):
    reads: list[Path] = []
    original = sources_module.read_image
    monkeypatch.setattr(sources_module, "read_image", lambda path, c: reads.append(path) or original(path, c))
    dm = datamodule(data, cache=False)
    compute_fingerprint(dm)
    assert sorted(path.name for path in reads) == ["0.png", "1.png", "2.png"]
    assert split_class_counts(dm, "train").pixels.tolist() == [76, 9, 9]  # counted in the same pass
    assert len(reads) == 3


def test_cache_is_hit_on_the_second_call(data, tmp_path, monkeypatch):
    calls = counting_compute(monkeypatch)
    first = fingerprint(datamodule(data), tmp_path / "cache")
    files = list((tmp_path / "cache" / "fingerprints").glob("*.json"))
    assert len(files) == 1 and files[0].stem == fingerprint_key(datamodule(data))
    second = fingerprint(datamodule(data), tmp_path / "cache")
    assert second == first and len(calls) == 1
    assert not list(data.rglob("*.json"))  # nothing written into the data folder


def test_a_changed_added_or_removed_file_or_setting_gives_a_new_key(data, tmp_path, monkeypatch):
    calls = counting_compute(monkeypatch)
    before = fingerprint(datamodule(data), tmp_path / "cache")
    key = fingerprint_key(datamodule(data))
    image = data / "train" / "images" / "1.png"
    save(image, np.full((4, 6), 10, np.uint8))
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    changed = fingerprint(datamodule(data), tmp_path / "cache")
    assert len(calls) == 2 and changed.mean[0] < before.mean[0]
    keys = {key, fingerprint_key(datamodule(data))}
    save(data / "train" / "images" / "3.png", IMAGES[0])
    save(data / "train" / "masks" / "3.png", MASKS[0])
    keys.add(fingerprint_key(datamodule(data)))
    for kind in ("images", "masks"):
        (data / "train" / kind / "0.png").unlink()
    keys.add(fingerprint_key(datamodule(data)))
    keys.add(fingerprint_key(datamodule(data, ignore_index=254)))
    keys.add(fingerprint_key(datamodule(data, image_size=8)))
    assert len(keys) == 6


def test_a_corrupt_cache_file_is_recomputed(data, tmp_path, monkeypatch):
    calls = counting_compute(monkeypatch)
    good = fingerprint(datamodule(data), tmp_path / "cache")
    (path,) = (tmp_path / "cache" / "fingerprints").glob("*.json")
    document = json.loads(path.read_text())
    for broken in ('{"format": 1, "key": "', json.dumps({**document, "fingerprint": {"images": 3}})):
        path.write_text(broken)
        assert fingerprint(datamodule(data), tmp_path / "cache") == good
    assert len(calls) == 3 and json.loads(path.read_text()) == document  # rewritten


def test_an_unwritable_cache_warns_and_still_answers(data, tmp_path):
    (tmp_path / "cache").write_text("a file, not a directory")
    with pytest.warns(UserWarning, match="not cached"):
        result = fingerprint(datamodule(data), tmp_path / "cache")
    assert result.images == 3


def test_synthetic_data_is_not_cached(tmp_path):
    dm = SyntheticDataModule(num_train=4, num_val=2, num_test=0, image_size=32, num_workers=0)
    assert fingerprint_key(dm) is None
    result = fingerprint(dm, tmp_path / "cache")
    assert result.images == 4 and result.height == (32, 32.0, 32) and not (tmp_path / "cache").exists()


def test_check_data_prints_and_writes_the_fingerprint(data, tmp_path, capsys):
    check_data(datamodule(data), tmp_path / "run", tmp_path / "cache")
    out = capsys.readouterr().out
    assert "fingerprint of the training split: 3 images, 2 distinct size(s)" in out and "area median" in out
    summary = json.loads((tmp_path / "run" / "data_summary.json").read_text())
    assert summary["train"]["images"] == 3 and summary["val"]["images"] == 1
    assert Fingerprint.from_dict(summary["fingerprint"]) == compute_fingerprint(datamodule(data))
