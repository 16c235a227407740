"""Learned stride-``f`` transposed convolution (the original U-Net's "up-convolution": 2x2, stride 2)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from unet.models.upsamplers.base import Upsampler, pad_to_size, register_upsampler
from unet.utils.errors import ConfigError


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"transposed {name} must be an integer >= {minimum}, got {value!r}")


def transposed_padding(
    kernel_size: int, stride: int, padding: int | None = None, output_padding: int | None = None
) -> tuple[int, int]:
    """The ``(padding, output_padding)`` with which a transposed conv multiplies every size by ``stride``.

    Its output size is ``(h - 1)*s - 2p + k + output_padding``; that is ``s*h`` for every ``h`` exactly
    when ``k - 2p + output_padding = s``. Left ``None``, the padding is the smallest that fits
    (``ceil((k - s) / 2)``, 0 for ``k <= s``) and the output padding follows; given, both are checked,
    and a refusal names the sizes they would give. PyTorch needs ``0 <= output_padding < s``.
    """
    _check_int("kernel_size", kernel_size, 2)
    for name, value in (("padding", padding), ("output_padding", output_padding)):
        if value is not None:
            _check_int(name, value, 0)
    if padding is None and output_padding is None:
        padding = max(0, math.ceil((kernel_size - stride) / 2))
    elif padding is None:
        padding = (kernel_size + output_padding - stride) // 2
    if output_padding is None:
        output_padding = stride + 2 * padding - kernel_size
    if kernel_size - 2 * padding + output_padding == stride and 0 <= output_padding < stride and padding >= 0:
        return padding, output_padding
    shown = min(max(output_padding, 0), stride - 1)  # the nearest output padding PyTorch takes
    excess = kernel_size - 2 * padding + shown - stride  # output rows beyond s*h
    example = 8
    raise ConfigError(
        f"transposed kernel_size={kernel_size}, padding={padding}, output_padding={shown} at stride {stride} "
        f"gives (h - 1)*{stride} - 2*{padding} + {kernel_size} + {shown} = {stride}h {'+-'[excess < 0]} "
        f"{abs(excess)} rows ({stride * example + excess} from h={example}), not the {stride}h "
        f"({stride * example}) the skip needs: choose kernel_size - 2*padding + output_padding = {stride}, "
        f"with 0 <= output_padding < {stride}"
    )


def overlap_cause(
    kernel_size: int, stride: int, padding: int | None = None, output_padding: int | None = None
) -> str:
    """Whether a transposed conv of this kernel, stride and padding overlaps, named with the three, and
    why that paints a periodic pattern (or that it need not).

    Odena et al. (2016): where ``k`` is not a multiple of ``s``, output pixels receive uneven numbers
    of contributions (the checkerboard's known cause); ``k > s`` overlaps evenly but the kernel's
    ``s*s`` phases still have to be balanced by training; ``k < s`` leaves pixels that nothing writes.
    The padding only crops the border, so it does not change which.
    """
    padding, output_padding = transposed_padding(kernel_size, stride, padding, output_padding)
    shape = f"kernel {kernel_size}, stride {stride}, padding {padding}"
    shape += f", output_padding {output_padding}" if output_padding else ""
    if kernel_size % stride:
        kind = "uneven overlap" if kernel_size > stride else "gaps"
        return f"{kind} ({shape}): the kernel is not a multiple of the stride, the known checkerboard cause"
    if kernel_size > stride:
        return f"even overlap ({shape}): a checkerboard only if the kernel's {stride}x{stride} phases differ"
    return f"no overlap ({shape}): the blocks tile the output"


def contribution_counts(kernel_size: int, stride: int, size: int, padding: int | None = None) -> torch.Tensor:
    """How many input pixels write each output pixel of a transposed conv on a ``size x size`` input:
    ``(s*size, s*size)`` counts (uniform: no overlap pattern; uneven: the checkerboard's origin)."""
    padding, output_padding = transposed_padding(kernel_size, stride, padding)
    deconv = nn.ConvTranspose2d(1, 1, kernel_size, stride, padding, output_padding, bias=False)
    with torch.no_grad():
        deconv.weight.fill_(1.0)
        return deconv(torch.ones(1, 1, size, size))[0, 0].round()


@register_upsampler("transposed")
class TransposedConvUpsampler(Upsampler):
    """Each input pixel writes a learned ``k x k`` block at stride ``f``; a skip's extra last rows/columns
    are replicated.

    ``kernel_size`` defaults to the factor ``f`` (at ``f = 2``: 2x2, the original U-Net), which tiles
    the output without overlap; ``2f`` with padding ``f / 2`` is the usual overlapping choice. 3 and 4
    at stride 2 are the configurations Odena et al. (2016) show produce checkerboard artefacts: with 3
    the blocks overlap unevenly (output pixels receive 1, 2 or 4 contributions), with 4 evenly but the
    learned kernel still has to balance its four phases (:func:`overlap_cause`). ``padding`` and
    ``output_padding`` default to the values that make the result exactly ``(f*h, f*w)`` for every
    ``h, w`` (:func:`transposed_padding`, which checks the ones given).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | None = None,
        padding: int | None = None,
        output_padding: int | None = None,
        scale: int = 2,
    ) -> None:
        super().__init__(in_channels, out_channels, scale)
        kernel_size = scale if kernel_size is None else kernel_size
        padding, output_padding = transposed_padding(kernel_size, scale, padding, output_padding)
        self.kernel_size = kernel_size
        self.deconv = nn.ConvTranspose2d(
            in_channels,
            out_channels,
            kernel_size=kernel_size,
            stride=scale,
            padding=padding,
            output_padding=output_padding,
        )

    @property
    def overlap(self) -> str:
        """This configuration's overlap, the known cause of a checkerboard (:func:`overlap_cause`)."""
        return overlap_cause(
            self.kernel_size, self.scale, self.deconv.padding[0], self.deconv.output_padding[0]
        )

    @classmethod
    def artefact_cause(cls, options: Mapping[str, Any], scale: int) -> str | None:
        kernel_size = options.get("kernel_size") or scale
        return overlap_cause(kernel_size, scale, options.get("padding"), options.get("output_padding"))

    def forward(
        self, x: torch.Tensor, size: tuple[int, int], indices: torch.Tensor | None = None
    ) -> torch.Tensor:
        return pad_to_size(self.deconv(x), size)
