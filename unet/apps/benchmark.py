"""``unet-benchmark``: how fast each upsampling method (and each peer network) trains and infers here.

All arguments are Hydra overrides of ``configs/benchmark.yaml``, e.g. ``unet-benchmark peers=true levers=true``.
The measuring is :mod:`unet.profiling`; this app builds its inputs from the config and writes the report.
"""

from __future__ import annotations

import dataclasses

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from unet.apps.runs import hydra_app
from unet.models import UPSAMPLERS
from unet.profiling import BenchmarkSettings, format_report, run_benchmark
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


if __name__ == "__main__":
    main()
