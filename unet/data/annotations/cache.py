"""Annotation files rasterised once into PNG masks that the folder reader pairs with the images by stem.

The masks are cached under ``<cache_dir>/annotations/<key>/<split>/<stem>.png``, never in the data folder
(it may be read-only), with the class names in ``classes.json``. The key is what the masks are made of:
the format, every annotation file's and image file's identity (path, size, modification time; the one
the data fingerprint is keyed by) and the split each image is in. A changed annotation file gives
another key, so it is rasterised again; an unchanged one is read back without reading the file.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from unet.data.annotations.base import (
    IGNORE_LABEL,
    AnnotationFormat,
    Annotations,
    annotation_format,
)
from unet.data.annotations.rasterise import rasterise
from unet.data.errors import AnnotationError
from unet.data.fingerprint import file_identity
from unet.data.io import image_size
from unet.data.layout import MAX_LISTED, list_files, resolve
from unet.utils.errors import ConfigError
from unet.utils.files import write_json

# Bumped whenever the masks or classes.json change meaning: older cache folders then miss.
CACHE_FORMAT = 1
INDEX_FILE = "classes.json"
AUTO = "auto"


@dataclass(frozen=True)
class AnnotatedMasks:
    """The rasterised masks of ``source``: one folder per split, the class names, whether any pixel is ignored."""

    source: str
    mask_dirs: dict[str, Path]
    class_names: tuple[str, ...]
    has_ignore: bool

    def settings(
        self,
        num_classes: int | str,
        class_names: Sequence[str] | None,
        ignore_index: int | None,
        **mask_options: Any,
    ) -> tuple[int, list[str], int | None, dict[int, int] | None]:
        """``(num_classes, class_names, ignore_index, mask_mapping)`` for the datamodule, from the file.

        ``num_classes`` must be the file's count or ``auto``; ``class_names`` unset or the file's. Ignored
        pixels (stored as 255) take ``ignore_index``, 255 when it is unset.
        """
        count, names = len(self.class_names), list(self.class_names)
        if num_classes != AUTO and num_classes != count:
            raise ConfigError(
                f"data.num_classes={num_classes} but {self.source} defines {count} classes {names}: "
                f"set data.num_classes={count} (or auto)"
            )
        if class_names is not None and list(class_names) != names:
            raise ConfigError(
                f"data.class_names {list(class_names)} differ from {self.source}'s {names}: leave it unset"
            )
        given = [f"data.{key}" for key, value in mask_options.items() if value is not None]
        if given:
            raise ConfigError(
                f"{', '.join(given)} read mask files; data.annotations gives class indices already"
            )
        if ignore_index is None and self.has_ignore:
            ignore_index = IGNORE_LABEL
        mapping = (
            None
            if ignore_index in (None, IGNORE_LABEL)
            else {i: i for i in range(count)} | {IGNORE_LABEL: ignore_index}
        )
        return count, names, ignore_index, mapping


def annotation_masks(
    annotations: str | Sequence[str] | None,
    format_name: str | None,
    cache_dir: str | Path | None,
    root: str | Path,
    split_dirs: Mapping[str, tuple[Path, Any]],
    extensions: Iterable[str],
) -> AnnotatedMasks:
    """The masks of the images in ``split_dirs`` (``split -> (images folder, ...)``) drawn from
    ``annotations`` (one path or several, relative to ``root``), rasterised now or read back from
    ``<cache_dir>/annotations/``."""
    if annotations is None:
        raise ConfigError("data.num_classes=auto takes the class count from data.annotations, which is unset")
    if cache_dir is None:
        raise ConfigError(
            "data.annotation_cache: the folder for masks rasterised from data.annotations is unset"
        )
    root = Path(root).expanduser()
    paths = [
        resolve(p, root) for p in ([annotations] if isinstance(annotations, str | Path) else annotations)
    ]
    formats = [annotation_format(path, format_name) for path in paths]
    splits = {split: list_files(images, extensions, "image") for split, (images, _) in split_dirs.items()}
    images = _all_images(splits)
    key = _cache_key(paths, formats, splits)
    folder = Path(cache_dir).expanduser() / "annotations" / key
    source = ", ".join(str(p) for p in paths)
    if (cached := _read_index(folder, key, source)) is not None:
        return cached
    read = _merge([fmt.read(path, images) for fmt, path in zip(formats, paths, strict=True)], source)
    _check_images(read, images, source, [str(images) for images, _ in split_dirs.values()])
    result = AnnotatedMasks(
        source, {split: folder / split for split in splits}, read.class_names, read.has_ignore
    )
    _write(folder, key, read, splits, result)
    return result


def _all_images(splits: Mapping[str, Mapping[str, Path]]) -> dict[str, Path]:
    """Every split's images by stem; a stem in two splits cannot tell which image an annotation means."""
    images: dict[str, Path] = {}
    for files in splits.values():
        for stem, path in files.items():
            if stem in images:
                raise AnnotationError(f"images {images[stem]} and {path} share the stem {stem!r}")
            images[stem] = path
    return images


def _cache_key(
    paths: list[Path], formats: list[AnnotationFormat], splits: Mapping[str, Mapping[str, Path]]
) -> str:
    try:
        identity = {
            "format": CACHE_FORMAT,
            "annotations": [
                [fmt.name, [file_identity(f) for f in fmt.sources(p)]]
                for fmt, p in zip(formats, paths, strict=True)
            ],
            "images": {split: [file_identity(f) for f in files.values()] for split, files in splits.items()},
        }
    except OSError as error:
        raise AnnotationError(f"cannot read annotation file: {error}") from None
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]


def _read_index(folder: Path, key: str, source: str) -> AnnotatedMasks | None:
    """The cached masks of ``key`` when ``folder`` is complete (its index is written last), else ``None``."""
    try:
        index = json.loads((folder / INDEX_FILE).read_text())
        if index["format"] != CACHE_FORMAT or index["key"] != key:
            return None
        return AnnotatedMasks(
            source,
            {split: folder / split for split in index["splits"]},
            tuple(index["class_names"]),
            bool(index["has_ignore"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _merge(parts: list[Annotations], source: str) -> Annotations:
    """Several annotation files of one data set: the same classes, each image in one file only."""
    first = parts[0]
    images = dict(first.images)
    for part in parts[1:]:
        if part.class_names != first.class_names:
            raise AnnotationError(
                f"{source} define different classes: {list(first.class_names)}, {list(part.class_names)}"
            )
        twice = sorted(set(images) & set(part.images))
        if twice:
            raise AnnotationError(f"{source} annotate the same images twice: {', '.join(twice[:MAX_LISTED])}")
        images.update(part.images)
    return Annotations(first.class_names, images)


def _check_images(
    annotations: Annotations, images: Mapping[str, Path], source: str, folders: list[str]
) -> None:
    """Every image annotated, every annotated image present, of the size the annotation says."""
    unknown = sorted(annotations.images[stem].name for stem in set(annotations.images) - set(images))
    missing = sorted(str(images[stem]) for stem in set(images) - set(annotations.images))
    for problem, names in (
        (f"names images not found in {', '.join(folders)}", unknown),
        ("does not annotate", missing),
    ):
        if names:
            more = f" (and {len(names) - MAX_LISTED} more)" if len(names) > MAX_LISTED else ""
            raise AnnotationError(f"{source} {problem}: {', '.join(names[:MAX_LISTED])}{more}")
    for stem, annotation in annotations.images.items():
        size = image_size(images[stem])
        if annotation.size is not None and annotation.size != size:
            raise AnnotationError(
                f"{source} gives image {annotation.name} the size {annotation.size[0]}x{annotation.size[1]} "
                f"(HxW) but {images[stem]} is {size[0]}x{size[1]}"
            )


def _write(
    folder: Path,
    key: str,
    annotations: Annotations,
    splits: Mapping[str, Mapping[str, Path]],
    result: AnnotatedMasks,
) -> None:
    """Rasterise into a temporary folder beside ``folder`` and move it in place: never a half-written cache."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=folder.parent))
    try:
        for split, files in splits.items():
            (staging / split).mkdir()
            for stem, image in files.items():
                mask = rasterise(annotations.images[stem], image_size(image))
                Image.fromarray(mask).save(staging / split / f"{stem}.png")
        index = {"format": CACHE_FORMAT, "key": key, "splits": list(splits)}
        write_json(
            staging / INDEX_FILE,
            index | {"class_names": list(result.class_names), "has_ignore": result.has_ignore},
        )
        if folder.exists():  # an incomplete folder (no index): replaced
            shutil.rmtree(folder)
        try:
            staging.rename(folder)
        except OSError:
            if _read_index(folder, key, result.source) is None:  # not another process's complete copy
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
