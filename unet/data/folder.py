"""``FolderDataModule``: a user's own images and label masks from directories."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from unet.data.annotations import AUTO, annotation_masks
from unet.data.base import SPLITS, SegmentationDataModule, as_pair
from unet.data.errors import DataError, DataNotFoundError
from unet.data.io import IMAGE_EXTENSIONS
from unet.data.layout import Pair, attach_rois, carve_splits, pair_files, resolve
from unet.data.manifest import read_manifest
from unet.data.masks import MaskEncoder, PaletteSpec
from unet.data.sources import FileSource, SampleSource, finish_source
from unet.data.stacks import carve_stack_splits, expand_stacks, file_pair, has_pages

# Normalisation when none is given: maps [0, 1] pixels to roughly [-2, 2]. Pass the data's own
# statistics for best results.
FOLDER_MEAN = 0.5
FOLDER_STD = 0.25


def roi_ignore_index(num_classes: int) -> int:
    """The label outside a region of interest when the user set no ``ignore_index``: 255, the common void
    label (beyond it for more classes), so a checkpoint's ignore index is the same on every such data set."""
    return max(255, num_classes)


def find_split_dirs(
    root: Path, explicit: Mapping[str, tuple[str | None, str | None]], annotated: bool = False
) -> dict[str, tuple[Path, Path]]:
    """``split -> (images dir, masks dir)`` for the splits the layout provides as directories.

    Per split, explicit ``{split}_images``/``{split}_masks`` keys win (one of them alone: the other is the
    layout's ``images``/``masks`` folder), then ``root/{split}/images|masks``; without a train directory,
    ``root/images`` + ``root/masks`` is the pool the other splits are carved from.
    ``annotated``: the masks come from annotation files, so ``{split}_images`` stands alone.
    """
    if not root.is_dir():
        raise DataNotFoundError(f"data root {root} does not exist or is not a directory")
    dirs: dict[str, tuple[Path, Path]] = {}
    for split in SPLITS:
        images, masks = explicit.get(split, (None, None))
        own = root / split if (root / split).is_dir() else None
        home = own if own is not None or split != "train" else root
        if (images is None) != (masks is None) and home is None and not annotated:
            raise DataError(
                f"{split}_images and {split}_masks must be given together (got {images!r}, {masks!r})"
            )
        if images is not None or masks is not None:
            dirs[split] = (
                resolve(images, root) if images is not None else home / "images",
                resolve(masks, root) if masks is not None else (home or root) / "masks",
            )
        elif own is not None:
            dirs[split] = split_folders(own, split, annotated)
    if "train" not in dirs and (root / "images").is_dir():
        dirs["train"] = (root / "images", root / "masks")
    if "train" not in dirs:
        raise DataNotFoundError(
            f"no data found under {root}: expected images/ and masks/ (split by val_fraction), or train/ and "
            "val/ (and optionally test/) each holding images/ and masks/, or the train_images/train_masks "
            "(val_*, test_*) keys"
        )
    return dirs


def split_folders(own: Path, split: str, annotated: bool) -> tuple[Path, Path]:
    """``own/images`` and ``own/masks`` of a split's own folder; a missing one is named with the keys
    that point the split elsewhere (a data set whose ``test/`` holds other folder names)."""
    needed = ("images",) if annotated else ("images", "masks")
    missing = [own / name for name in needed if not (own / name).is_dir()]
    if missing:
        raise DataNotFoundError(
            f"{own} is read as the {split} split, but {missing[0]} does not exist: put images/ and masks/ "
            f"there, or name its folders with data.{split}_images=... data.{split}_masks=..."
        )
    return own / "images", own / "masks"


def locate_folders(
    root: Path,
    folders: Mapping[str, tuple[str | None, str | None]],
    manifest: str | None,
    roi_dir: str | None,
    annotated: bool,
) -> dict[str, tuple[Path, Path]] | None:
    """``split -> (images dir, masks dir)``, or ``None`` when a manifest lists every file instead."""
    if manifest is None:
        return find_split_dirs(root, folders, annotated)
    given = [
        f"{split}_{kind}"
        for split, pair in folders.items()
        for kind, value in zip(("images", "masks"), pair, strict=True)
        if value
    ]
    given += ["roi_dir"] * (roi_dir is not None) + ["annotations"] * annotated
    if given:
        raise DataError(f"data.manifest lists every file: leave {', '.join(given)} unset")
    return None


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
        num_classes: classes in the masks (after ``mask_mapping`` / ``mask_threshold`` / ``mask_palette``);
            ``auto``: the count of ``annotations``' categories (the default, as a config's ``auto`` keys are
            left out when the data are only read).
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
        annotations: a labelling tool's annotation file or folder (or a list of them), relative to ``root``
            or absolute, instead of mask files: rasterised once into masks cached under ``annotation_cache``
            (:mod:`unet.data.annotations`), its categories the classes; ``num_classes`` may then be ``auto``.
        annotation_format: ``coco``, ``labelme``, ``cvat`` or ``yolo``; ``None`` detects it.
        **common: the base keywords (batch_size, num_workers, transforms, seed, ...).
    """

    def __init__(
        self,
        root: str,
        num_classes: int | str = AUTO,
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
        mask_pattern: str | None = None,
        manifest: str | None = None,
        roi_dir: str | None = None,
        roi_pattern: str | None = None,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        image_size: int | Sequence[int] | None = None,
        cache: bool = True,
        annotations: str | Sequence[str] | None = None,
        annotation_format: str | None = None,
        annotation_cache: str | None = None,
        **common: Any,
    ) -> None:
        folders = {"train": (train_images, train_masks), "val": (val_images, val_masks)}
        folders["test"] = (test_images, test_masks)
        annotated = annotations is not None or num_classes == AUTO
        dirs = locate_folders(Path(root).expanduser(), folders, manifest, roi_dir, annotated)
        if annotated:
            labels = annotation_masks(
                annotations, annotation_format, annotation_cache, root, dirs, extensions
            )
            dirs = {split: (images, labels.mask_dirs[split]) for split, (images, _) in dirs.items()}
            num_classes, class_names, ignore_index, mask_mapping = labels.settings(
                num_classes, class_names, ignore_index, mask_mapping=mask_mapping, mask_threshold=mask_threshold,
                mask_palette=mask_palette, train_masks=train_masks, val_masks=val_masks, test_masks=test_masks,
            )  # fmt: skip
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
        found = self._find(dirs, manifest, list(extensions), mask_pattern, roi_dir, roi_pattern)
        self._set_pairs(
            found, {"val": val_fraction, "test": test_fraction}, {"val": val_stems, "test": test_stems}
        )
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

    def _set_pairs(
        self,
        found: dict[str, list[Pair]],
        fractions: dict[str, float],
        stems: dict[str, Sequence[str] | None],
    ) -> None:
        """Every split's pairs, carved out of train where the data name none; an ignore label for ROIs."""
        self.pairs = self._carve(found, {split: float(value) for split, value in fractions.items()}, stems)
        self.has_rois = any(pair.roi is not None for pairs in self.pairs.values() for pair in pairs)
        if self.has_rois and self.ignore_index is None:
            self.ignore_index = roi_ignore_index(self.num_classes)

    def _find(
        self,
        dirs: dict[str, tuple[Path, Path]] | None,
        manifest: str | None,
        extensions: list[str],
        mask_pattern: str | None,
        roi_dir: str | None,
        roi_pattern: str | None,
    ) -> dict[str, list[Pair]]:
        """The samples a manifest lists, or every split folder's pairs (stacks page by page)."""
        if dirs is None:
            return read_manifest(resolve(manifest, self.root))
        return {
            split: self._pair_folders(images, masks, extensions, mask_pattern, roi_dir, roi_pattern)
            for split, (images, masks) in dirs.items()
        }

    def _pair_folders(
        self,
        images: Path,
        masks: Path,
        extensions: list[str],
        mask_pattern: str | None,
        roi_dir: str | None,
        roi_pattern: str | None,
    ) -> list[Pair]:
        """One split's pairs from its folders (or its stack files), with their regions of interest when
        ``roi_dir`` is set."""
        pairs = file_pair(images, masks) or [
            Pair(image, mask) for image, mask in pair_files(images, masks, extensions, mask_pattern)
        ]
        pairs = expand_stacks(pairs, self.in_channels)
        if roi_dir is None:
            return pairs
        if has_pages(pairs):
            raise DataError(
                "data.roi_dir: regions of interest are read per image file, not for a stack's pages"
            )
        return attach_rois(pairs, images, resolve(roi_dir, images.parent), extensions, roi_pattern)

    def _carve(
        self,
        found: dict[str, list[Pair]],
        fractions: dict[str, float],
        stems: dict[str, Sequence[str] | None],
    ) -> dict[str, list[Pair]]:
        """Carve the splits the data does not list itself out of train (a stack's as contiguous blocks)."""
        if "train" not in found:
            raise DataNotFoundError(
                f"no training samples under {self.root} (every manifest row is val or test)"
            )
        for split, wanted in stems.items():
            if wanted is not None and split in found:
                raise DataError(f"{split}_stems given but the data lists a {split} split of its own")
        carved = {split: fraction for split, fraction in fractions.items() if split not in found}
        wanted = {split: names for split, names in stems.items() if split not in found}
        if has_pages(found["train"]):
            pairs = {**found, **carve_stack_splits(found["train"], carved, wanted)}
        else:
            pairs = {**found, **carve_splits(found["train"], carved, wanted, self.seed)}
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
        source = FileSource(self.pairs[split], self.in_channels, self.encoder, self.ignore_index)
        return finish_source(source, self.image_size, self.cache)
