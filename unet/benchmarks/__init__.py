"""What ``unet-benchmark`` measures, one module per benchmark (``mode`` of ``configs/benchmark.yaml``).

:mod:`~unet.benchmarks.speed` (how fast each method and peer trains and infers),
:mod:`~unet.benchmarks.levers` (each speed lever against its baseline),
:mod:`~unet.benchmarks.scaling` (how time and memory grow with the image),
:mod:`~unet.benchmarks.tiled` (tiled inference of a large image against MONAI's) and
:mod:`~unet.benchmarks.race` (time to quality: training recipes raced for a wall-clock budget);
their settings are :mod:`~unet.benchmarks.settings`. Each takes plain arguments and returns the JSON
report the command writes; the timing and cost measurements themselves are :mod:`unet.profiling`.
"""

from unet.benchmarks.levers import format_levers, run_levers
from unet.benchmarks.race import RaceError, format_race, run_race
from unet.benchmarks.scaling import format_scaling, run_scaling
from unet.benchmarks.settings import BenchmarkSettings, RaceSettings, TiledSettings
from unet.benchmarks.speed import format_speed, run_speed
from unet.benchmarks.tiled import format_tiled, run_tiled

__all__ = [
    "BenchmarkSettings",
    "RaceError",
    "RaceSettings",
    "TiledSettings",
    "format_levers",
    "format_race",
    "format_scaling",
    "format_speed",
    "format_tiled",
    "run_levers",
    "run_race",
    "run_scaling",
    "run_speed",
    "run_tiled",
]
