"""The cost columns of the report: each method's trained network measured on this machine, once."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from unet.models.loading import load_model
from unet.profiling import InputSpec, measure_costs
from unet.utils.errors import ConfigError
from unet.utils.files import read_json, write_json

log = logging.getLogger(__name__)
COSTS_FILE = "costs.json"


def method_costs(
    checkpoints: Mapping[str, Path], settings: Mapping[str, Any], device: str, cache: Path
) -> dict[str, dict[str, float]]:
    """Parameters, GFLOPs, throughput, latency and memory of each method's network on ``device``, kept
    in ``cache``.

    ``settings`` holds the input (``height``, ``width``, ``batch_size``: compare's ``costs`` keys). The methods not yet in ``cache`` are measured together, their training steps
    timed in turn (drift-corrected, see :func:`unet.profiling.measure_costs`), and added to it, so
    rebuilding a report does not re-measure.
    """
    costs = read_json(cache) or {}
    missing = {method: path for method, path in checkpoints.items() if method not in costs}
    if not missing:
        return costs
    nets, sizes = {}, set()
    for method, path in missing.items():
        loaded = load_model(path)
        nets[method] = loaded.network
        sizes.add((loaded.in_channels, loaded.num_classes))
    if len(sizes) != 1:
        raise ConfigError(f"the checkpoints disagree on (in_channels, num_classes): {sorted(sizes)}")
    log.info("measuring the cost of %s", ", ".join(nets))
    in_channels, num_classes = sizes.pop()
    spec = InputSpec(in_channels, num_classes, settings["height"], settings["width"], settings["batch_size"])
    costs |= measure_costs(nets, spec, device=device)
    write_json(cache, costs)
    return costs
