"""Procedural shapes images: the framework's built-in data, generated in memory with vectorised numpy.

Each image has a smooth random background (low-frequency noise plus a linear gradient) and 1..k
non-overlapping shapes, each a circle, square or triangle of random size and rotation, placed in distinct
cells of a grid. A shape's fill is its local background shifted by a random contrast of random sign, plus
a faint stripe texture, and the whole image gets per-pixel Gaussian noise. Dark and bright shapes of every
class sit on backgrounds of every brightness, so brightness says "a shape is here" but only the outline
says which one.
"""

from __future__ import annotations

import math

import numpy as np

CLASS_NAMES: tuple[str, ...] = ("background", "circle", "square", "triangle")

# Shape extents relative to the size parameter s (all fit in a disc of radius s, with similar areas).
CIRCLE_RADIUS = 0.75
SQUARE_HALF_SIDE = 0.65
TRIANGLE_INRADIUS = 0.5  # circumradius 1

BACKGROUND_GRID = 4  # control points per side of the low-frequency background
CHUNK = 256  # images rendered at once: bounds the memory of the (chunk, H, W) temporaries


def _interpolation_matrix(size: int, points: int) -> np.ndarray:
    """``(size, points)`` weights that linearly interpolate ``points`` control values onto ``size`` pixels."""
    position = np.linspace(0.0, points - 1.0, size)
    low = np.minimum(np.floor(position).astype(int), points - 2)
    frac = position - low
    weights = np.zeros((size, points), dtype=np.float32)
    weights[np.arange(size), low] = 1.0 - frac
    weights[np.arange(size), low + 1] = frac
    return weights


def _shape_parameters(
    rng: np.random.Generator, n: int, size: tuple[int, int], channels: int, num_shapes: tuple[int, int]
) -> dict[str, np.ndarray]:
    """All random choices for ``n`` images, drawn up front so the result does not depend on chunking.

    Shape ``j`` of an image lives in its own grid cell (origin ``top``/``left``, ``(cy, cx)`` relative to
    it) and fits in a disc of radius ``scale`` inside that cell, so shapes never overlap.
    """
    height, width = size
    slots = num_shapes[1]
    grid = math.ceil(math.sqrt(slots))
    cell_h, cell_w = height / grid, width / grid
    half = min(cell_h, cell_w) / 2
    cells = rng.random((n, grid * grid)).argsort(axis=1)[:, :slots]
    count = rng.integers(num_shapes[0], num_shapes[1] + 1, size=n)
    scale = rng.uniform(0.55, 0.95, (n, slots)) * half
    slack = half - scale
    top = np.floor(cells // grid * cell_h).astype(np.int64)
    left = np.floor(cells % grid * cell_w).astype(np.int64)
    params = {
        "label": np.where(
            np.arange(slots) < count[:, None], rng.integers(1, len(CLASS_NAMES), (n, slots)), 0
        ),
        "scale": scale,
        "top": top,
        "left": left,
        "cy": (cells // grid + 0.5) * cell_h - top + rng.uniform(-1, 1, (n, slots)) * slack,
        "cx": (cells % grid + 0.5) * cell_w - left + rng.uniform(-1, 1, (n, slots)) * slack,
        "angle": rng.uniform(0, 2 * np.pi, (n, slots)),
        "contrast": rng.uniform(0.2, 0.4, (n, slots, 1)) * rng.choice([-1.0, 1.0], (n, slots, 1)),
        "tint": rng.uniform(0.4, 1.0, (n, slots, channels)) if channels > 1 else np.ones((n, slots, 1)),
        "texture": rng.uniform(0.0, 0.08, (n, slots)),
        "frequency": rng.uniform(0.3, 0.9, (n, slots)),
        "stripe_angle": rng.uniform(0, np.pi, (n, slots)),
        "phase": rng.uniform(0, 2 * np.pi, (n, slots)),
        "coarse": rng.uniform(0.15, 0.85, (n, BACKGROUND_GRID, BACKGROUND_GRID, channels)),
        "gradient": rng.uniform(-0.2, 0.2, (n, 1, 1, 1)),
        "gradient_angle": rng.uniform(0, 2 * np.pi, (n, 1, 1, 1)),
    }
    return {
        key: value.astype(np.float32) if value.dtype.kind == "f" else value for key, value in params.items()
    }


def _inside(label: np.ndarray, u: np.ndarray, v: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Which pixels lie in each image's shape; ``u, v``: ``(B, h, w)`` coordinates in the shape's frame."""
    circle = u**2 + v**2 <= (CIRCLE_RADIUS * scale) ** 2
    square = np.maximum(np.abs(u), np.abs(v)) <= SQUARE_HALF_SIDE * scale
    triangle = np.ones_like(circle)
    for k in range(3):
        normal = np.pi / 2 + 2 * np.pi * k / 3
        triangle &= (
            u * np.float32(np.cos(normal)) + v * np.float32(np.sin(normal)) <= TRIANGLE_INRADIUS * scale
        )
    label = label[:, None, None]
    return np.where(label == 1, circle, np.where(label == 2, square, triangle & (label == 3)))


def _background(p: dict[str, np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """Low-frequency noise (bilinear upsampling of a coarse grid) plus a linear ramp: ``(B, H, W, C)``."""
    height, width = size
    coarse = p["coarse"]  # (B, g, g, C)
    batch, grid, _, channels = coarse.shape
    rows = _interpolation_matrix(height, grid) @ coarse.reshape(batch, grid, grid * channels)
    rows = rows.reshape(batch, height, grid, channels).transpose(0, 1, 3, 2)  # (B, H, C, g)
    image = (rows @ _interpolation_matrix(width, grid).T).transpose(0, 1, 3, 2)  # (B, H, W, C)
    ys = np.linspace(-0.5, 0.5, height, dtype=np.float32)[None, :, None, None]
    xs = np.linspace(-0.5, 0.5, width, dtype=np.float32)[None, None, :, None]
    angle = p["gradient_angle"]
    return image + p["gradient"] * (np.cos(angle) * xs + np.sin(angle) * ys)


def _render(
    p: dict[str, np.ndarray], size: tuple[int, int], noise: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Render one chunk: images float32 ``(B, H, W, C)`` (unclipped) and masks uint8 ``(B, H, W)``.

    Each shape is rasterised only on its cell's patch and written pixel by pixel where it is inside.
    """
    height, width = size
    image = _background(p, size)
    batch = image.shape[0]
    mask = np.zeros((batch, height, width), dtype=np.uint8)
    patch_h = min(height, int(np.ceil((p["cy"] + p["scale"]).max())) + 1)
    patch_w = min(width, int(np.ceil((p["cx"] + p["scale"]).max())) + 1)
    ys = (np.arange(patch_h, dtype=np.float32) + 0.5)[None, :, None]
    xs = (np.arange(patch_w, dtype=np.float32) + 0.5)[None, None, :]
    for slot in range(p["label"].shape[1]):
        col = (slice(None), slot, None, None)
        cos, sin = np.cos(p["angle"][col]), np.sin(p["angle"][col])
        dy, dx = ys - p["cy"][col], xs - p["cx"][col]
        u, v = dx * cos + dy * sin, dy * cos - dx * sin
        b, y, x = np.nonzero(_inside(p["label"][:, slot], u, v, p["scale"][col]))
        u, v = u[b, y, x], v[b, y, x]
        y, x = y + p["top"][b, slot], x + p["left"][b, slot]
        # Fill: the background under the centre, shifted by the contrast (flipped where it would clip).
        cy = np.clip((p["cy"][:, slot] + p["top"][:, slot]).astype(int), 0, height - 1)
        cx = np.clip((p["cx"][:, slot] + p["left"][:, slot]).astype(int), 0, width - 1)
        centre = image[np.arange(batch), cy, cx]  # (B, C)
        shift = p["contrast"][:, slot] * p["tint"][:, slot]
        fill = centre + np.where((centre + shift < 0.05) | (centre + shift > 0.95), -shift, shift)
        stripe = p["stripe_angle"][b, slot]
        texture = p["texture"][b, slot] * np.sin(
            p["frequency"][b, slot] * (u * np.cos(stripe) + v * np.sin(stripe)) + p["phase"][b, slot]
        )
        image[b, y, x] = fill[b] + texture[:, None]
        mask[b, y, x] = p["label"][b, slot]
    image += noise * rng.standard_normal(image.shape, dtype=np.float32)
    return image, mask


def generate_shapes(
    n: int,
    size: tuple[int, int],
    channels: int,
    num_shapes: tuple[int, int],
    noise: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images uint8 ``(n, H, W, channels)`` and masks uint8 ``(n, H, W)`` with labels 0..3.

    Deterministic given the state of ``rng``.
    """
    params = _shape_parameters(rng, n, size, channels, num_shapes)
    images = np.empty((n, *size, channels), dtype=np.uint8)
    masks = np.empty((n, *size), dtype=np.uint8)
    for start in range(0, n, CHUNK):
        chunk = {key: value[start : start + CHUNK] for key, value in params.items()}
        image, mask = _render(chunk, size, noise, rng)
        images[start : start + CHUNK] = np.rint(np.clip(image, 0.0, 1.0) * 255)
        masks[start : start + CHUNK] = mask
    return images, masks
