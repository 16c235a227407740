"""``unet-benchmark``: what this machine does, one benchmark per ``mode`` (:mod:`unet.benchmarks`).

``mode=speed`` (the default): how fast each upsampling method (and with ``peers=true`` each peer
network) trains and infers; ``mode=levers``: that and each speed lever; ``mode=scaling``: how time
and memory grow with the image; ``mode=tiled``: tiled inference of a large image against MONAI's;
``mode=time_to_quality``: how long training recipes take to reach a score.

All arguments are Hydra overrides of ``configs/benchmark.yaml``, e.g. ``unet-benchmark mode=levers peers=true``.
This app builds each benchmark's inputs from the config, prints its tables and writes its JSON report.
Each mode imports the benchmarks (and torch) when it runs, so ``--help`` and a config mistake answer
without them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from unet.apps.hydra_app import hydra_app
from unet.utils.errors import ConfigError
from unet.utils.files import write_json
from unet.utils.runtime import apply_runtime
from unet.utils.tables import terminal_tables

if TYPE_CHECKING:
    from unet.benchmarks import BenchmarkSettings

# The settings of BenchmarkSettings that configs/benchmark.yaml does not hold (the runtime's, and quick's).
NOT_SETTINGS_KEYS = ("reuse_freed_memory", "net_options")


def benchmark_settings(cfg: DictConfig) -> BenchmarkSettings:
    """The speed, levers and scaling settings of the config."""
    from unet.benchmarks import BenchmarkSettings

    keys = [f.name for f in dataclasses.fields(BenchmarkSettings) if f.name not in NOT_SETTINGS_KEYS]
    return BenchmarkSettings(
        **OmegaConf.to_container(OmegaConf.masked_copy(cfg, keys), resolve=True),
        reuse_freed_memory=cfg.runtime.reuse_freed_memory,
    )


def nets(cfg: DictConfig) -> dict[str, Callable[..., Any]]:
    """A builder of the measured U-Net per upsampling method, called with in_channels and num_classes."""
    from unet.models import UPSAMPLERS

    return {method: instantiate(cfg.net, _partial_=True, upsample=method) for method in sorted(UPSAMPLERS)}


def peers(cfg: DictConfig) -> dict[str, Callable[..., Any]]:
    """A builder per peer network of ``peer_nets`` (see configs/model/net/)."""
    return {name: instantiate(peer, _partial_=True) for name, peer in cfg.peer_nets.items()}


def show(cfg: DictConfig, text: str, report: dict[str, Any]) -> None:
    """Print the tables (rich on a terminal, plain text in a pipe or log) and write the JSON report."""
    with terminal_tables():
        print(text)
    if cfg.output:
        print(f"written to {write_json(cfg.output, report)}")


def speed(cfg: DictConfig) -> None:
    """``mode=speed``: every method (with ``peers=true`` every peer), one row each."""
    from unet.benchmarks import format_speed, run_speed

    report = run_speed(
        benchmark_settings(cfg), nets(cfg), peers(cfg), instantiate(cfg.train_transforms) or []
    )
    show(cfg, format_speed(report), report)


def levers(cfg: DictConfig) -> None:
    """``mode=levers``: the speed table, then each speed lever on its main model."""
    from unet.benchmarks import format_levers, run_levers

    report = run_levers(
        benchmark_settings(cfg), nets(cfg), peers(cfg), instantiate(cfg.train_transforms) or []
    )
    show(cfg, format_levers(report), report)


def scaling(cfg: DictConfig) -> None:
    """``mode=scaling``: time and peak memory against the image's side, with and without checkpointing."""
    from unet.benchmarks import format_scaling, run_scaling

    report = run_scaling(benchmark_settings(cfg), nets(cfg))
    show(cfg, format_scaling(report), report)


def tiled(cfg: DictConfig) -> None:
    """``mode=tiled``: tiled inference of one large image, ours against MONAI's."""
    from unet.benchmarks import TiledSettings, format_tiled, run_tiled
    from unet.benchmarks.settings import QUICK
    from unet.benchmarks.subjects import checkpoint_subject, synthetic_subject
    from unet.profiling.machine import default_device

    settings = TiledSettings(
        **OmegaConf.to_container(cfg.tiled, resolve=True),
        in_channels=cfg.in_channels,
        num_classes=cfg.num_classes,
        quick=cfg.quick,
    )
    if settings.checkpoint:
        subject = checkpoint_subject(settings.checkpoint, settings)
    else:
        net = instantiate(
            cfg.net,
            upsample=(cfg.methods or ["bilinear"])[0],
            in_channels=cfg.in_channels,
            num_classes=cfg.num_classes,
            **(QUICK["net_options"] if cfg.quick else {}),
        )
        subject = synthetic_subject(net, settings)
    report = run_tiled(subject, settings, default_device(cfg.device))
    show(cfg, format_tiled(report, settings), report)


def time_to_quality(cfg: DictConfig) -> None:
    """``mode=time_to_quality``: race the contenders; the figure and JSON go to the run directory."""
    from unet.benchmarks import RaceSettings, format_race, run_race
    from unet.profiling.machine import default_device

    settings = RaceSettings(**OmegaConf.to_container(cfg.race, resolve=True))
    report = run_race(settings, cfg.paths.output_dir, default_device(cfg.device))
    with terminal_tables():
        print(format_race(report))
    print(f"written to {cfg.paths.output_dir}/time_to_quality.json and time_to_quality.png")


# What `mode` selects: each runner measures, prints and writes its report.
MODES: dict[str, Callable[[DictConfig], None]] = {
    "speed": speed,
    "levers": levers,
    "scaling": scaling,
    "tiled": tiled,
    "time_to_quality": time_to_quality,
}


@hydra_app("benchmark")
def main(cfg: DictConfig) -> None:
    """Entry point of ``unet-benchmark``: run the benchmark ``mode`` names."""
    apply_runtime(cfg.runtime)
    if cfg.mode not in MODES:
        raise ConfigError(f"mode={cfg.mode}: no such benchmark; valid modes: {', '.join(MODES)}")
    MODES[cfg.mode](cfg)


if __name__ == "__main__":
    main()
