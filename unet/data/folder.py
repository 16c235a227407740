"""``FolderDataModule``: a user's own images and label masks from directories."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from unet.data.base import SPLITS, SegmentationDataModule, as_pair
from unet.data.errors import DataError, DataNotFoundError
from unet.data.io import IMAGE_EXTENSIONS
from unet.data.layout import Pair, carve_splits, pair_files, resolve
from unet.data.masks import MaskEncoder, PaletteSpec
from unet.data.sources import FileSource, SampleSource, finish_source
from unet.data.stacks import carve_stack_splits, expand_stacks, file_pair, has_pages

# Normalisation when none is given: maps [0, 1] pixels to roughly [-2, 2]. Pass the data's own
# statistics for best results.
FOLDER_MEAN = 0.5
FOLDER_STD = 0.25


def find_split_dirs(
    root: Path, explicit: Mapping[str, tuple[str | None, str | None]]
) -> dict[str, tuple[Path, Path]]:
    """``split -> (images dir, masks dir)`` for the splits the layout provides as directories.

    Per split, explicit ``{split}_images``/``{split}_masks`` keys win, then ``root/{split}/images|masks``;
    without a train directory, ``root/images`` + ``root/masks`` is the pool the other splits are carved from.
    """
    if not root.is_dir():
        raise DataNotFoundError(f"data root {root} does not exist or is not a directory")
    dirs: dict[str, tuple[Path, Path]] = {}
    for split in SPLITS:
        images, masks = explicit.get(split, (None, None))
        if (images is None) != (masks is None):
            raise DataError(
                f"{split}_images and {split}_masks must be given together (got {images!r}, {masks!r})"
            )
        if images is not None:
            dirs[split] = (resolve(images, root), resolve(masks, root))
        elif (root / split).is_dir():
            dirs[split] = (root / split / "images", root / split / "masks")
    if "train" not in dirs and (root / "images").is_dir():
        dirs["train"] = (root / "images", root / "masks")
    if "train" not in dirs:
        raise DataNotFoundError(
            f"no data found under {root}: expected images/ and masks/ (split by val_fraction), or train/ and "
            "val/ (and optionally test/) each holding images/ and masks/, or the train_images/train_masks "
            "(val_*, test_*) keys"
        )
    return dirs


class FolderDataModule(SegmentationDataModule):
    """Images and integer label masks from directories, paired by file stem (``a.jpg`` <-> ``a.png``).

    Layouts under ``root``: (a) ``images/`` + ``masks/``, split into train/val(/test) by ``val_fraction``
    / ``test_fraction`` with a seeded shuffle (or by explicit ``val_stems`` / ``test_stems``); (b)
    ``train/``, ``val/`` and optionally ``test/``, each with ``images/`` + ``masks/``; or any directories
    via ``{train,val,test}_{images,masks}`` (relative to ``root`` or absolute). A split that has no
    directory of its own is carved out of train by its fraction/stems.

    Stacks (:mod:`unet.data.stacks`): a multi-page TIFF of images beside one of masks (as the
    ``{split}_images``/``{split}_masks`` files, or same-stem files in the directories) is a set of 2D
    slices paired page by page; a split carved out of stacks is a contiguous block of each stack's pages
    (train first, then val, then test at the end), never shuffled slices.

    Args:
        root: the data directory.
        num_classes: classes in the masks (after ``mask_mapping`` / ``mask_threshold`` / ``mask_palette``).
        class_names: one name per class; default ``class_0``, ``class_1``, ...
        in_channels: the images' channels, any number: files holding them are read as they are (multi-channel
            TIFF, or several single-channel files per sample); gray images are replicated for 3, RGB
            reduced to luminance for 1; any other mismatch is refused naming the file.
        mask_mapping: raw mask value -> class index or ``ignore_index`` (e.g. ``{0: 1, 255: 0}``); every raw
            value present must be mapped. Without it, raw values must be class indices or ``ignore_index``.
        mask_threshold: for binary masks saved as gray images with soft (anti-aliased, JPEG) edges: raw value
            ``> mask_threshold`` is class 1, else class 0; needs ``num_classes == 2``.
        mask_palette: for colour-coded RGB masks: a YAML file of ``"R,G,B": class`` entries, a mapping
            ``{"R,G,B" | "#RRGGBB" | [R, G, B]: class}`` or ``[[R, G, B, class], ...]``; class ``ignore`` means
            ``ignore_index``. Every colour present must be listed. ``unet-check-data`` writes one to start from.
            ``mask_mapping``, ``mask_threshold`` and ``mask_palette`` are mutually exclusive.
        allow_lossy_masks: read masks saved in a lossy format (JPEG, lossy WebP) as they are. By default
            they are refused (counting the pixels whose values are not classes): compression blends labels
            along every edge. ``mask_threshold`` accepts them too (the fix for a binary JPEG mask).
        ignore_index: label excluded from loss and metrics (e.g. 255), or ``None``.
        mean / std: per-channel normalisation in [0, 1] units; ``None`` -> 0.5 / 0.25.
        extensions: file extensions read (PNG, JPEG and TIFF by default).
        image_size: ``H`` or ``[H, W]`` to resize every sample to (bilinear image, nearest mask), e.g. for
            images of varying size; ``None`` keeps sizes (training batches of differing sizes then need a
            crop in ``train_transforms``, else the training loader refuses them naming two files).
        cache: decode every file once at setup and keep the arrays in memory (False: decode on access).
        **common: the base keywords (batch_size, num_workers, transforms, seed, ...).
    """

    def __init__(
        self,
        root: str,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        in_channels: int = 3,
        mask_mapping: Mapping[int, int] | None = None,
        mask_threshold: float | None = None,
        mask_palette: PaletteSpec | None = None,
        allow_lossy_masks: bool = False,
        ignore_index: int | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        val_fraction: float = 0.2,
        test_fraction: float = 0.0,
        val_stems: Sequence[str] | None = None,
        test_stems: Sequence[str] | None = None,
        train_images: str | None = None,
        train_masks: str | None = None,
        val_images: str | None = None,
        val_masks: str | None = None,
        test_images: str | None = None,
        test_masks: str | None = None,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        image_size: int | Sequence[int] | None = None,
        cache: bool = True,
        **common: Any,
    ) -> None:
        super().__init__(
            num_classes=num_classes,
            class_names=class_names,
            in_channels=in_channels,
            ignore_index=ignore_index,
            mean=(FOLDER_MEAN,) * in_channels if mean is None else mean,
            std=(FOLDER_STD,) * in_channels if std is None else std,
            **common,
        )
        self.root = Path(root).expanduser()
        self.encoder = MaskEncoder(
            self.num_classes,
            self.ignore_index,
            mask_mapping,
            threshold=mask_threshold,
            palette=mask_palette,
            allow_lossy=allow_lossy_masks,
        )
        self.image_size = None if image_size is None else as_pair(image_size, "image_size")
        self.cache = bool(cache)
        explicit = {
            "train": (train_images, train_masks),
            "val": (val_images, val_masks),
            "test": (test_images, test_masks),
        }
        self.pairs = self._find_pairs(
            find_split_dirs(self.root, explicit),
            {"val": float(val_fraction), "test": float(test_fraction)},
            {"val": val_stems, "test": test_stems},
            list(extensions),
        )

    def _find_pairs(
        self,
        dirs: dict[str, tuple[Path, Path]],
        fractions: dict[str, float],
        stems: dict[str, Sequence[str] | None],
        extensions: list[str],
    ) -> dict[str, list[Pair]]:
        """Pair every split's files (stacks page by page); carve the splits without directories out of train."""
        pairs = {
            split: expand_stacks(
                file_pair(images, masks) or pair_files(images, masks, extensions), self.in_channels
            )
            for split, (images, masks) in dirs.items()
        }
        for split, wanted in stems.items():
            if wanted is not None and split in dirs:
                raise DataError(
                    f"{split}_stems given but the {split} split has its own directory {dirs[split][0]}"
                )
        carved = {split: fraction for split, fraction in fractions.items() if split not in dirs}
        wanted = {split: names for split, names in stems.items() if split not in dirs}
        if has_pages(pairs["train"]):
            pairs.update(carve_stack_splits(pairs["train"], carved, wanted))
        else:
            pairs.update(carve_splits(pairs["train"], carved, wanted, self.seed))
        if not pairs.get("val"):
            raise DataError(
                f"no validation data under {self.root}: provide a val/ directory, val_images/val_masks, "
                "val_stems or a positive val_fraction"
            )
        return pairs

    @property
    def has_test(self) -> bool:
        return bool(self.pairs.get("test"))

    def split_source(self, split: str) -> SampleSource:
        """The split's file pairs, optionally resized, decoded once into memory when ``cache``."""
        source = FileSource(self.pairs[split], self.in_channels, self.encoder)
        return finish_source(source, self.image_size, self.cache)
