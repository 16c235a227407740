"""What ``unet-export``, ``unet-predict`` and ``unet-serve`` do with their composed configs
(``configs/export.yaml``, ``predict.yaml``, ``serve.yaml``): one function each, called by those commands and by
:class:`unet.api.Model` alike."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from unet.export import export_checkpoint
from unet.inference import Predictor, load_predictor, predict_files
from unet.inference.files import collect_inputs, find_rois
from unet.inference.runtimes import file_to_run
from unet.inference.speed import SpeedSettings, measure_speed
from unet.inference.tiling import TilingSettings
from unet.profiling.machine import default_device
from unet.serving import load_models
from unet.serving.limits import ServingLimits

log = logging.getLogger(__name__)


def export_from_config(cfg: DictConfig) -> tuple[Path, Path]:
    """Export ``cfg.ckpt_path`` as ``configs/export.yaml``'s keys say; returns the file and its sidecar."""
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


def model_to_run(cfg: DictConfig) -> Path:
    """``cfg.ckpt_path``, or with ``runtime_choice=auto`` the fastest measured form of it here (said in one line)."""
    chosen, reason = file_to_run(cfg.ckpt_path, cfg.runtime_choice, cfg.runtime_tolerance)
    if reason:
        log.info(reason)
    return chosen


def predict_from_config(cfg: DictConfig, predictor: Predictor | None = None) -> dict[str, Any]:
    """Segment ``cfg.input`` into ``cfg.output`` as ``configs/predict.yaml``'s keys say, with
    ``predictor`` (already loaded) or ``cfg.ckpt_path`` loaded on ``cfg.device``; returns :func:`~unet.inference.predict_files`'
    summary."""
    predictor = predictor or load_predictor(model_to_run(cfg), default_device(cfg.device), cfg.memory_format)
    inputs = collect_inputs(str(cfg.input))
    rois = None if cfg.get("roi") is None else find_rois(inputs, cfg.roi, cfg.get("roi_pattern"))
    return predict_files(
        predictor,
        inputs,
        cfg.output,
        tile_size=cfg.tile_size,
        overlap=cfg.overlap,
        tta=cfg.tta,
        save_probabilities=cfg.save_probabilities,
        batch_size=cfg.batch_size,
        skip_errors=cfg.skip_errors,
        rois=rois,
        batch_images=cfg.batch_images,
    )


def serve_from_config(cfg: DictConfig) -> None:
    """Serve ``cfg.ckpt_path`` (one model file, a list, a folder of exports or a ``unet-compare``
    directory) on ``cfg.host:cfg.port`` as ``configs/serve.yaml``'s keys say, until interrupted."""
    # Imported here (before any model is loaded): the HTTP libraries are the serve extra's, which
    # unet-export and unet-predict do not need.
    from unet.serving.app import create_app, serve

    limits = ServingLimits(cfg.max_upload_mb, cfg.max_concurrency, cfg.queue_timeout_s, cfg.predict_timeout_s)
    spec = OmegaConf.to_object(cfg.ckpt_path) if OmegaConf.is_list(cfg.ckpt_path) else str(cfg.ckpt_path)
    models = load_models(spec, default_device(cfg.device), cfg.memory_format)
    app = create_app(models, TilingSettings(cfg.tile_size, cfg.overlap, cfg.tta, cfg.batch_size), limits)
    serve(app, cfg.host, cfg.port, cfg.keep_alive_s)
