"""A class map as polygons: the outlines of each class's pixels, for clients that draw or store shapes.

The outlines follow the pixels' edges (a pixel at row ``r``, column ``c`` spans ``x`` in ``[c, c + 1]`` and
``y`` in ``[r, r + 1]``), so they are exact: filling a class's polygons with the even-odd rule gives back
its pixels, and their areas (outlines minus holes) add up to its pixel count. No tracing library is
needed: every edge between a pixel of the class and one outside it is an edge of an outline, directed
so the class lies on its left, and the edges are chained into closed loops at their shared corners.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

Point = tuple[int, int]


def boundary_edges(region: np.ndarray) -> list[tuple[Point, Point]]:
    """The directed edges ``((x0, y0), (x1, y1))`` between ``region``'s pixels ``(H, W)`` bool and the
    others (or the image's border), each with the region on its left as drawn (y pointing down)."""
    padded = np.pad(region, 1)
    inside = padded[1:-1, 1:-1]
    edges: list[tuple[Point, Point]] = []
    # (neighbour's offset (dy, dx), the edge's start and end corner offsets from the pixel's top-left)
    sides = (
        ((-1, 0), (1, 0), (0, 0)),  # top, drawn right to left
        ((0, -1), (0, 0), (0, 1)),  # left, drawn downwards
        ((1, 0), (0, 1), (1, 1)),  # bottom, drawn left to right
        ((0, 1), (1, 1), (1, 0)),  # right, drawn upwards
    )
    height, width = region.shape
    for (dy, dx), (sx, sy), (ex, ey) in sides:
        neighbour = padded[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]
        rows, columns = np.nonzero(inside & ~neighbour)
        edges += [
            ((x + sx, y + sy), (x + ex, y + ey)) for y, x in zip(rows.tolist(), columns.tolist(), strict=True)
        ]
    return edges


def chain_loops(edges: Sequence[tuple[Point, Point]]) -> list[list[Point]]:
    """Closed loops of corners from directed edges where every corner has as many edges in as out.

    At a corner where two loops touch diagonally, the loop turns rather than crossing, so each loop is
    a simple outline. Corners along a straight run are dropped.
    """
    leaving: dict[Point, list[Point]] = {}
    for start, end in edges:
        leaving.setdefault(start, []).append(end)
    loops = []
    for first in list(leaving):
        while leaving.get(first):
            loop, previous, corner = [first], first, leaving[first].pop()
            while corner != first:
                loop.append(corner)
                corner, previous = _next_corner(leaving, previous, corner), corner
            loops.append(_corners_only(loop))
    return loops


def _next_corner(leaving: dict[Point, list[Point]], previous: Point, corner: Point) -> Point:
    """The end of the edge leaving ``corner`` (arrived at from ``previous``): the left turn when two leave."""
    ends = leaving[corner]
    if len(ends) > 1:
        direction = (corner[0] - previous[0], corner[1] - previous[1])
        left = (direction[1], -direction[0])  # with y pointing down
        for index, end in enumerate(ends):
            if (end[0] - corner[0], end[1] - corner[1]) == left:
                return ends.pop(index)
    return ends.pop()


def _corners_only(loop: list[Point]) -> list[Point]:
    """``loop`` without the points where it goes straight on."""
    count = len(loop)
    kept = []
    for index, (x, y) in enumerate(loop):
        px, py = loop[index - 1]
        nx, ny = loop[(index + 1) % count]
        if (x - px) * (ny - y) - (y - py) * (nx - x) != 0:
            kept.append((x, y))
    return kept


def signed_area(points: Sequence[Point]) -> float:
    """The area a loop of :func:`chain_loops` encloses: positive for an outline, negative for a hole."""
    xs, ys = np.array(points, dtype=np.float64).T
    return float(np.dot(np.roll(xs, -1), ys) - np.dot(xs, np.roll(ys, -1))) / 2


def class_name(class_names: Sequence[str], index: int) -> str:
    """Class ``index``'s name, or the index as text for a model that names fewer classes."""
    return class_names[index] if index < len(class_names) else str(index)


def class_polygons(mask: np.ndarray, class_names: Sequence[str]) -> list[dict[str, Any]]:
    """Each class present in ``mask`` ``(H, W)``: its index, name, pixel count and outlines
    (``{"points": [[x, y], ...], "hole": bool}``; fill them with the even-odd rule)."""
    classes = []
    for index in np.unique(mask).tolist():
        region = mask == index
        polygons = []
        for loop in chain_loops(boundary_edges(region)):
            polygons.append({"points": [list(point) for point in loop], "hole": signed_area(loop) < 0})
        classes.append(
            {
                "index": index,
                "name": class_name(class_names, index),
                "pixels": int(region.sum()),
                "polygons": polygons,
            }
        )
    return classes
