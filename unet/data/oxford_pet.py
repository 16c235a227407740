"""``OxfordPetDataModule``: Oxford-IIIT Pet foreground segmentation through torchvision's dataset class."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torchvision.datasets import OxfordIIITPet

from unet.data.base import SegmentationDataModule, as_pair
from unet.data.errors import DataError, DataNotFoundError
from unet.data.io import image_array, label_array
from unet.data.masks import MaskEncoder
from unet.data.sources import Sample, SampleSource, SubsetSource, check_same_size, finish_source

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Trimap values: 1 = pet, 2 = background, 3 = border (the uncertain outline).
TRIMAP_PET, TRIMAP_BACKGROUND, TRIMAP_BORDER = 1, 2, 3
BACKGROUND, PET = 0, 1
# What the border pixels become, by ``border_as``: a class, or (None) the ignore index.
BORDER_TARGETS: dict[str, int | None] = {"ignore": None, "pet": PET, "background": BACKGROUND}

# What torchvision's OxfordIIITPet reads under ``root`` (its _check_exists tests the two folders).
EXPECTED_FILES = ("images", "annotations/trimaps", "annotations/trainval.txt", "annotations/test.txt")


class PetSource:
    """Samples of a torchvision ``OxfordIIITPet(target_types="segmentation")``: RGB image, encoded trimap."""

    def __init__(self, dataset: OxfordIIITPet, encoder: MaskEncoder, split: str) -> None:
        self.dataset = dataset
        self.encoder = encoder
        self.split = split

    def __len__(self) -> int:
        return len(self.dataset)

    def _name(self, index: int) -> str:
        """The trimap's path for messages (a private torchvision list; a generic name if it moves)."""
        segs = getattr(self.dataset, "_segs", None)
        return str(segs[index]) if segs is not None else f"Oxford-IIIT Pet {self.split} sample {index}"

    def __getitem__(self, index: int) -> Sample:
        image, trimap = self.dataset[index]
        name = self._name(index)
        image = image_array(np.asarray(image), 3, name)
        mask = self.encoder(label_array(np.asarray(trimap), name), name)
        check_same_size(image, mask, name, name)
        return image, mask


class OxfordPetDataModule(SegmentationDataModule):
    """Oxford-IIIT Pet trimaps as 2 classes: background = 0, pet = 1; border pixels per ``border_as``.

    Splits: val is a seeded ``val_fraction`` of the official ``trainval`` list, train the rest; test is the
    official ``test`` list. Files live in ``root/oxford-iiit-pet/`` (``images/*.jpg``,
    ``annotations/trimaps/*.png``, ``annotations/trainval.txt``, ``annotations/test.txt``), as torchvision
    downloads them. Images vary in size: resize/crop transforms or ``image_size`` make batches collate.

    Args:
        root: the directory holding ``oxford-iiit-pet/``.
        download: fetch the archives (~800 MB) when missing (needs internet; done in ``prepare_data``).
        val_fraction: share of ``trainval`` held out for validation.
        border_as: ``"ignore"`` (border -> ``ignore_index``), ``"pet"`` or ``"background"``.
        ignore_index: label of ignored pixels (255).
        image_size: ``H`` or ``[H, W]`` to resize every sample to (bilinear image, nearest mask) before the
            transforms; ``None`` keeps the native sizes.
        cache: decode every sample once at setup and keep it in memory (large unless ``image_size`` is small).
        mean / std: normalisation, ImageNet statistics by default.
        **common: the base keywords (batch_size, num_workers, transforms, seed, ...).
    """

    def __init__(
        self,
        root: str,
        download: bool = False,
        val_fraction: float = 0.1,
        border_as: str = "ignore",
        ignore_index: int | None = 255,
        image_size: int | Sequence[int] | None = None,
        cache: bool = False,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        **common: Any,
    ) -> None:
        super().__init__(
            num_classes=2,
            class_names=["background", "pet"],
            in_channels=3,
            ignore_index=ignore_index,
            mean=mean,
            std=std,
            **common,
        )
        if border_as not in BORDER_TARGETS:
            raise DataError(f"border_as must be one of {', '.join(BORDER_TARGETS)}, got {border_as!r}")
        border = BORDER_TARGETS[border_as]
        if border is None and self.ignore_index is None:
            raise DataError('border_as="ignore" needs an ignore_index')
        self.encoder = MaskEncoder(
            self.num_classes,
            self.ignore_index,
            {
                TRIMAP_PET: PET,
                TRIMAP_BACKGROUND: BACKGROUND,
                TRIMAP_BORDER: self.ignore_index if border is None else border,
            },
        )
        if not 0 < val_fraction < 1:
            raise DataError(f"val_fraction must be in (0, 1), got {val_fraction}")
        self.root = Path(root).expanduser()
        self.download = bool(download)
        self.val_fraction = float(val_fraction)
        self.image_size = None if image_size is None else as_pair(image_size, "image_size")
        self.cache = bool(cache)
        self._official: dict[str, PetSource] = {}
        if not self.download:
            self._check_files()

    def _check_files(self) -> None:
        base = self.root / "oxford-iiit-pet"
        missing = [name for name in EXPECTED_FILES if not (base / name).exists()]
        if missing:
            raise DataNotFoundError(
                f"Oxford-IIIT Pet not found in {base} (missing {', '.join(missing)}). Pass download=true to "
                f"download it there (needs internet), or extract the dataset's images.tar.gz and "
                f"annotations.tar.gz into {base}."
            )

    @property
    def has_test(self) -> bool:
        return True

    def prepare_data(self) -> None:
        """Download once (Lightning calls this on one process only)."""
        if self.download:
            self._torchvision("trainval")

    def _torchvision(self, official_split: str) -> OxfordIIITPet:
        try:
            return OxfordIIITPet(
                str(self.root), split=official_split, target_types="segmentation", download=self.download
            )
        except RuntimeError as error:  # torchvision's "Dataset not found"
            raise DataNotFoundError(f"Oxford-IIIT Pet under {self.root}: {error}") from error

    def _official_source(self, official_split: str) -> PetSource:
        if official_split not in self._official:
            self._official[official_split] = PetSource(
                self._torchvision(official_split), self.encoder, official_split
            )
        return self._official[official_split]

    def _train_val_indices(self, total: int) -> dict[str, list[int]]:
        """Seeded split of ``trainval`` positions: ``round(val_fraction * total)`` (>= 1) go to val."""
        order = np.random.default_rng(self.seed).permutation(total)
        count = max(1, round(self.val_fraction * total))
        if count >= total:
            raise DataError(f"val_fraction {self.val_fraction} leaves no training images out of {total}")
        return {"val": sorted(order[:count].tolist()), "train": sorted(order[count:].tolist())}

    def split_source(self, split: str) -> SampleSource:
        """train/val: subsets of ``trainval``; test: the official test list. Resized and cached if asked."""
        if split == "test":
            source: SampleSource = self._official_source("test")
        else:
            trainval = self._official_source("trainval")
            source = SubsetSource(trainval, self._train_val_indices(len(trainval))[split])
        return finish_source(source, self.image_size, self.cache)
