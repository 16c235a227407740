"""The figures of docs/upsampling.md ("Upsampling, explained"), drawn from the project's own layers.

The numbers come from :mod:`unet.models.upsampling_examples` (the registered upsamplers on a 4x4
example); this script only draws them, each cell labelled with its value. mkdocs runs it before each
build (``hooks:`` in mkdocs.yml); ``python docs/gen_upsampling_figures.py`` writes them alone. The
PNGs are generated (git-ignored), never edited by hand.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from unet.models.upsampling_examples import (  # noqa: E402
    FEATURES,
    max_pooled,
    overlap_counts,
    pooling_style_outputs,
    transposed_outputs,
)

OUTPUT = Path(__file__).resolve().parent / "upsampling"
TITLES = {
    "nearest": "nearest",
    "bed_of_nails": "bed of nails (top left)",
    "maxunpool": "max-unpooling (remembered positions)",
    "bilinear": "bilinear",
    "pixelshuffle": "pixel shuffle (sub-pixel weights 1, .75, .5, .25)",
}


def _panel(axis: Any, values: torch.Tensor, title: str, marked: set[int] = frozenset()) -> None:
    """One map, each cell labelled with its value (integers without decimals); ``marked`` flat
    positions are outlined."""
    top = max(float(values.max()), 4.0)
    axis.imshow(values.numpy(), cmap="Blues", vmin=0, vmax=top)
    width = values.shape[1]
    small = values.numel() > 64
    cells = torch.cartesian_prod(*map(torch.arange, values.shape)).tolist()
    for (row, col), value in zip(cells, values.flatten().tolist(), strict=True):
        text = f"{value:.0f}" if value.is_integer() else f"{value:.2f}"
        colour = "white" if value > 0.6 * top else "black"
        axis.text(col, row, text, ha="center", va="center", fontsize=6 if small else 9, color=colour)
        if row * width + col in marked:
            axis.add_patch(
                plt.Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2)
            )
    axis.set_title(title, fontsize=9)
    axis.set_xticks([])
    axis.set_yticks([])


def _figure(panels: list[tuple[torch.Tensor, str, set[int]]], columns: int) -> bytes:
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.2 * rows), squeeze=False)
    for axis in axes.flat[len(panels) :]:
        axis.axis("off")
    for axis, (values, title, marked) in zip(axes.flat, panels, strict=False):
        _panel(axis, values, title, marked)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()


def figures() -> dict[str, bytes]:
    """Each figure's PNG by file name."""
    pooled, indices = max_pooled()
    positions = set(indices.flatten().tolist())
    outputs = pooling_style_outputs()
    pooling = [(FEATURES, "4x4 feature map (2x2 max positions)", positions), (pooled, "2x2 max-pool", set())]
    pooling += [(outputs[name], TITLES[name], positions if name == "maxunpool" else set()) for name in TITLES]
    transposed = [(values, f"transposed {label}", set()) for label, values in transposed_outputs().items()]
    overlap = [(counts, f"contributions {label}", set()) for label, counts in overlap_counts(size=3).items()]
    return {
        "pooling.png": _figure(pooling, columns=4),
        "transposed.png": _figure(transposed, columns=3),
        "overlap.png": _figure(overlap, columns=3),
    }


def write(output: Path = OUTPUT) -> list[Path]:
    """Write the figures into ``output``; returns those whose content changed (none: up to date, so
    ``mkdocs serve`` does not loop)."""
    output.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, png in figures().items():
        path = output / name
        if not path.exists() or path.read_bytes() != png:
            path.write_bytes(png)
            changed.append(path)
    return changed


def on_pre_build(config: Any) -> None:
    """mkdocs hook: the figures are written before mkdocs collects the pages."""
    write()


if __name__ == "__main__":
    print(f"{OUTPUT}: {len(write())} figure(s) written")
