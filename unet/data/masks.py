"""Raw mask values or colours -> class indices, with every unexpected value reported instead of silently trained on.

Four ways to read a mask (one per :class:`MaskEncoder`): values already class indices; raw values mapped by
``mask_mapping``; a gray binary mask cut at ``mask_threshold`` (anti-aliased or JPEG edges); RGB colours
mapped by ``mask_palette``. Palette files are YAML ``"R,G,B": class`` entries (:func:`palette_yaml`).

Masks saved in a lossy format (JPEG, lossy WebP) are refused unless ``allow_lossy_masks`` or
``mask_threshold`` is set: compression turns the pixels along every edge into values between the labels,
which are either refused later as unknown values or, worse, read silently as other classes.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from unet.data.errors import DataError, DataNotFoundError, ImageReadError, LossyMaskError, MaskValueError
from unet.data.io import lossy_format

MAX_LISTED = 10

# A gray mask is "near-binary" (a binary mask saved with soft edges) when more than this fraction of its
# pixels sit at its lowest and highest values and it holds more than two values.
NEAR_BINARY_FRACTION = 0.95

# The palette's word for "exclude these pixels" (mapped to the datamodule's ignore_index).
IGNORE = "ignore"

PaletteSpec = str | Path | Mapping[Any, Any] | Sequence[Sequence[Any]]


def _small_unsigned(mask: np.ndarray) -> bool:
    """Values a bincount covers cheaply (8/16-bit unsigned, bool): much faster than sorting."""
    return bool(mask.size) and mask.dtype.kind in "ub" and mask.dtype.itemsize <= 2


def _present_values(mask: np.ndarray) -> np.ndarray:
    """Sorted distinct values of an integer mask."""
    return (
        np.flatnonzero(np.bincount(mask.ravel(), minlength=1)) if _small_unsigned(mask) else np.unique(mask)
    )


def value_counts(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values of an integer mask and their pixel counts."""
    if _small_unsigned(mask):
        counts = np.bincount(mask.ravel(), minlength=1)
        values = np.flatnonzero(counts)
        return values, counts[values]
    return np.unique(mask, return_counts=True)


def binary_threshold(values: np.ndarray, counts: np.ndarray) -> int | None:
    """The midpoint of the extreme values when the gray mask is near-binary (see above), else ``None``."""
    if len(values) <= 2 or counts[0] + counts[-1] <= NEAR_BINARY_FRACTION * counts.sum():
        return None
    return (int(values[0]) + int(values[-1])) // 2


def pack_rgb(mask: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` 8-bit colours -> ``(H, W)`` int32 ``R << 16 | G << 8 | B``, one comparable int per pixel.

    A ``(H, W)`` mask is a colour mask whose pixels all happened to be gray (``io.label_array`` folds those):
    value ``v`` packs as the colour ``(v, v, v)``.
    """
    if mask.ndim == 2:
        return mask.astype(np.int32) * 0x010101
    channels = mask.astype(np.int32)
    return (channels[..., 0] << 16) | (channels[..., 1] << 8) | channels[..., 2]


def colour_name(packed: int) -> str:
    """``R,G,B`` of a packed colour, the spelling palette files use."""
    return f"{packed >> 16 & 255},{packed >> 8 & 255},{packed & 255}"


def parse_colour(colour: Any) -> int:
    """``"R,G,B"``, ``"#RRGGBB"`` or ``[R, G, B]`` -> the packed colour; a :class:`DataError` otherwise."""
    if isinstance(colour, str):
        text = colour.strip()
        hex_match = re.fullmatch(r"#([0-9a-fA-F]{6})", text)
        parts: list[Any] = (
            [int(hex_match[1][i : i + 2], 16) for i in (0, 2, 4)] if hex_match else text.split(",")
        )
    elif isinstance(colour, Sequence):
        parts = list(colour)
    else:
        parts = []
    try:
        rgb = [int(str(part).strip()) for part in parts]
    except ValueError:
        rgb = []
    if len(rgb) != 3 or not all(0 <= channel <= 255 for channel in rgb):
        raise DataError(f"mask_palette colour {colour!r} is not R,G,B (three values 0..255) or #RRGGBB")
    return rgb[0] << 16 | rgb[1] << 8 | rgb[2]


def load_palette(spec: PaletteSpec) -> list[tuple[Any, Any]]:
    """``(colour, class)`` entries of a palette: a YAML file path, a mapping, or ``[R, G, B, class]`` rows."""
    if isinstance(spec, str | Path):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise DataNotFoundError(f"mask_palette file {path} does not exist")
        try:
            spec = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise DataError(f"mask_palette file {path} is not valid YAML: {error}") from error
        if not isinstance(spec, Mapping):
            raise DataError(
                f"mask_palette file {path} must hold 'R,G,B: class' entries, got {type(spec).__name__}"
            )
    if isinstance(spec, Mapping):
        return list(spec.items())
    rows = list(spec)
    if not all(isinstance(row, Sequence) and not isinstance(row, str) and len(row) == 4 for row in rows):
        raise DataError("mask_palette as a list must hold [R, G, B, class] rows")
    return [(list(row[:3]), row[3]) for row in rows]


def palette_yaml(colours: Iterable[tuple[int, int]], header: str) -> str:
    """A palette file for ``(packed colour, pixel count)`` pairs, most frequent first, classes 0..n-1."""
    colours = sorted(colours, key=lambda item: -item[1])
    total = sum(count for _, count in colours) or 1
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for index, (packed, count) in enumerate(colours):
        lines.append(
            f'"{colour_name(packed)}": {index}'.ljust(20) + f"# {count} px ({100 * count / total:.2f}%)"
        )
    return "\n".join(lines) + "\n"


def _listed(items: Sequence[str]) -> str:
    return ", ".join(items[:MAX_LISTED]) + (" ..." if len(items) > MAX_LISTED else "")


class MaskEncoder:
    """Checks a raw ``(H, W)`` label image (or ``(H, W, 3)`` colour mask) and turns it into class indices.

    Without options the raw values must already be class indices in ``[0, num_classes)`` or
    ``ignore_index``. ``mapping`` (raw value -> class index or ``ignore_index``): every raw value present
    must be a key. ``threshold`` (two classes only): raw value ``> threshold`` is class 1, else 0.
    ``palette`` (see :func:`load_palette`; class ``"ignore"`` -> ``ignore_index``): every colour present
    must be listed. Output is ``uint8`` when all targets fit (what albumentations' fast paths expect),
    ``int32`` otherwise; the datamodule turns it into int64 at the end. ``allow_lossy``: accept mask files
    in a lossy format (see :meth:`check_lossless`).
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int | None = None,
        mapping: Mapping[int, int] | None = None,
        threshold: float | None = None,
        palette: PaletteSpec | None = None,
        allow_lossy: bool = False,
    ) -> None:
        given = [
            name
            for name, option in (
                ("mask_mapping", mapping),
                ("mask_threshold", threshold),
                ("mask_palette", palette),
            )
            if option is not None
        ]
        if len(given) > 1:
            raise DataError(f"{' and '.join(given)} are mutually exclusive: give one of them")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.allow_lossy = bool(allow_lossy)
        self.threshold = None if threshold is None else float(threshold)
        if self.threshold is not None and num_classes != 2:
            raise DataError(f"mask_threshold makes 2 classes (0 and 1) but num_classes is {num_classes}")
        self.mapping = None if mapping is None else {int(raw): int(target) for raw, target in mapping.items()}
        for raw, target in (self.mapping or {}).items():
            self._check_target("mask_mapping", str(raw), target)
        self.palette = None if palette is None else self._palette(palette)
        targets = [num_classes - 1] + ([] if ignore_index is None else [ignore_index])
        self.dtype = np.uint8 if min(targets) >= 0 and max(targets) <= 255 else np.int32

    def _is_target(self, value: int) -> bool:
        return 0 <= value < self.num_classes or value == self.ignore_index

    def _check_target(self, key: str, raw: str, target: int) -> None:
        if not self._is_target(target):
            raise DataError(
                f"{key} maps {raw} to {target}, which is neither a class index in "
                f"[0, {self.num_classes}) nor ignore_index ({self.ignore_index})"
            )

    def _palette(self, spec: PaletteSpec) -> dict[int, int]:
        """Packed colour -> class index or ignore_index; ``ignore`` needs an ignore_index."""
        palette: dict[int, int] = {}
        for colour, target in load_palette(spec):
            packed = parse_colour(colour)
            if str(target).strip().lower() == IGNORE:
                if self.ignore_index is None:
                    raise DataError(
                        f"mask_palette maps {colour_name(packed)} to ignore but ignore_index is null"
                    )
                target = self.ignore_index
            try:
                target = int(target)
            except (TypeError, ValueError):
                raise DataError(
                    f"mask_palette maps {colour_name(packed)} to {target!r}; expected a class index or {IGNORE}"
                ) from None
            self._check_target("mask_palette", colour_name(packed), target)
            palette[packed] = target
        if not palette:
            raise DataError("mask_palette is empty; list every mask colour as 'R,G,B: class'")
        return palette

    def __call__(self, raw: np.ndarray, source: str) -> np.ndarray:
        """Encode ``raw`` (H, W) or (H, W, 3) -> class indices (H, W); ``source`` names the file in errors."""
        if self.palette is not None:
            return self._lookup(pack_rgb(raw), self.palette, source)
        if raw.ndim == 3:
            raise ImageReadError(
                f"mask {source} is a colour image (3 differing channels); set mask_palette to map its colours "
                "to classes (unet-check-data lists them and writes a palette file)"
            )
        if self.threshold is not None:
            return (raw > self.threshold).astype(self.dtype)
        if self.mapping is not None:
            return self._lookup(raw, self.mapping, source)
        present = _present_values(raw)
        bad = [int(v) for v in present if not self._is_target(int(v))]
        if bad:
            expected = f"class indices 0..{self.num_classes - 1}" + (
                "" if self.ignore_index is None else f" or ignore_index {self.ignore_index}"
            )
            self._refuse(raw, bad, expected, source)
        return raw.astype(self.dtype, copy=False)

    def invalid_pixels(self, raw: np.ndarray) -> tuple[int, list[int]]:
        """Pixels of ``raw`` whose value no option turns into a class, and those distinct values (packed
        colours for a palette): what a lossy mask's compression made of its edges."""
        if self.threshold is not None:
            return 0, []
        if self.palette is not None:
            values, counts = value_counts(pack_rgb(raw))
            known = set(self.palette)
        elif raw.ndim == 3:
            values, counts = value_counts(pack_rgb(raw))  # a colour mask with no palette: no colour is known
            known = set()
        else:
            values, counts = value_counts(raw)
            known = set(self.mapping) if self.mapping is not None else None
        bad = [
            (int(value), int(count))
            for value, count in zip(values.tolist(), counts.tolist(), strict=True)
            if not (int(value) in known if known is not None else self._is_target(int(value)))
        ]
        return sum(count for _, count in bad), [value for value, _ in bad]

    def check_lossless(self, raw: np.ndarray, path: Path) -> None:
        """Refuse a raw mask read from a lossy file (JPEG, lossy WebP), unless ``allow_lossy`` or ``threshold``.

        A threshold is the cure for a lossy binary mask (ringing stays on its side of the midpoint), so it
        accepts them. The message counts the pixels whose values cannot be class indices.
        """
        kind = lossy_format(path)
        if kind is None or self.allow_lossy or self.threshold is not None:
            return
        count, values = self.invalid_pixels(raw)
        if count:
            shown = (
                [colour_name(v) for v in values]
                if raw.ndim == 3 or self.palette
                else [str(v) for v in values]
            )
            found = (
                f"{count} of its {raw.shape[0] * raw.shape[1]} pixels hold {len(values)} values that are not "
                f"classes ({_listed(shown)})"
            )
        else:
            found = "all its values are classes, but edge pixels may have turned into neighbouring classes"
        raise LossyMaskError(
            f"mask {path} is saved as {kind}, a lossy format that changes label values near edges: {found}; "
            "save masks losslessly (PNG), or set data.mask_threshold=T for a binary mask, or "
            "data.allow_lossy_masks=true to read its values as they are"
        )

    def _lookup(self, raw: np.ndarray, mapping: dict[int, int], source: str) -> np.ndarray:
        """``mapping[raw]`` through a look-up table indexed by raw value; unmapped values are refused."""
        present = _present_values(raw)
        bad = [int(v) for v in present if int(v) not in mapping]
        if bad and mapping is self.palette:
            colours, counts = np.unique(raw[~np.isin(raw, list(mapping))], return_counts=True)
            listed = [f"{colour_name(int(c))} ({int(n)} px)" for c, n in zip(colours, counts, strict=True)]
            raise MaskValueError(
                f"mask {source} holds colours not in mask_palette: {_listed(listed)}; expected only its "
                f"{len(mapping)} colours (unet-check-data lists every colour of the masks)"
            )
        if bad:
            self._refuse(raw, bad, f"only the mask_mapping keys {sorted(mapping)}", source)
        if not present.size:
            return raw.astype(self.dtype)
        low = min(int(present[0]), 0)  # shifted if negatives occur
        lut = np.zeros(int(present[-1]) - low + 1, dtype=self.dtype)
        for value in present:
            lut[int(value) - low] = mapping[int(value)]
        return lut[raw.astype(np.int64) - low] if low else lut[raw]

    def _refuse(self, raw: np.ndarray, bad: list[int], expected: str, source: str) -> None:
        """Raise the error for unexpected gray values, pointing to the option that fixes them."""
        midpoint = binary_threshold(*value_counts(raw))
        hint = (
            f"a binary mask with soft edges? set mask_threshold={midpoint}: values > {midpoint} become class 1"
            if midpoint is not None
            else "set mask_mapping to map raw values to classes"
        )
        raise MaskValueError(
            f"mask {source} holds values {_listed([str(v) for v in bad])}; expected {expected} ({hint})"
        )


class MaskCensus:
    """Distinct values (gray masks) or colours (colour masks) over many raw masks, with pixel counts.

    What ``unet-check-data`` reports when masks are not yet readable as classes: once any mask is a colour
    image, every mask counts as colours (gray ``v`` as ``(v, v, v)``), as :class:`MaskEncoder` reads them.
    """

    def __init__(self) -> None:
        self.gray: Counter[int] = Counter()
        self.colours: Counter[int] = Counter()
        self.is_colour = False

    def add(self, raw: np.ndarray) -> None:
        """Count the values of one raw ``(H, W)`` or ``(H, W, 3)`` mask."""
        self.is_colour = self.is_colour or raw.ndim == 3
        target, mask = (self.colours, pack_rgb(raw)) if raw.ndim == 3 else (self.gray, raw)
        values, counts = value_counts(mask)
        target.update(dict(zip(values.tolist(), counts.tolist(), strict=True)))

    def colour_counts(self) -> list[tuple[int, int]]:
        """``(packed colour, pixels)``, most frequent first (gray masks folded in as gray colours)."""
        merged = Counter(self.colours)
        merged.update({value * 0x010101: count for value, count in self.gray.items() if 0 <= value <= 255})
        return merged.most_common()

    def threshold(self) -> int | None:
        """The suggested ``mask_threshold`` when the gray masks are near-binary, else ``None``."""
        if self.is_colour or not self.gray:
            return None
        values = np.array(sorted(self.gray))
        return binary_threshold(values, np.array([self.gray[v] for v in values.tolist()]))
