"""Look at a data set before training on it: read every sample, then count images, sizes and classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from unet.data.base import SPLITS, SegmentationDataModule
from unet.utils.files import write_json
from unet.utils.tables import text_table


def split_summary(datamodule: SegmentationDataModule, split: str) -> dict[str, Any]:
    """Images, size range and class pixel frequencies of one split, from its raw (un-augmented) samples.

    Reading every sample also runs every check the data layer has (pairing, sizes, mask values,
    unreadable files), so a summary that completes means the split can be trained on.
    """
    source = datamodule.dataset(split).source
    counts = np.zeros(datamodule.num_classes, dtype=np.int64)
    ignored = 0
    sizes = set()
    for index in range(len(source)):
        image, mask = source[index]
        sizes.add((int(image.shape[0]), int(image.shape[1])))
        values, value_counts = np.unique(mask, return_counts=True)
        for value, count in zip(values.tolist(), value_counts.tolist(), strict=True):
            if value == datamodule.ignore_index:
                ignored += count
            else:
                counts[value] += count
    total = int(counts.sum()) + ignored
    heights, widths = [h for h, _ in sizes], [w for _, w in sizes]
    return {
        "images": len(source),
        "distinct_sizes": len(sizes),
        "min_size": [min(heights), min(widths)] if sizes else None,
        "max_size": [max(heights), max(widths)] if sizes else None,
        "class_pixel_fraction": {
            name: float(count / total) if total else 0.0
            for name, count in zip(datamodule.class_names, counts.tolist(), strict=True)
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


def check_data(datamodule: SegmentationDataModule, output_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Read every sample, print the summary table and write it to ``<output_dir>/data_summary.json``."""
    summary = summarize_data(datamodule)
    print(
        f"\n{type(datamodule).__name__}: {datamodule.num_classes} classes, {datamodule.in_channels} channel(s)"
    )
    print(format_summary(summary, list(datamodule.class_names)))
    print("all samples read and checked\n")
    path = write_json(Path(output_dir) / "data_summary.json", summary)
    print(f"summary written to {path}")
    return summary
