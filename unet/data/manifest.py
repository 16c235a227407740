"""A manifest file: the pairing written out, one sample per row, the form any other tool can write.

CSV with a header row, or JSON lines (one object per line; ``.jsonl``, ``.ndjson`` or ``.json``), with
the columns ``image``, ``mask``, optionally ``roi`` (a region-of-interest mask, nonzero inside) and
``split`` (``train``, ``val`` or ``test``; empty: train). Paths are relative to the manifest's folder or
absolute. ``image`` may list several files separated by ``;``, one channel each, in order.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from unet.data.base import SPLITS
from unet.data.errors import DataError, DataNotFoundError
from unet.data.layout import Pair, resolve

COLUMNS = ("image", "mask", "roi", "split")
REQUIRED = ("image", "mask")
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
CHANNEL_SEPARATOR = ";"


def _csv_rows(path: Path) -> Iterator[tuple[int, dict]]:
    with path.open(newline="", encoding="utf-8-sig") as file:
        yield from enumerate(csv.DictReader(file), start=2)


def _json_rows(path: Path) -> Iterator[tuple[int, dict]]:
    with path.open(encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"manifest {path} line {number} is not a JSON object: {error}") from None
            if not isinstance(row, dict):
                raise DataError(f"manifest {path} line {number} is not a JSON object: {line.strip()[:80]}")
            yield number, row


def _file(value: object, root: Path, where: str, column: str) -> Path:
    """A listed file, resolved against the manifest's folder; it must exist."""
    text = "" if value is None else str(value).strip()
    if not text:
        raise DataError(f"{where} has no {column}")
    path = resolve(text, root)
    if not path.is_file():
        raise DataNotFoundError(f"{where} lists {column} {text}, which does not exist ({path})")
    return path


def _pair(row: dict, root: Path, where: str) -> Pair:
    unknown = sorted(set(row) - set(COLUMNS))
    missing = [column for column in REQUIRED if column not in row]
    if unknown or missing:
        raise DataError(
            f"{where} has columns {sorted(row)}; expected image, mask and optionally roi, split"
            + (f" (missing {', '.join(missing)})" if missing else f" (unknown {', '.join(unknown)})")
        )
    parts = [part for part in str(row["image"] or "").split(CHANNEL_SEPARATOR) if part.strip()]
    images = tuple(_file(part, root, where, "image") for part in parts) or (_file("", root, where, "image"),)
    roi = row.get("roi")
    return Pair(
        images[0] if len(images) == 1 else images,
        _file(row["mask"], root, where, "mask"),
        None if roi in (None, "") else _file(roi, root, where, "roi"),
    )


def read_manifest(path: Path) -> dict[str, list[Pair]]:
    """``split -> pairs`` in file order; rows without a split are ``train``. Every listed file must exist,
    sample names (first image stems) must be unique, and a ROI is given for every row or for none."""
    if not path.is_file():
        raise DataNotFoundError(f"data.manifest {path} does not exist")
    rows = _json_rows(path) if path.suffix.lower() in JSON_SUFFIXES else _csv_rows(path)
    splits: dict[str, list[Pair]] = {}
    names: dict[str, str] = {}
    for number, row in rows:
        where = f"manifest {path} row {number}"
        pair = _pair(row, path.parent, where)
        split = str(row.get("split") or "train").strip().lower()
        if split not in SPLITS:
            raise DataError(f"{where} has split {split!r}; expected train, val, test or empty")
        if pair.name in names:
            raise DataError(f"{where} repeats the sample name {pair.name!r} of {names[pair.name]}")
        names[pair.name] = where
        splits.setdefault(split, []).append(pair)
    pairs = [pair for split_pairs in splits.values() for pair in split_pairs]
    if not pairs:
        raise DataNotFoundError(f"data.manifest {path} lists no samples")
    if len({pair.roi is None for pair in pairs}) > 1:
        raise DataError(
            f"data.manifest {path} gives a roi for some rows only; give one for every row or none"
        )
    return splits
