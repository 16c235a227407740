"""Raw mask values -> class indices, with every unexpected value reported instead of silently trained on."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from unet.data.errors import DataError, MaskValueError

MAX_LISTED = 10


def _present_values(mask: np.ndarray) -> np.ndarray:
    """Sorted distinct values of an integer mask; a bincount when the values are small (much faster)."""
    if mask.size and mask.dtype.kind in "ub" and mask.dtype.itemsize <= 2:
        return np.flatnonzero(np.bincount(mask.ravel(), minlength=1))
    return np.unique(mask)


class MaskEncoder:
    """Checks a raw ``(H, W)`` label image and turns it into class indices.

    Without ``mapping`` the raw values must already be class indices in ``[0, num_classes)`` or
    ``ignore_index``. With ``mapping`` (raw value -> class index or ``ignore_index``) every raw value present
    must be a key. Output is ``uint8`` when all targets fit (what albumentations' fast paths expect),
    ``int32`` otherwise; the datamodule turns it into int64 at the end.
    """

    def __init__(
        self, num_classes: int, ignore_index: int | None = None, mapping: Mapping[int, int] | None = None
    ) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.mapping = None if mapping is None else {int(raw): int(target) for raw, target in mapping.items()}
        for raw, target in (self.mapping or {}).items():
            if not self._is_target(target):
                raise DataError(
                    f"mask_mapping maps {raw} to {target}, which is neither a class index in "
                    f"[0, {num_classes}) nor ignore_index ({ignore_index})"
                )
        targets = [num_classes - 1] + ([] if ignore_index is None else [ignore_index])
        self.dtype = np.uint8 if min(targets) >= 0 and max(targets) <= 255 else np.int32

    def _is_target(self, value: int) -> bool:
        return 0 <= value < self.num_classes or value == self.ignore_index

    def __call__(self, raw: np.ndarray, source: str) -> np.ndarray:
        """Encode ``raw`` (H, W) -> class indices (H, W); ``source`` names the file in error messages."""
        present = _present_values(raw)
        if self.mapping is None:
            bad = [int(v) for v in present if not self._is_target(int(v))]
            expected = f"class indices 0..{self.num_classes - 1}" + (
                "" if self.ignore_index is None else f" or ignore_index {self.ignore_index}"
            )
        else:
            bad = [int(v) for v in present if int(v) not in self.mapping]
            expected = f"only the mask_mapping keys {sorted(self.mapping)}"
        if bad:
            listed = ", ".join(map(str, bad[:MAX_LISTED])) + (" ..." if len(bad) > MAX_LISTED else "")
            hint = "" if self.mapping is not None else " (set mask_mapping to map raw values to classes)"
            raise MaskValueError(f"mask {source} holds values {listed}; expected {expected}{hint}")
        if self.mapping is None:
            return raw.astype(self.dtype, copy=False)
        if not present.size:
            return raw.astype(self.dtype)
        low = min(int(present[0]), 0)  # a look-up table indexed by raw value (shifted if negatives occur)
        lut = np.zeros(int(present[-1]) - low + 1, dtype=self.dtype)
        for value in present:
            lut[int(value) - low] = self.mapping[int(value)]
        return lut[raw.astype(np.int64) - low] if low else lut[raw]
