"""What ``unet-export`` and ``unet-predict`` do with their composed configs (``configs/deploy/``): one
function each, called by those commands and by :class:`unet.api.Model` alike."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from unet.export import export_checkpoint
from unet.inference import Predictor, load_predictor, predict_files
from unet.inference.files import collect_inputs, find_rois
from unet.inference.runtimes import check_runtime, choose_runtime
from unet.inference.speed import SpeedSettings, measure_speed

log = logging.getLogger(__name__)


def export_from_config(cfg: DictConfig) -> tuple[Path, Path]:
    """Export ``cfg.ckpt_path`` as ``configs/deploy/export.yaml``'s keys say; returns the file and its sidecar."""
    return export_checkpoint(
        cfg.ckpt_path,
        cfg.format,
        cfg.output,
        cfg.tolerance,
        embed=cfg.embed_preprocessing,
        input_layout=cfg.input_layout,
        outputs=cfg.outputs,
        quantize=cfg.quantize,
        openvino_precision=cfg.openvino_precision,
        calibration_count=cfg.calibration_images,
        measure_speed=speed_measure(cfg.measure),
    )


def speed_measure(cfg: DictConfig):
    """``measure`` of ``export.yaml``: the function that times an exported file, or None (``speed=false``)."""
    if not cfg.speed:
        return None
    settings = {key: value for key, value in cfg.items() if key != "speed"}
    return partial(measure_speed, settings=SpeedSettings(**settings))


def model_to_run(cfg: DictConfig) -> str | Path:
    """``cfg.model``, or with ``runtime=auto`` the fastest measured form of it here (said in one line)."""
    check_runtime(cfg.runtime, cfg.runtime_tolerance)
    if cfg.runtime == "given":
        return cfg.model
    chosen, reason = choose_runtime(cfg.model, cfg.runtime_tolerance)
    log.info(reason)
    return chosen


def predict_from_config(cfg: DictConfig, predictor: Predictor | None = None) -> dict[str, Any]:
    """Segment ``cfg.input`` into ``cfg.output`` as ``configs/deploy/predict.yaml``'s keys say, with
    ``predictor`` (already loaded) or ``cfg.model`` loaded; returns :func:`~unet.inference.predict_files`'
    summary."""
    inputs = collect_inputs(str(cfg.input))
    rois = None if cfg.get("roi") is None else find_rois(inputs, cfg.roi, cfg.get("roi_pattern"))
    return predict_files(
        predictor or load_predictor(model_to_run(cfg), cfg.device, cfg.memory_format),
        inputs,
        cfg.output,
        tile_size=cfg.tile_size,
        overlap=cfg.overlap,
        tta=cfg.tta,
        save_probabilities=cfg.save_probabilities,
        batch_size=cfg.batch_size,
        skip_errors=cfg.skip_errors,
        rois=rois,
    )
