"""Checkerboard-artifact score: how much of the logits' spatial variation repeats every ``s`` pixels.

A stride-``s`` transposed convolution (or bed-of-nails unpooling) leaves a pattern that repeats every
``s`` pixels, the upsampling's stride (Odena et al., 2016, "Deconvolution and Checkerboard Artifacts");
smooth upsamplers do not. A period-``s`` pattern lives at the frequencies ``k/s`` cycles per pixel
(``k = 1 .. s - 1``), so their share of the spectrum measures it directly. The ``period`` is the
factor of the network's last upsampling (``model.net.scale``, shallowest level): 2 by default, where
the frequencies are the Nyquist frequency alone.

Definition, per image and class channel of the logits ``(H, W)``, for period ``s``:

1. Crop height and width down to multiples of ``s``, so that the period-``s`` frequencies fall
   exactly on FFT bins (rows ``k * H / s``, columns ``k * W / s``).
2. Remove the spatial mean and take the 2-D power spectrum ``P = |FFT2(x)|**2``.
3. Periodic energy: the sum of ``P`` over those rows (vertical frequency ``k/s``) and those columns
   (horizontal ``k/s``), bins on both counted once. Any map that repeats every ``s`` pixels along one
   axis, ``x[i, j] = g(i mod s) * f(j)``, has all its energy there, whatever ``f`` does along the
   other axis. No neighbourhood of bins is added: on small maps one bin either side is already a
   sizeable band of ordinary (non-artifact) frequencies. A period-4 score includes the period-2 one
   (frequency 1/2 = 2/4).
4. Total energy: the sum of ``P`` over every bin but DC (the mean is removed, so: all of it).

The score is periodic energy / total energy, with both energies summed over channels and images
before the ratio (energy-weighted: a nearly flat channel barely counts, and an epoch's score is
exact rather than a mean of batch scores). It lies in [0, 1]: ~0 for smooth maps, 1 for a pure
``(-1)**(i + j)`` checkerboard (at any even period). Constant maps have no spatial variation and
score 0.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric


def check_period(period: object) -> int:
    """The checkerboard's period: an upsampling stride, an integer >= 2."""
    if isinstance(period, bool) or not isinstance(period, int) or period < 2:
        raise ValueError(f"the checkerboard period must be an integer >= 2, got {period!r}")
    return period


def periodic_bins(length: int, period: int) -> torch.Tensor:
    """``(length,)`` bool: the FFT bins ``k * length / period`` (``k = 1 .. period - 1``) of a length that
    is a multiple of ``period``."""
    bins = torch.zeros(length, dtype=torch.bool)
    bins[length // period :: length // period] = True
    bins[0] = False
    return bins


def checkerboard_energies_per_image(
    logits: torch.Tensor, period: int = 2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Period-``period`` and total (non-DC) spectral energy of each image of logits ``(B, K, H, W)``: two
    ``(B,)`` float64 tensors, each summed over the image's channels."""
    period = check_period(period)
    if logits.dim() != 4:
        raise ValueError(f"expected logits (B, K, H, W), got shape {tuple(logits.shape)}")
    height, width = logits.shape[-2] // period * period, logits.shape[-1] // period * period
    if height < period or width < period:
        raise ValueError(f"need at least {period}x{period} pixels, got {tuple(logits.shape[-2:])}")
    x = logits[..., :height, :width].detach().double()
    # A constant channel becomes exactly zero, so FFT rounding noise cannot read as a pattern.
    varies = x.amax(dim=(-2, -1), keepdim=True) > x.amin(dim=(-2, -1), keepdim=True)
    x = (x - x.mean(dim=(-2, -1), keepdim=True)) * varies
    power = torch.fft.fft2(x).abs().square()  # (B, K, H, W)
    rows, cols = periodic_bins(height, period).to(x.device), periodic_bins(width, period).to(x.device)
    on_pattern = rows[:, None] | cols[None, :]  # (H, W)
    periodic = (power * on_pattern).sum(dim=(-2, -1)).sum(-1)
    total = (power.sum(dim=(-2, -1)) - power[..., 0, 0]).sum(-1)
    return periodic, total


def checkerboard_energies(logits: torch.Tensor, period: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Period-``period`` and total (non-DC) spectral energy of logits ``(B, K, H, W)``, each summed to a
    scalar."""
    periodic, total = checkerboard_energies_per_image(logits, period)
    return periodic.sum(), total.sum()


def score_from_energies(periodic: torch.Tensor, total: torch.Tensor) -> float:
    """The periodic share of the energy; 0 for maps without spatial variation."""
    if total.item() <= 0:
        return 0.0
    return (periodic / total).clamp(0.0, 1.0).item()


def checkerboard_score(logits: torch.Tensor, period: int = 2) -> float:
    """Share of the logits' ``(B, K, H, W)`` non-DC spectral energy at period ``period`` (see the module
    doc)."""
    return score_from_energies(*checkerboard_energies(logits, period))


class CheckerboardScore(Metric):
    """Checkerboard score over an epoch at ``period`` (the last upsampling's factor): both energies are
    summed, so the ratio is exact and energy-weighted."""

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, period: int = 2, **kwargs) -> None:
        super().__init__(**kwargs)
        self.period = check_period(period)
        self.add_state("periodic", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor) -> None:
        """Add a batch of logits ``(B, K, H, W)``."""
        periodic, total = checkerboard_energies(logits, self.period)
        self.periodic += periodic
        self.total += total

    def compute(self) -> torch.Tensor:
        return torch.tensor(score_from_energies(self.periodic, self.total))
