"""Beyond segmentation: the U-Net's decoder stages in a small convolutional autoencoder.

Upsampling layers also serve where nothing is segmented: an autoencoder squeezes an image through a
bottleneck and its decoder has to upsample it back. Here the encoder is the U-Net's own (``unet``,
f x f max-pools) and every decoder stage is the U-Net's ``DecoderStage`` without a skip connection
(``fuse="none"``: nothing bypasses the bottleneck but max-unpooling's pool positions, as in SegNet),
so ``--methods`` compares the registered upsamplers at reconstructing the synthetic shapes (the
framework's default data). A demonstration, not a second framework: a plain loop, MSE, Adam.

    python examples/autoencoder.py                         # every method, x4 per level, 200 steps
    python examples/autoencoder.py --methods nearest transposed --scale 2 --depth 3
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from unet.data.shapes import generate_shapes
from unet.models import UPSAMPLERS
from unet.models.encoders.unet_encoder import UNetEncoder
from unet.models.unet import DecoderStage


class AutoEncoder(nn.Module):
    """``(B, 1, H, W)`` -> the U-Net encoder's deepest feature -> decoder stages without skips -> ``(B, 1, H, W)``."""

    def __init__(self, upsample: str, depth: int = 2, base_channels: int = 8, scale: int = 4) -> None:
        super().__init__()
        self.encoder = UNetEncoder(1, depth=depth, base_channels=base_channels, norm="batch", scale=scale)
        widths, factors = self.encoder.channels, self.encoder.factors
        self.decoder = nn.ModuleList(
            DecoderStage(widths[level + 1], None, widths[level], upsample, {}, "none", scale=factors[level])
            for level in reversed(range(depth))
        )
        self.head = nn.Conv2d(widths[0], 1, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        save_indices = self.decoder[0].upsample.needs_pool_indices
        features, indices = self.encoder(x, save_indices)
        y = features[-1]  # the bottleneck: (B, base * 2**depth, H / f**depth, W / f**depth)
        for stage, reference, level_indices in zip(
            self.decoder, features[-2::-1], indices[::-1], strict=True
        ):
            y = stage(y, reference, None, level_indices)  # the encoder feature gives the size only
        return self.head(y)


def shapes(count: int, size: int, seed: int) -> torch.Tensor:
    """``count`` synthetic images ``(count, 1, size, size)`` in [0, 1]."""
    images, _ = generate_shapes(count, (size, size), 1, (1, 4), 0.08, np.random.default_rng(seed))
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255


def reconstruction_error(
    method: str, train: torch.Tensor, test: torch.Tensor, steps: int, batch: int, **net: int
) -> dict[str, float]:
    """Train the autoencoder with ``method`` for ``steps`` steps; its test MSE, parameters and seconds."""
    torch.manual_seed(0)
    model = AutoEncoder(method, **net)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(steps):
        picked = train[torch.randint(len(train), (batch,), generator=generator)]
        loss = F.mse_loss(model(picked), picked)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        error = F.mse_loss(model(test), test).item()
    params = sum(parameter.numel() for parameter in model.parameters())
    return {"mse": error, "params": params, "seconds": time.perf_counter() - start}


def main(argv: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=sorted(UPSAMPLERS), choices=sorted(UPSAMPLERS))
    parser.add_argument("--scale", type=int, default=4, help="each level's pooling and upsampling factor")
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--base-channels", type=int, default=8)
    parser.add_argument("--size", type=int, default=32, help="image side, pixels")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args(argv)
    train, test = shapes(512, args.size, seed=0), shapes(64, args.size, seed=1)
    net = {"depth": args.depth, "base_channels": args.base_channels, "scale": args.scale}
    bottleneck = args.base_channels * 2**args.depth * (args.size // args.scale**args.depth) ** 2
    print(
        f"{args.size}x{args.size} images through a bottleneck of {bottleneck} values, x{args.scale} per level"
    )
    print("| method | test MSE | params | seconds |\n|---|---|---|---|")
    results = {}
    for method in args.methods:
        results[method] = reconstruction_error(method, train, test, args.steps, args.batch, **net)
        row = results[method]
        print(f"| `{method}` | {row['mse']:.5f} | {row['params']:,} | {row['seconds']:.1f} |", flush=True)
    return results


if __name__ == "__main__":
    main()
