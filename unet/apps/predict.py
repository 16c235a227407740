"""``unet-predict model=<.ckpt|.onnx|.pt> input=<image, folder or glob> output=<dir>``: segment new images."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from unet.apps.runs import key_value_config, user_errors_exit
from unet.inference import load_predictor
from unet.inference.files import collect_inputs, predict_files


def predict(cfg: DictConfig) -> dict[str, Any]:
    """Segment ``cfg.input`` with ``cfg.model`` into ``cfg.output``; prints and returns a summary."""
    predictor = load_predictor(cfg.model, cfg.device)
    inputs = collect_inputs(str(cfg.input))
    summary = predict_files(
        predictor,
        inputs,
        Path(cfg.output),
        tile_size=cfg.tile_size,
        overlap=cfg.overlap,
        tta=cfg.tta,
        save_probabilities=cfg.save_probabilities,
        batch_size=cfg.batch_size,
    )
    print(
        f"segmented {summary['images']} image(s) in {summary['seconds']:.1f} s "
        f"({summary['images_per_s']:.2f} images/s) into {cfg.output}"
    )
    return summary


def main(arguments: Sequence[str] | None = None) -> None:
    """Entry point of ``unet-predict``."""
    with user_errors_exit():
        predict(key_value_config("predict", sys.argv[1:] if arguments is None else arguments))


if __name__ == "__main__":
    main()
