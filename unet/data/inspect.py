"""Look at a data set before training on it: read every sample, count images, sizes and classes, and list
what would stop training later (sizes the network or the batches cannot take, an epoch without a batch)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from unet.data.base import SPLITS, SegmentationDataModule
from unet.data.batching import Probe, probe, size_clash, unbatchable_message
from unet.data.errors import DataError, ImageReadError, LossyMaskError, MaskValueError
from unet.data.fingerprint import fingerprint, format_fingerprint
from unet.data.io import file_format, read_mask
from unet.data.masks import MaskCensus, colour_name, palette_yaml
from unet.data.statistics import split_class_counts
from unet.data.transforms import SamplePipeline, as_transform_list
from unet.utils.files import write_json, write_text
from unet.utils.tables import text_table


def split_summary(datamodule: SegmentationDataModule, split: str) -> dict[str, Any]:
    """Images, size range and class pixel frequencies of one split, from its raw (un-augmented) samples.

    Reading every sample also runs every check the data layer has (pairing, sizes, mask values,
    unreadable files), so a summary that completes means the split can be trained on.
    """
    counts = split_class_counts(datamodule, split)
    sizes, ignored = counts.sizes, counts.ignored
    total = int(counts.pixels.sum()) + ignored
    heights, widths = [h for h, _ in sizes], [w for _, w in sizes]
    return {
        "images": len(datamodule.dataset(split).source),
        "distinct_sizes": len(sizes),
        "min_size": [min(heights), min(widths)] if sizes else None,
        "max_size": [max(heights), max(widths)] if sizes else None,
        "class_pixel_fraction": {
            name: float(count / total) if total else 0.0
            for name, count in zip(datamodule.class_names, counts.pixels.tolist(), strict=True)
        },
        "ignored_pixel_fraction": float(ignored / total) if total else 0.0,
    }


def summarize_data(datamodule: SegmentationDataModule) -> dict[str, dict[str, Any]]:
    """:func:`split_summary` of every split the data has; raises the data layer's error for bad input."""
    datamodule.setup()
    return {split: split_summary(datamodule, split) for split in SPLITS if datamodule.has_split(split)}


def format_summary(summary: dict[str, dict[str, Any]], class_names: list[str]) -> str:
    """A plain-text table: one row per split, class frequencies as percentages."""
    records = []
    for split, info in summary.items():
        low, high = info["min_size"], info["max_size"]
        sizes = (
            None
            if low is None
            else f"{low[0]}x{low[1]}" + ("" if low == high else f" .. {high[0]}x{high[1]}")
        )
        fractions = {f"class/{name}": 100 * info["class_pixel_fraction"][name] for name in class_names}
        ignored = 100 * info["ignored_pixel_fraction"]
        records.append(
            {"split": split, "images": info["images"], "sizes": sizes, **fractions, "ignored": ignored}
        )
    columns = [("split", "split", "{}"), ("images", "images", "{}"), ("sizes (HxW)", "sizes", "{}")]
    columns += [(name, f"class/{name}", "{:.2f}%") for name in class_names]
    return text_table([*columns, ("ignored", "ignored", "{:.2f}%")], records, rule=True)


# Colours printed when colour masks have no palette (all of them go to the palette file).
MAX_PRINTED_COLOURS = 64

PALETTE_HEADER = """Mask colours found by unet-check-data in {root}, most frequent first: "R,G,B": class.
Classes are numbered 0..{last} in order of frequency: renumber them, give several colours one class, or
map a colour to ignore (needs data.ignore_index); then pass data.mask_palette={path}"""


def file_formats(datamodule: SegmentationDataModule) -> list[str]:
    """``"masks: GIF, palette mode (20 files)"``: the formats of the mask (and ROI) files read, from their
    headers; empty for datamodules without files (``pairs``)."""
    pairs = [
        pair for split_pairs in (getattr(datamodule, "pairs", None) or {}).values() for pair in split_pairs
    ]
    lines = []
    for what, files in (("masks", [p.mask for p in pairs]), ("ROIs", [p.roi for p in pairs if p.roi])):
        counts = Counter(file_format(path) for path in files)
        if counts:
            found = "; ".join(
                f"{name} ({count} file{'s' * (count > 1)})" for name, count in counts.most_common()
            )
            lines.append(f"{what}: {found}")
    return lines


def _smallest(probes: list[Probe]) -> Probe:
    """The probe leaving the pipeline with the shortest side."""
    return min(probes, key=lambda p: min(p.output))


# ``train_transforms`` values of :func:`check_data` that are not a list of transforms: left out, the
# training samples are not judged (the datamodule may be a reading one, without its augmentation and with
# a default batch size); PLANNED: the plan will choose the crop (and batch size) to fit the data.
UNCHECKED = None
PLANNED = "auto"


def training_problems(
    datamodule: SegmentationDataModule, min_size: int | None = None, train_transforms: Any = UNCHECKED
) -> list[str]:
    """What would stop training on the datamodule's samples, each as one line (empty: nothing found).

    ``min_size``: the network's smallest input side in data pixels (``None``: unchecked). Val and test are
    scored on whole images, so their raw sizes must reach it. ``train_transforms``: the training
    augmentation (a list of albumentations transforms, ``[]`` for none; see :data:`UNCHECKED`,
    :data:`PLANNED`). Given a list, the training samples are run through it (a crop larger than an image
    fails there), their sizes after it must stack into batches of the datamodule's ``batch_size`` and
    reach ``min_size``; with a list or :data:`PLANNED`, an epoch that drop_last leaves empty is listed too.
    """
    problems: list[str] = []
    judged = train_transforms is not UNCHECKED and not (
        isinstance(train_transforms, str) and train_transforms == PLANNED
    )
    if train_transforms is not UNCHECKED:
        empty = datamodule.empty_epoch_message(len(datamodule.dataset("train")))
        if empty is not None:
            problems.append(empty)
    for split in SPLITS:
        train = split == "train"
        if not datamodule.has_split(split) or (train and not judged):
            continue
        dataset = datamodule.dataset(split)
        pipeline = dataset.pipeline
        if train:
            transforms = as_transform_list(train_transforms)
            pipeline = SamplePipeline(
                transforms, datamodule.mean, datamodule.std, seed=datamodule.split_seed(split)
            )
        try:
            probes = probe(dataset.source, pipeline, "training" if train else split)
        except DataError as error:
            problems.append(str(error))
            continue
        if not probes:
            continue
        clash = size_clash(probes) if train and datamodule.batch_size > 1 else None
        if clash is not None:
            problems.append(unbatchable_message(clash, datamodule.batch_size))
        small = _smallest(probes)
        if min_size is not None and min(small.output) < min_size:
            height, width = small.output
            if train and small.output != small.size:
                problems.append(
                    f"training samples leave the augmentation at {height}x{width} (HxW, {small.name}), smaller "
                    f"than the network's smallest input of {min_size}x{min_size}: a larger crop (augment.crop) "
                    "or a network of fewer levels (model.net.depth)"
                )
            else:
                what = "training" if train else f"{split} (scored whole)"
                problems.append(
                    f"{what} image {small.name} is {height}x{width} (HxW), smaller than the network's smallest "
                    f"input of {min_size}x{min_size}: resize the samples (data.image_size=[H,W]) or use a "
                    "network of fewer levels (model.net.depth)"
                )
    return problems


def mask_advice(
    datamodule: SegmentationDataModule, output_dir: Path, threshold_only: bool = False
) -> str | None:
    """Which mask option would make the masks readable, from every raw mask file; ``None``: no advice.

    Colour masks without a palette: prints every colour with its pixel count and writes
    ``<output_dir>/palette.yaml`` to start from. Near-binary gray masks: the ``mask_threshold`` midpoint.
    Only for datamodules reading mask files (``pairs``) with neither a palette nor a threshold set.
    ``threshold_only`` (lossy masks): no palette advice, which would list every colour the compression made.
    """
    pairs = getattr(datamodule, "pairs", None)
    encoder = getattr(datamodule, "encoder", None)
    if not pairs or encoder is None or encoder.palette is not None or encoder.threshold is not None:
        return None
    census = MaskCensus()
    for mask in sorted({pair.mask for split_pairs in pairs.values() for pair in split_pairs}, key=str):
        try:
            census.add(read_mask(mask))
        except ImageReadError:
            return None  # an unreadable file: its own error is the one to show
    if census.is_colour:
        if threshold_only:
            return None
        return _colour_advice(
            census.colour_counts(),
            getattr(datamodule, "root", "the masks"),
            datamodule.num_classes,
            output_dir,
        )
    midpoint = census.threshold()
    if midpoint is None:
        return None
    low, high = min(census.gray), max(census.gray)
    share = 100 * (census.gray[low] + census.gray[high]) / sum(census.gray.values())
    return (
        f"the gray masks hold {len(census.gray)} values with {share:.1f}% of pixels at {low} and {high}, a binary "
        f"mask with soft edges: pass data.mask_threshold={midpoint} (values > {midpoint} become class 1)"
    )


def _colour_advice(colours: list[tuple[int, int]], root: Any, num_classes: int, output_dir: Path) -> str:
    """Print the colours, write the palette file and say how to pass it."""
    path = (output_dir / "palette.yaml").resolve()
    write_text(
        path, palette_yaml(colours, PALETTE_HEADER.format(root=root, last=len(colours) - 1, path=path))
    )
    total = sum(count for _, count in colours)
    records = [
        {"colour": colour_name(packed), "class": index, "pixels": count, "share": 100 * count / total}
        for index, (packed, count) in enumerate(colours[:MAX_PRINTED_COLOURS])
    ]
    columns = [("colour (R,G,B)", "colour", "{}"), ("class", "class", "{}"), ("pixels", "pixels", "{}")]
    print(f"\nthe masks are colour images with {len(colours)} distinct colours:")
    print(text_table([*columns, ("share", "share", "{:.2f}%")], records, rule=True))
    if len(colours) > MAX_PRINTED_COLOURS:
        print(f"... and {len(colours) - MAX_PRINTED_COLOURS} more (all in {path})")
    classes = "" if len(colours) == num_classes else f" data.num_classes={len(colours)} (or merge classes)"
    return (
        f"the masks are colour images ({len(colours)} colours, listed above) and no palette is given: edit the "
        f"classes in {path}, then pass data.mask_palette={path}{classes}"
    )


def check_data(
    datamodule: SegmentationDataModule,
    output_dir: str | Path,
    cache_dir: str | Path | None = None,
    *,
    min_size: int | None = None,
    train_transforms: Any = UNCHECKED,
) -> dict[str, dict[str, Any]]:
    """Read every sample, print the summary table and the training split's fingerprint, write both; refuse
    what would stop training.

    ``<output_dir>/data_summary.json`` holds one entry per split, ``fingerprint``
    (:class:`~unet.data.fingerprint.Fingerprint`, cached under ``<cache_dir>/fingerprints/``;
    ``cache_dir=None`` computes it without caching) and ``problems``. The fingerprint is taken first so its
    pass also counts the training classes the summary reuses. Unreadable files, mask values no option maps
    and masks in a lossy format raise the data layer's error; masks that need a mask option (colours,
    soft-edged binary masks) are refused with the option to set. Then :func:`training_problems` (with
    ``min_size`` and ``train_transforms``, see there; with neither, only what the reading itself finds, as
    before) are printed, written and raised as one :class:`DataError`.
    """
    try:
        datamodule.setup()
        data_fingerprint = fingerprint(datamodule, cache_dir)
        summary = summarize_data(datamodule)
    except (MaskValueError, ImageReadError) as error:
        advice = mask_advice(datamodule, Path(output_dir), threshold_only=isinstance(error, LossyMaskError))
        if advice is None:
            raise
        raise MaskValueError(advice) from error
    print(
        f"\n{type(datamodule).__name__}: {datamodule.num_classes} classes, {datamodule.in_channels} channel(s)"
    )
    print(format_summary(summary, list(datamodule.class_names)))
    if formats := file_formats(datamodule):
        print("\n".join(formats))
    print("all samples read and checked\n")
    print(format_fingerprint(data_fingerprint) + "\n")
    problems = training_problems(datamodule, min_size, train_transforms)
    path = write_json(
        Path(output_dir) / "data_summary.json",
        {**summary, "fingerprint": data_fingerprint.to_dict(), "problems": problems},
    )
    print(f"summary written to {path}")
    if problems:
        print("\nproblems that would stop training:")
        print("\n".join(f"  - {problem}" for problem in problems))
        if len(problems) == 1:
            raise DataError(problems[0])
        raise DataError(
            f"{len(problems)} problems would stop training: "
            + " ".join(f"({number}) {problem}" for number, problem in enumerate(problems, 1))
        )
    return summary
