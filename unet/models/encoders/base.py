"""The encoder interface and the registry that maps a config name (``model.encoder``) to its builder."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from unet.utils.errors import ConfigError

# A builder takes ``in_channels`` and ``weights`` (None, "imagenet" or a state-dict file) plus its own
# keyword options, and returns an :class:`Encoder`.
EncoderBuilder = Callable[..., "Encoder"]
ENCODERS: dict[str, EncoderBuilder] = {}
# Families named by a prefix (``timm-<model>``): a library of models too many to register one by one
# (and imported only when used). Prefix -> (the builder of the name after the prefix, what to write).
ENCODER_FAMILIES: dict[str, tuple[Callable[[str], EncoderBuilder], str]] = {}


def register_encoder(name: str) -> Callable[[EncoderBuilder], EncoderBuilder]:
    """Decorator (of a class or a function): make an encoder selectable as ``model.encoder=<name>``.

    As for upsamplers, the registry is the single source of truth: adding an encoder is one
    registered builder and nothing else.
    """

    def decorator(builder: EncoderBuilder) -> EncoderBuilder:
        if name in ENCODERS:
            raise ValueError(f"encoder {name!r} is already registered")
        ENCODERS[name] = builder
        return builder

    return decorator


def register_encoder_family(
    prefix: str, usage: str
) -> Callable[[Callable[[str], EncoderBuilder]], Callable[[str], EncoderBuilder]]:
    """Decorator of a resolver: ``model.encoder=<prefix><name>`` builds with ``resolver(name)``.

    The resolver checks the name (and that its library is installed) when the encoder is asked for,
    raising a one-line ValueError; ``usage`` completes the list of valid names in error messages.
    """

    def decorator(resolver: Callable[[str], EncoderBuilder]) -> Callable[[str], EncoderBuilder]:
        if prefix in ENCODER_FAMILIES:
            raise ValueError(f"encoder family {prefix!r} is already registered")
        ENCODER_FAMILIES[prefix] = (resolver, usage)
        return resolver

    return decorator


def get_encoder(name: str) -> EncoderBuilder:
    """Look an encoder up by name, a registered one or one of a family; an unknown name lists the valid ones."""
    if name in ENCODERS:
        return ENCODERS[name]
    for prefix, (resolver, _) in ENCODER_FAMILIES.items():
        if isinstance(name, str) and name.startswith(prefix):
            return resolver(name.removeprefix(prefix))
    valid = ", ".join(sorted(ENCODERS))
    families = "".join(f"; or {prefix}<name>: {usage}" for prefix, (_, usage) in ENCODER_FAMILIES.items())
    raise ConfigError(f"unknown encoder {name!r}; valid names: {valid}{families}")


def level_factors(scale: int | Sequence[int], depth: int) -> tuple[int, ...]:
    """The pooling factor of each of ``depth`` levels, shallowest first, from ``model.net.scale``:
    one integer >= 2 for every level, or a list of ``depth`` of them (e.g. ``[4, 2, 2]``)."""
    factors = [scale] * depth if isinstance(scale, int) and not isinstance(scale, bool) else scale
    expected = f"model.net.scale must be an integer >= 2 or a list of {depth} (depth) of them, got {scale!r}"
    if isinstance(factors, str) or not isinstance(factors, Sequence) or len(factors) != depth:
        raise ConfigError(expected)
    if not all(isinstance(f, int) and not isinstance(f, bool) and f >= 2 for f in factors):
        raise ConfigError(expected)
    return tuple(factors)


def pretrained_statistics(name: str, in_channels: int) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The per-channel mean and std that encoder ``name``'s pretrained weights expect for ``in_channels``
    inputs (adapted as its first convolution is); ``None`` for an encoder without pretrained weights."""
    encoder = get_encoder(name)(in_channels=in_channels)
    return None if encoder.mean is None or encoder.std is None else (tuple(encoder.mean), tuple(encoder.std))


class Encoder(nn.Module):
    """Maps images ``(B, C, H, W)`` to features at growing strides, shallowest first.

    An encoder is a sequence of stages: stage ``i`` turns feature ``i - 1`` (the image for ``i = 0``)
    into feature ``i``, of ``channels[i]`` channels at stride ``reductions[i]``. Where ``pools[i - 1]``
    is set, stage ``i`` starts with an ``f x f`` max-pool (stride ``f = factors[i - 1]``, floor) run
    here, so it can hand out its indices to max-unpooling. Subclasses set the attributes below and
    yield their stages from :meth:`stage_modules`.

    Attributes:
        channels: channels of each feature, shallowest first.
        reductions: stride of each feature w.r.t. the input, e.g. ``(2, 4, 8, 16, 32)`` for a ResNet.
        pools: per transition between consecutive features, whether it is an ``f x f`` max-pool.
        ceil_mode: how the strided steps round sizes that do not divide: up (padded stride-2 convs:
            ``ceil(H / 2)``) or down (``f x f`` pools, unpadded convs: ``floor(H / f)``). The decoder
            rounds the same way.
        decoder_channels: the decoder stage widths it suggests at ``decoder_width=1``, one per
            feature but the deepest.
        mean, std: per input channel, the normalisation the pretrained weights expect (None: none).
    """

    channels: tuple[int, ...]
    reductions: tuple[int, ...]
    pools: tuple[bool, ...]
    ceil_mode: bool = False
    decoder_channels: tuple[int, ...]
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def stage_modules(self) -> Iterable[nn.Module]:
        """The stages, shallowest first (the pools of ``pools`` excluded)."""
        raise NotImplementedError

    @property
    def factors(self) -> tuple[int, ...]:
        """Per transition between consecutive features, its factor (``reductions[i] / reductions[i - 1]``):
        what the decoder stage there upsamples by."""
        return tuple(deep // shallow for shallow, deep in itertools.pairwise(self.reductions))

    @property
    def min_size(self) -> int:
        """Smallest input height/width: the deepest feature needs at least one pixel."""
        return self.reductions[-1]

    def forward(
        self,
        x: torch.Tensor,
        return_indices: bool = False,
        run: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
        """Features ``[(B, channels[i], ~H / reductions[i], ~W / reductions[i])]`` and, per transition,
        the max-pool indices (None where it is no max-pool or ``return_indices`` is false).

        ``run(stage, x)`` runs one stage (the U-Net passes gradient checkpointing); None calls it.
        """
        features: list[torch.Tensor] = []
        indices: list[torch.Tensor | None] = []
        factors = self.factors
        for level, stage in enumerate(self.stage_modules()):
            if level > 0:
                level_indices, factor = None, factors[level - 1]
                if self.pools[level - 1] and return_indices:
                    x, level_indices = F.max_pool2d(x, kernel_size=factor, stride=factor, return_indices=True)
                elif self.pools[level - 1]:
                    x = F.max_pool2d(x, kernel_size=factor, stride=factor)
                indices.append(level_indices)
            x = stage(x) if run is None else run(stage, x)
            features.append(x)
        return features, indices
