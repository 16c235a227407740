"""The comparison report's figures: learning curves, a bar chart of the ranking metric, sample predictions.

Figures are drawn on :class:`~matplotlib.figure.Figure` objects with an Agg canvas, never through
``pyplot``: this works without a display and leaves the process-wide matplotlib backend alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from unet.utils.visualize import colourize


def _save(figure: Figure, path: Path) -> Path:
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    return path


def _colours(count: int) -> list[tuple[float, ...]]:
    """One distinct colour per method (tab10, or tab20 for more than ten methods)."""
    cmap = colormaps["tab10" if count <= 10 else "tab20"]
    return [cmap(index % cmap.N) for index in range(count)]


def plot_curves(
    records: Sequence[Mapping[str, Any]], methods: Sequence[str], path: Path, metric: str = "val/miou"
) -> Path | None:
    """``metric`` per epoch for each method: mean over its ok runs, shaded between their min and max.

    Seeds may stop at different epochs (early stopping); each epoch uses the runs that reached it.
    Returns ``None`` (and writes nothing) when no run has a history of ``metric``.
    """
    figure = Figure(figsize=(7, 4.5))
    axes = figure.add_subplot()
    plotted = False
    for method, colour in zip(methods, _colours(len(methods)), strict=True):
        by_epoch: dict[int, list[float]] = {}
        runs = 0
        for record in records:
            if record["method"] != method or record.get("status") != "ok":
                continue
            points = [(row["epoch"], row[metric]) for row in record.get("history") or [] if metric in row]
            runs += bool(points)
            for epoch, value in points:
                by_epoch.setdefault(int(epoch), []).append(float(value))
        if not by_epoch:
            continue
        epochs = sorted(by_epoch)
        values = [np.asarray(by_epoch[epoch]) for epoch in epochs]
        axes.plot(epochs, [v.mean() for v in values], color=colour, label=f"{method} (n={runs})")
        axes.fill_between(
            epochs, [v.min() for v in values], [v.max() for v in values], color=colour, alpha=0.2
        )
        plotted = True
    if not plotted:
        return None
    axes.set(xlabel="epoch", ylabel=metric, title=f"{metric} per epoch (mean over seeds, band: min to max)")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return _save(figure, path)


def plot_bars(rows: Sequence[Mapping[str, Any]], metric: str, path: Path) -> Path | None:
    """Bar per method of ``<metric>_mean`` with ``<metric>_std`` error bars, in the rows' order.

    Methods without a value (all runs failed) are left out; returns ``None`` when none has one.
    """
    shown = [row for row in rows if math.isfinite(row.get(f"{metric}_mean", math.nan))]
    if not shown:
        return None
    means = [row[f"{metric}_mean"] for row in shown]
    stds = [row[f"{metric}_std"] for row in shown]
    figure = Figure(figsize=(max(4.0, 0.9 * len(shown) + 1.5), 4.5))
    axes = figure.add_subplot()
    positions = np.arange(len(shown))
    axes.bar(positions, means, yerr=stds, capsize=4, color=_colours(len(shown)))
    for position, mean, std in zip(positions, means, stds, strict=True):  # value above the error bar
        axes.annotate(f"{mean:.3f}", (position, mean + std), ha="center", va="bottom", fontsize="small",
                      xytext=(0, 3), textcoords="offset points")  # fmt: skip
    axes.set_xticks(positions, [row["method"] for row in shown], rotation=30, ha="right")
    axes.set(ylabel=metric, title=f"{metric}: mean ± std over seeds")
    axes.grid(axis="y", alpha=0.3)
    return _save(figure, path)


def _as_rgb(image: torch.Tensor) -> np.ndarray:
    """``(3, H, W)``, ``(1, H, W)`` or ``(H, W)`` uint8 to an ``(H, W, 3)`` array for ``imshow``."""
    image = image.detach().cpu()
    if image.dim() == 2:
        image = image[None]
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    return image[:3].permute(1, 2, 0).numpy()


def plot_qualitative(qualitative: Mapping[str, Any], methods: Sequence[str], path: Path) -> Path:
    """One row: input | ground truth | each method's prediction, in ``methods`` order, class-coloured.

    ``qualitative`` holds ``image`` ``(3, H, W)`` uint8, ``target`` ``(H, W)``, ``predictions``
    ``{method: (H, W)}`` and optionally ``ignore_index``. Predictions of methods not in ``methods``
    follow at the end, so none is dropped.
    """
    ignore_index = qualitative.get("ignore_index")
    predictions = qualitative["predictions"]
    order = [m for m in methods if m in predictions] + [m for m in predictions if m not in methods]
    panels = [("input", _as_rgb(qualitative["image"])), ("ground truth", qualitative["target"])]
    panels += [(method, predictions[method]) for method in order]
    figure = Figure(figsize=(2.4 * len(panels), 2.8))
    for index, (title, panel) in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), index + 1)
        rgb = panel if index == 0 else _as_rgb(colourize(torch.as_tensor(panel), ignore_index))
        axes.imshow(rgb, interpolation="nearest")
        axes.set_title(title, fontsize="medium")
        axes.set_axis_off()
    return _save(figure, path)


def plot_rank_stability(
    methods: Sequence[str], rank_share: Sequence[Sequence[float]], path: Path, title: str
) -> Path | None:
    """How often each method takes each rank under the bootstrap, as a heat map (methods best first).

    ``rank_share[m][k]`` is the share of draws in which ``methods[m]`` ranks ``k + 1``; a method whose
    row is spread over many ranks is not reliably placed. ``None`` (nothing written) for < 2 methods.
    """
    if len(methods) < 2:
        return None
    shares = np.asarray(rank_share, dtype=float)
    figure = Figure(figsize=(1.2 + 0.6 * shares.shape[1], 0.9 + 0.45 * len(methods)))
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    for (row, column), share in np.ndenumerate(shares):
        if share >= 0.005:
            colour = "white" if share > 0.6 else "black"
            axes.text(column, row, f"{share:.0%}", ha="center", va="center", fontsize=8, color=colour)
    axes.set_xticks(range(shares.shape[1]), [str(rank + 1) for rank in range(shares.shape[1])])
    axes.set_yticks(range(len(methods)), list(methods))
    axes.set_xlabel("rank under the bootstrap")
    axes.set_title(title, fontsize=10)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of draws")
    return _save(figure, path)
