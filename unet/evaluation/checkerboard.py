"""Checkerboard-artifact score: how much of the logits' spatial variation alternates every other pixel.

Stride-2 transposed convolutions and bed-of-nails unpooling leave a pattern that repeats every two
pixels (Odena et al., 2016, "Deconvolution and Checkerboard Artifacts"); smooth upsamplers do not.
That pattern lives at the Nyquist frequency, so its share of the spectrum measures it directly.

Definition, per image and class channel of the logits ``(H, W)``:

1. Crop to even height and width (drop the last row / column when odd), so that the period-2
   frequency falls exactly on an FFT bin.
2. Remove the spatial mean and take the 2-D power spectrum ``P = |FFT2(x)|**2``.
3. Nyquist energy: the sum of ``P`` over the Nyquist row (vertical frequency 1/2 cycle per pixel)
   and the Nyquist column (horizontal 1/2), their shared corner counted once. Any map that flips
   sign every pixel along one axis, ``x[i, j] = (-1)**i * f(j)``, has all its energy there, whatever
   ``f`` does along the other axis. No neighbourhood of bins is added: on small maps one bin either
   side is already a sizeable band of ordinary (non-artifact) high frequencies.
4. Total energy: the sum of ``P`` over every bin but DC (the mean is removed, so: all of it).

The score is Nyquist energy / total energy, with both energies summed over channels and images
before the ratio (energy-weighted: a nearly flat channel barely counts, and an epoch's score is
exact rather than a mean of batch scores). It lies in [0, 1]: ~0 for smooth maps, 1 for a pure
``(-1)**(i + j)`` checkerboard. Constant maps have no spatial variation and score 0.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric


def checkerboard_energies_per_image(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nyquist and total (non-DC) spectral energy of each image of logits ``(B, K, H, W)``: two ``(B,)``
    float64 tensors, each summed over the image's channels."""
    if logits.dim() != 4:
        raise ValueError(f"expected logits (B, K, H, W), got shape {tuple(logits.shape)}")
    height, width = logits.shape[-2] // 2 * 2, logits.shape[-1] // 2 * 2
    if height < 2 or width < 2:
        raise ValueError(f"need at least 2x2 pixels, got {tuple(logits.shape[-2:])}")
    x = logits[..., :height, :width].detach().double()
    # A constant channel becomes exactly zero, so FFT rounding noise cannot read as a pattern.
    varies = x.amax(dim=(-2, -1), keepdim=True) > x.amin(dim=(-2, -1), keepdim=True)
    x = (x - x.mean(dim=(-2, -1), keepdim=True)) * varies
    power = torch.fft.fft2(x).abs().square()  # (B, K, H, W)
    nyquist_row, nyquist_col = power[..., height // 2, :], power[..., :, width // 2]
    corner = power[..., height // 2, width // 2]
    nyquist = (nyquist_row.sum(-1) + nyquist_col.sum(-1) - corner).sum(-1)
    total = (power.sum(dim=(-2, -1)) - power[..., 0, 0]).sum(-1)
    return nyquist, total


def checkerboard_energies(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nyquist and total (non-DC) spectral energy of logits ``(B, K, H, W)``, each summed to a scalar."""
    nyquist, total = checkerboard_energies_per_image(logits)
    return nyquist.sum(), total.sum()


def score_from_energies(nyquist: torch.Tensor, total: torch.Tensor) -> float:
    """Nyquist share of the energy; 0 for maps without spatial variation."""
    if total.item() <= 0:
        return 0.0
    return (nyquist / total).clamp(0.0, 1.0).item()


def checkerboard_score(logits: torch.Tensor) -> float:
    """Share of the logits' ``(B, K, H, W)`` non-DC spectral energy at period 2 (see the module doc)."""
    return score_from_energies(*checkerboard_energies(logits))


class CheckerboardScore(Metric):
    """Checkerboard score over an epoch: both energies are summed, so the ratio is exact and energy-weighted."""

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("nyquist", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor) -> None:
        """Add a batch of logits ``(B, K, H, W)``."""
        nyquist, total = checkerboard_energies(logits)
        self.nyquist += nyquist
        self.total += total

    def compute(self) -> torch.Tensor:
        return torch.tensor(score_from_energies(self.nyquist, self.total))
