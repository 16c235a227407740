"""``unet-benchmark``: how fast each upsampling method (and each peer network) trains and infers here;
with ``predict=true``, tiled inference of a large image against MONAI's (:mod:`unet.inference.benchmark`);
with ``time_to_quality=true``, how long training recipes take to reach a score (:mod:`unet.compare.race`).

All arguments are Hydra overrides of ``configs/benchmark.yaml``, e.g. ``unet-benchmark peers=true levers=true``.
The measuring is :mod:`unet.profiling`; this app builds its inputs from the config and writes the report.
"""

from __future__ import annotations

import dataclasses

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from unet.apps.errors import report_and_exit
from unet.apps.hydra_app import hydra_app
from unet.compare.race import RaceError, RaceSettings, format_race, run_race
from unet.inference.benchmark import TiledSettings, format_tiled, measure_tiled_inference
from unet.models import UPSAMPLERS
from unet.profiling import BenchmarkSettings, format_report, run_benchmark
from unet.profiling.machine import cpu_flags, default_device, machine_name
from unet.utils.files import write_json
from unet.utils.runtime import apply_runtime
from unet.utils.tables import terminal_tables

# The settings configs/benchmark.yaml holds (reuse_freed_memory is the runtime's; quick sets net_options).
SETTINGS_KEYS = [
    f.name
    for f in dataclasses.fields(BenchmarkSettings)
    if f.name not in ("reuse_freed_memory", "net_options")
]


@hydra_app("benchmark")
def main(cfg: DictConfig) -> None:
    """Measure, print the tables and write the JSON report (``json``, by default into the run directory)."""
    apply_runtime(cfg.runtime)
    if cfg.time_to_quality:
        race(cfg)
        return
    if cfg.predict:
        tiled(cfg)
        return
    settings = BenchmarkSettings(
        **OmegaConf.to_container(OmegaConf.masked_copy(cfg, SETTINGS_KEYS), resolve=True),
        reuse_freed_memory=cfg.runtime.reuse_freed_memory,
    )
    # Network builders: called with in_channels and num_classes (see configs/model/net/).
    nets = {method: instantiate(cfg.net, _partial_=True, upsample=method) for method in sorted(UPSAMPLERS)}
    peers = {name: instantiate(peer, _partial_=True) for name, peer in cfg.peer_nets.items()}
    report = run_benchmark(settings, nets, peers, instantiate(cfg.train_transforms) or [])
    with terminal_tables():  # rich tables on a terminal, plain text in a pipe or log
        print(format_report(report))
    if cfg.json:
        print(f"written to {write_json(cfg.json, report)}")


def tiled(cfg: DictConfig) -> None:
    """``predict=true``: tiled inference of one large image, ours against MONAI's; prints and writes the JSON."""
    settings = TiledSettings(
        **OmegaConf.to_container(cfg.tiled, resolve=True),
        in_channels=cfg.in_channels,
        num_classes=cfg.num_classes,
    )
    device = default_device(cfg.device)
    net = instantiate(
        cfg.net,
        upsample=(cfg.methods or ["bilinear"])[0],
        in_channels=cfg.in_channels,
        num_classes=cfg.num_classes,
    )
    report = {
        "machine": machine_name(device),
        "cpu_flags": cpu_flags(),
        **measure_tiled_inference(net, settings, device),
    }
    with terminal_tables():
        print(f"{report['machine']} ({report['cpu_flags']})\n{format_tiled(report, settings)}")
    if cfg.json:
        print(f"written to {write_json(cfg.json, report)}")


def race(cfg: DictConfig) -> None:
    """``time_to_quality=true``: race the contenders, print the table; the figure and JSON go to the run directory."""
    settings = RaceSettings(**OmegaConf.to_container(cfg.race, resolve=True))
    try:
        device = default_device(cfg.device)
        report = run_race(settings, cfg.paths.output_dir, device)
    except RaceError as error:
        report_and_exit(error)
    with terminal_tables():
        print(format_race(report))
    print(f"written to {cfg.paths.output_dir}/time_to_quality.json and time_to_quality.png")


if __name__ == "__main__":
    main()
