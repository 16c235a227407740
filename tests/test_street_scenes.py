"""The street-scene proxy looks like the photographs it stands in for: a long tail of classes, thin
poles, objects in perspective, the same scene for the same seed, and splits of their own."""

import numpy as np
from PIL import Image

from unet.data.street_scenes import POLE, STREET_CLASSES, street_scene
from unet.profiling import write_street_proxy


def class_shares(scenes: int, size=(180, 240)) -> np.ndarray:
    counts = sum(
        np.bincount(street_scene(*size, seed=seed)[1].ravel(), minlength=11) for seed in range(scenes)
    )
    return counts / counts.sum()


def test_classes_are_long_tailed_as_in_street_photographs():
    shares = np.sort(class_shares(12))[::-1]
    assert shares[:3].sum() > 0.6  # sky, building and road hold most pixels
    assert (shares < 0.02).sum() >= 4  # poles, signs, pedestrians, cyclists: rare
    assert (shares > 0).sum() >= 10


def test_poles_are_thin_structures():
    _, mask = street_scene(360, 480, seed=3)
    rows = [np.flatnonzero(row == POLE) for row in mask if (row == POLE).any()]
    runs = [len(np.split(cols, np.flatnonzero(np.diff(cols) > 1) + 1)[0]) for cols in rows]
    assert rows and max(runs) <= 4


def test_a_seed_gives_the_same_scene_and_scenes_differ():
    image, mask = street_scene(90, 120, seed=5)
    again, mask_again = street_scene(90, 120, seed=5)
    other, _ = street_scene(90, 120, seed=6)
    assert image.shape == (90, 120, 3) and image.dtype == np.uint8 and mask.shape == (90, 120)
    assert np.array_equal(image, again) and np.array_equal(mask, mask_again)
    assert not np.array_equal(image, other)
    assert mask.max() < len(STREET_CLASSES)


def test_the_proxy_is_written_as_a_users_folder_with_splits_of_their_own(tmp_path):
    root = write_street_proxy(tmp_path / "streets", size=(45, 60), images=(3, 2, 2))
    for split, count in (("train", 3), ("val", 2), ("test", 2)):
        assert len(list((root / split / "images").iterdir())) == count
        assert len(list((root / split / "masks").iterdir())) == count
    first = {split: np.array(Image.open(root / split / "images" / "00000.png")) for split in ("train", "val")}
    assert not np.array_equal(first["train"], first["val"])
    mask = np.array(Image.open(root / "train" / "masks" / "00000.png"))
    assert mask.dtype == np.uint8 and mask.max() < 11
