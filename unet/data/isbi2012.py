"""``ISBI2012DataModule``: the ISBI 2012 EM membrane segmentation slices (the original U-Net paper's data)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from unet.data.folder import FolderDataModule

# Pixel statistics of the 30 training slices (all 512x512 pixels of images/00..29.png, in [0, 1] units),
# computed once: mean 0.49476, std 0.17264.
ISBI_MEAN = (0.4948,)
ISBI_STD = (0.1726,)

# Held-out slices. The 30 slices are consecutive sections of one volume, so neighbouring slices look alike:
# holding out contiguous blocks at the end of the stack keeps validation/test away from most training
# slices (a random split would put near-duplicates of every held-out slice in train).
ISBI_VAL_STEMS = tuple(f"{i:02d}" for i in range(20, 25))  # 20..24
ISBI_TEST_STEMS = tuple(f"{i:02d}" for i in range(25, 30))  # 25..29


class ISBI2012DataModule(FolderDataModule):
    """ISBI 2012 layout ``root/images/NN.png`` + ``root/masks/NN.png`` (NN = 00..29, 512x512 gray).

    Masks are 0 = membrane, 255 = cell; membrane is the foreground class 1, so ``mask_mapping`` is
    ``{0: 1, 255: 0}`` and the classes are ``["cell", "membrane"]`` (membrane is ~22% of pixels).
    Split: slices 00-19 train, 20-24 val, 25-29 test. Pass ``val_stems=None`` / ``test_stems=None`` with
    ``val_fraction`` / ``test_fraction`` for a seeded random split instead.

    Args:
        root: the directory holding ``images/`` and ``masks/``.
        **kwargs: any other :class:`FolderDataModule` / base keyword (batch_size, transforms, image_size,
            cache, ...).
    """

    def __init__(
        self,
        root: str,
        val_stems: Sequence[str] | None = ISBI_VAL_STEMS,
        test_stems: Sequence[str] | None = ISBI_TEST_STEMS,
        val_fraction: float = 0.0,
        test_fraction: float = 0.0,
        mean: Sequence[float] = ISBI_MEAN,
        std: Sequence[float] = ISBI_STD,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            root=root,
            num_classes=2,
            class_names=["cell", "membrane"],
            in_channels=1,
            mask_mapping={0: 1, 255: 0},
            ignore_index=None,
            mean=mean,
            std=std,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            val_stems=val_stems,
            test_stems=test_stems,
            **kwargs,
        )
