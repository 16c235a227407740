"""Whether a split's samples can go through its pipeline and be stacked into batches, found before training.

A batch stacks its samples into one ``(B, C, H, W)`` tensor, so every sample must leave the split's
pipeline at one size. Images of different sizes do when the pipeline crops or resizes to a fixed size;
without that, the DataLoader's collate would fail mid-epoch with a tensor-stacking traceback. A crop larger
than an image fails inside albumentations the same way. Both are found here on a few probe samples (the
extreme raw sizes), with the sizes of every sample read from memory or file headers, not decoded.
"""

from __future__ import annotations

from dataclasses import dataclass

from unet.data.errors import DataError
from unet.data.sources import SampleSource, sample_name, sample_sizes
from unet.data.transforms import SamplePipeline

# Samples run through the pipeline: the first of each extreme raw size (shortest, tallest, narrowest, widest).
MAX_PROBES = 4


@dataclass(frozen=True)
class Probe:
    """One sample run through a pipeline: its name, raw ``(H, W)`` and the ``(H, W)`` it leaves at."""

    index: int
    name: str
    size: tuple[int, int]
    output: tuple[int, int]


@dataclass(frozen=True)
class SizeClash:
    """Two samples that leave the pipeline at different sizes."""

    first: Probe
    second: Probe

    def describe(self) -> str:
        """``a.png is 30x40 (HxW) but b.png is 50x40``."""
        (h1, w1), (h2, w2) = self.first.size, self.second.size
        return f"{self.first.name} is {h1}x{w1} (HxW) but {self.second.name} is {h2}x{w2}"


def probe_indices(sizes: list[tuple[int, int]]) -> list[int]:
    """The first sample of the shortest, tallest, narrowest and widest raw sizes (at most :data:`MAX_PROBES`)."""
    picks = [
        min(range(len(sizes)), key=lambda i: sizes[i][0]),
        max(range(len(sizes)), key=lambda i: sizes[i][0]),
        min(range(len(sizes)), key=lambda i: sizes[i][1]),
        max(range(len(sizes)), key=lambda i: sizes[i][1]),
    ]
    return list(dict.fromkeys(picks))[:MAX_PROBES]


def probe(
    source: SampleSource, pipeline: SamplePipeline | None, what: str = "training"
) -> list[Probe] | None:
    """The probe samples of ``source`` and the sizes ``pipeline`` (``None``: none) leaves them at.

    ``None`` when the source cannot tell its sizes. A pipeline that fails on a probe (a crop larger
    than the image) raises :class:`DataError` naming the sample and its size; ``what`` names the split.
    """
    sizes = sample_sizes(source)
    if not sizes:
        return None
    probes = []
    for index in probe_indices(sizes):
        name, (height, width) = sample_name(source, index), sizes[index]
        output = sizes[index]
        if pipeline is not None and pipeline.compose is not None:
            try:
                output = tuple(pipeline(*source[index], 0, index)[0].shape[-2:])
            except DataError:
                raise
            except Exception as error:  # albumentations' CropSizeError, cv2 errors: not ours to type
                reason = str(error).splitlines()[0] if str(error) else type(error).__name__
                raise DataError(
                    f"the {what} augmentation fails on {name} ({height}x{width} HxW): {reason}; use a smaller "
                    "crop (augment.crop=N) or pad smaller images to it (data/augment=natural pads them)"
                ) from error
        probes.append(Probe(index, name, sizes[index], output))  # type: ignore[arg-type]
    return probes


def size_clash(probes: list[Probe] | None) -> SizeClash | None:
    """Two probes (:func:`probe`) that leave the pipeline at different sizes, or ``None``."""
    for first in probes or []:
        for second in probes or []:
            if first.output != second.output:
                return SizeClash(first, second)
    return None


def unbatchable_message(clash: SizeClash, batch_size: int) -> str:
    """The refusal of training samples that leave the augmentation at different sizes, with the keys that fix it."""
    return (
        f"training images of different sizes cannot share a batch of {batch_size}: {clash.describe()}, and "
        "the training augmentation does not crop or resize them to one size; add a crop "
        "(data/augment=natural or microscopy, its size augment.crop=N), resize every sample "
        "(data.image_size=[H,W]), or set data.batch_size=1"
    )
