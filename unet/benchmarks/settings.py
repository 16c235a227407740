"""What each benchmark measures and how long: the keys of ``configs/benchmark.yaml`` as plain data.

The settings live apart from the measuring modules, so each benchmark imports the settings and never
another benchmark to get them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from unet.profiling.costs import InputSpec
from unet.utils.errors import ConfigError

# What ``quick`` sets: tiny sizes and one step, to check that everything runs.
QUICK = {"size": 32, "batch_size": 2, "warmup": 1, "repeats": 1, "rounds": 1, "net_options": {"depth": 2, "base_channels": 8}, "scaling_sizes": (32, 64)}  # fmt: skip
# What ``quick`` sets for tiled inference: a few tiles of a small image, one round.
QUICK_TILED = {
    "size": 160,
    "tile_size": 64,
    "batch_size": 2,
    "rounds": 1,
    "small_images": 4,
    "small_size": (36, 48),
}
# The sides (pixels) the scaling measures by default: each doubles the last, so memory grows about 4x a row.
SCALING_SIZES = (256, 512, 1024, 2048)


@dataclass(frozen=True)
class BenchmarkSettings:
    """The speed, levers and scaling benchmarks' settings (the keys of ``configs/benchmark.yaml`` but the networks).

    ``quick`` overrides the sizes and repetitions with :data:`QUICK`, here and nowhere else.
    """

    methods: tuple[str, ...] | None = None  # upsampling methods to measure; None: every one given
    # Encoders each method is measured with (unet.models.ENCODERS), models named "<encoder>/<method>";
    # None: the nets' own encoder, models named by method.
    encoders: tuple[str, ...] | None = None
    peers: bool = False  # also measure the peer networks given
    size: int = 256  # height and width of the input
    batch_size: int = 8
    in_channels: int = 1
    num_classes: int = 2
    rounds: int = 5  # timed training steps per model, taken in turn (median of the rounds)
    warmup: int = 2
    repeats: int = 10  # timed inference calls
    device: str | None = None  # cpu or cuda; None or auto: cuda when present
    compile: bool = False  # the levers also time torch.compile (slow to build)
    scaling_sizes: tuple[int, ...] = SCALING_SIZES  # image sides the scaling measures
    scaling_bf16: bool = False  # the scaling's training steps under bf16 autocast
    # The process's freed-memory reuse (runtime.reuse_freed_memory): the allocator lever's baseline.
    reuse_freed_memory: bool = True
    quick: bool = False  # tiny sizes and one step: checks that it runs
    net_options: Mapping[str, Any] = field(default_factory=dict)  # keywords for every measured U-Net

    def __post_init__(self) -> None:
        for key in ("methods", "encoders", "scaling_sizes"):
            if getattr(self, key) is not None:
                object.__setattr__(self, key, tuple(getattr(self, key)))
        if self.quick:
            for key, value in QUICK.items():
                object.__setattr__(self, key, value)

    @property
    def spec(self) -> InputSpec:
        """The measured input: square images of side ``size``."""
        return InputSpec(self.in_channels, self.num_classes, self.size, self.size, self.batch_size)

    @property
    def probe_size(self) -> int:
        """Side of the matmul probes: small in quick mode, where the steps are tiny too."""
        return 256 if self.quick else 1024

    @property
    def data_batches(self) -> int:
        """Training batches of the data whose delivery is timed."""
        return 2 if self.quick else 20


@dataclass
class TiledSettings:
    """The image and tiling measured; see ``tiled`` in ``configs/benchmark.yaml``.

    ``quick`` overrides the image, tiles and rounds with :data:`QUICK_TILED`.
    """

    size: int = 2048
    tile_size: int = 512
    overlap: float = 0.25
    batch_size: int = 4
    in_channels: int = 1
    num_classes: int = 2
    onnx: bool = True
    int8: bool = True  # static int8 (QDQ) of the ONNX export in onnxruntime, calibrated on other tiles
    openvino: bool = True  # the OpenVINO IR, f32 (and bf16 where the CPU has it)
    tolerance: float = 1e-4
    rounds: int = 3
    seed: int = 0
    small_images: int = 32  # many small photos, predicted from files one by one and batched
    small_size: tuple[int, int] = (360, 480)
    checkpoint: str | None = None  # a trained .ckpt: its validation images as the image, with quality
    quality_tolerance: float = 0.005  # mIoU change from MONAI's that counts as equal quality
    quick: bool = False

    def __post_init__(self) -> None:
        self.small_size = tuple(self.small_size)
        if self.quick:
            for key, value in QUICK_TILED.items():
                setattr(self, key, value)


@dataclass
class RaceSettings:
    """What a race trains and how it scores: see ``race`` in ``configs/benchmark.yaml``."""

    contenders: dict[str, list[str]]
    reference: str
    budget_s: float = 600.0
    every_s: float = 20.0
    metric: str = "dice/membrane"
    split: str = "auto"
    target: float | None = None
    overrides: list[str] = field(default_factory=list)
    keep_snapshots: bool = False

    def __post_init__(self) -> None:
        if not self.contenders:
            raise ConfigError("race.contenders is empty: name at least one recipe (name: [overrides])")
        if self.reference not in self.contenders:
            raise ConfigError(
                f"race.reference={self.reference!r} is not a contender; expected one of {sorted(self.contenders)}"
            )
        if self.budget_s <= 0 or self.every_s <= 0:
            raise ConfigError(
                f"race.budget_s and race.every_s must be > 0 seconds, got {self.budget_s} and {self.every_s}"
            )
        if self.every_s >= self.budget_s:
            raise ConfigError(
                f"race.every_s={self.every_s} leaves no curve in race.budget_s={self.budget_s}: "
                "score more often than once per budget"
            )
