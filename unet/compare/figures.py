"""The comparison report's figures: learning curves, a bar chart of the ranking metric, the verdict's
intervals and rank stability, sample predictions and zoomed crops of where the methods err along class boundaries;
and the score-over-time curves of a time-to-quality race (:mod:`unet.benchmarks.race`).

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
import torch.nn.functional as F
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from unet.evaluation.boundary import dilate, label_edges
from unet.utils.visualize import colourize

# Wrong pixels in error maps: one strong colour, which no pixel of the gray input beneath can take.
ERROR_COLOUR = torch.tensor([255, 32, 32], dtype=torch.uint8)


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


def plot_time_to_quality(
    curves: Mapping[str, Sequence[Mapping[str, float]]], summary: Mapping[str, Any], metric: str, path: Path
) -> Path:
    """Score against training minutes per contender, the target as a line, each time to target marked."""
    figure = Figure(figsize=(7, 4.5))
    axes = figure.add_subplot()
    for (name, curve), colour in zip(curves.items(), _colours(len(curves)), strict=True):
        minutes = [point["seconds"] / 60 for point in curve]
        axes.plot(minutes, [point["score"] for point in curve], color=colour, marker=".", label=name)
        reached = summary["contenders"][name]["time_to_target_s"]
        if reached is not None:
            axes.axvline(reached / 60, color=colour, linestyle=":", alpha=0.8)
    axes.axhline(summary["target"], color="0.3", linestyle="--", label=f"target {summary['target']:.4f}")
    axes.set(
        xlabel="training time (minutes)", ylabel=metric, title=f"{metric} on held-out data over training time"
    )
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return _save(figure, path)


def _as_rgb(image: torch.Tensor) -> np.ndarray:
    """``(3, H, W)``, ``(1, H, W)`` or ``(H, W)`` uint8 to an ``(H, W, 3)`` array for ``imshow``."""
    image = image.detach().cpu()
    if image.dim() == 2:
        image = image[None]
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    return image[:3].permute(1, 2, 0).numpy()


def _in_order(predictions: Mapping[str, Any], methods: Sequence[str]) -> list[str]:
    """The methods of ``predictions`` in ``methods`` order, those not in ``methods`` at the end (none dropped)."""
    return [m for m in methods if m in predictions] + [m for m in predictions if m not in methods]


def plot_qualitative(qualitative: Mapping[str, Any], methods: Sequence[str], path: Path) -> Path:
    """One row: input | ground truth | each method's prediction, in ``methods`` order, class-coloured.

    ``qualitative`` holds ``image`` ``(3, H, W)`` uint8, ``target`` ``(H, W)``, ``predictions``
    ``{method: (H, W)}`` and optionally ``ignore_index``. Predictions of methods not in ``methods``
    follow at the end, so none is dropped.
    """
    ignore_index = qualitative.get("ignore_index")
    predictions = qualitative["predictions"]
    order = _in_order(predictions, methods)
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


def plot_confidence_intervals(
    methods: Sequence[str],
    means: Sequence[float],
    intervals: Sequence[tuple[float, float]],
    path: Path,
    label: str,
    reference: str | None = None,
) -> Path | None:
    """Each method's mean with its 95 % CI ``(low, high)`` as a horizontal error bar, ``methods`` top to
    bottom (pass them best first); ``reference`` in black with a dashed line at its mean, so every
    other interval reads against it. ``None`` (nothing written) without methods.
    """
    if not methods:
        return None
    figure = Figure(figsize=(6.5, 1.1 + 0.4 * len(methods)))
    axes = figure.add_subplot()
    for position, (method, mean, (low, high)) in enumerate(zip(methods, means, intervals, strict=True)):
        marked = method == reference
        colour = "black" if marked else "tab:blue"
        error = [[max(0.0, mean - low)], [max(0.0, high - mean)]]  # a percentile CI may miss the mean
        axes.errorbar(mean, position, xerr=error, fmt="s" if marked else "o", color=colour, capsize=4)
        axes.annotate(f"{mean:.3f}", (high, position), xytext=(5, 0), textcoords="offset points",
                      va="center", fontsize="small")  # fmt: skip
        if marked:
            axes.axvline(mean, color="black", linestyle="--", linewidth=0.8, alpha=0.6)
    names = [f"{method} (reference)" if method == reference else method for method in methods]
    axes.set_yticks(range(len(methods)), names)
    axes.set_ylim(len(methods) - 0.5, -0.5)  # best at the top
    axes.margins(x=0.15)
    axes.set(xlabel=label, title=f"{label}: mean with 95 % bootstrap CI")
    axes.grid(axis="x", alpha=0.3)
    return _save(figure, path)


def error_map(
    prediction: torch.Tensor, target: torch.Tensor, ignore_index: int | None = None
) -> torch.Tensor:
    """The wrong pixels ``(H, W)`` bool of a prediction ``(H, W)`` against its target ``(H, W)``.

    ``ignore_index`` pixels are never wrong: their class is unknown, and the scores skip them too.
    """
    prediction, target = prediction.long().cpu(), target.long().cpu()
    wrong = prediction != target
    return wrong & (target != ignore_index) if ignore_index is not None else wrong


def error_overlay(image: torch.Tensor, wrong: torch.Tensor) -> torch.Tensor:
    """The input ``(3, H, W)`` or ``(1, H, W)`` uint8 in dimmed gray, ``wrong`` ``(H, W)`` pixels in
    :data:`ERROR_COLOUR`: ``(3, H, W)`` uint8. Gray keeps the structure readable and leaves colour to the errors."""
    rgb = image.detach().cpu().float().expand(3, -1, -1)
    gray = 0.7 * (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])
    overlay = gray.round().to(torch.uint8).expand(3, -1, -1).clone()
    overlay[:, wrong.cpu()] = ERROR_COLOUR[:, None]
    return overlay


def class_boundaries(target: torch.Tensor, ignore_index: int | None = None) -> torch.Tensor:
    """The target's class-boundary pixels ``(H, W)`` bool of a target ``(H, W)``, as boundary F1 defines them
    (a valid 4-neighbour of another class; ``ignore_index`` pixels neither are nor make boundaries)."""
    target = target.long().cpu()[None]
    valid = target != ignore_index if ignore_index is not None else torch.ones_like(target, dtype=torch.bool)
    return label_edges(target, valid)[0]


def crop_window(
    target: torch.Tensor,
    predictions: Sequence[torch.Tensor],
    ignore_index: int | None = None,
    fraction: float = 0.25,
    min_size: int = 32,
    tolerance: int = 2,
) -> tuple[int, int, int]:
    """The square crop ``(top, left, size)`` of a target ``(H, W)`` where upsamplers differ most.

    It holds the most pixels within ``tolerance`` px of a target class boundary where the predictions
    ``(H, W)`` disagree with each other or with the target (on valid pixels, the union of their error
    maps: predictions that differ cannot all be right); ties go to the most boundary pixels, then to
    the topmost, leftmost window, so the choice is deterministic. ``size`` is ``fraction`` of the
    shorter side, at least ``min_size``, at most the image.
    """
    height, width = target.shape
    size = min(height, width, max(min_size, round(fraction * min(height, width))))
    edges = class_boundaries(target, ignore_index)
    disagree = torch.zeros_like(edges)
    for prediction in predictions:
        disagree |= error_map(prediction, target, ignore_index)
    # Lexicographic (disagreement, boundary) in one integer: a window holds at most size**2 of either.
    score = (disagree & dilate(edges[None], tolerance)[0]).long() * (size * size + 1) + edges.long()
    integral = F.pad(score.cumsum(0).cumsum(1), (1, 0, 1, 0))  # (H + 1, W + 1)
    sums = (
        integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size] + integral[:-size, :-size]
    )
    top, left = divmod(int(sums.flatten().argmax()), sums.shape[1])  # argmax: the first maximum
    return top, left, size


def plot_boundary_crops(
    qualitative: Mapping[str, Any], methods: Sequence[str], path: Path, per_row: int = 4
) -> Path:
    """A zoomed crop of :func:`plot_qualitative`'s image where the methods err along class boundaries.

    Whole thumbnails hide the pixels where upsamplers differ; the crop (:func:`crop_window`) shows
    them: the input with the crop outlined, the input and ground-truth crops, then per method (in
    ``methods`` order, ``per_row`` to a row) its prediction and its error map (:func:`error_overlay`;
    ``ignore_index`` pixels are not counted). Crops are drawn with nearest interpolation, so each
    pixel stays a visible square. ``qualitative`` as for :func:`plot_qualitative`.
    """
    ignore_index = qualitative.get("ignore_index")
    predictions = qualitative["predictions"]
    order = _in_order(predictions, methods)
    image, target = qualitative["image"], torch.as_tensor(qualitative["target"])
    top, left, size = crop_window(target, [torch.as_tensor(predictions[m]) for m in order], ignore_index)

    def crop(tensor: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(tensor)[..., top : top + size, left : left + size]

    rows = max(1, math.ceil(len(order) / per_row))
    columns = 3 + 2 * min(len(order), per_row)
    figure = Figure(figsize=(2.0 * columns, 2.3 * rows + 0.4))
    panels = [
        (0, "input (crop outlined)", _as_rgb(image)),
        (1, "input crop", _as_rgb(crop(image))),
        (2, "ground truth crop", _as_rgb(colourize(crop(target), ignore_index))),
    ]
    for index, method in enumerate(order):
        cell = (index // per_row) * columns + 3 + 2 * (index % per_row)
        prediction = crop(predictions[method])
        wrong = error_map(prediction, crop(target), ignore_index)
        panels += [
            (cell, method, _as_rgb(colourize(prediction, ignore_index))),
            (cell + 1, f"errors: {int(wrong.sum())} px", _as_rgb(error_overlay(crop(image), wrong))),
        ]
    for cell, title, rgb in panels:
        axes = figure.add_subplot(rows, columns, cell + 1)
        axes.imshow(rgb, interpolation="nearest")
        axes.set_title(title, fontsize="small")
        axes.set_axis_off()
        if cell == 0:
            axes.add_patch(
                Rectangle((left - 0.5, top - 0.5), size, size, fill=False, edgecolor="yellow", linewidth=1.5)
            )
    figure.suptitle(
        f"{size}x{size} px crop (rows {top}-{top + size - 1}, columns {left}-{left + size - 1}) where the methods "
        "err most along class boundaries; red: wrong pixels (void not counted)",
        fontsize="medium",
    )
    return _save(figure, path)
