"""``unet-export ckpt_path=... format=onnx|torchscript|weights [output=...]``: ship a trained model."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

from unet.apps.runs import key_value_config, user_errors_exit
from unet.export import export_checkpoint


def export(cfg: DictConfig) -> tuple[Path, Path]:
    """Export ``cfg.ckpt_path`` as ``cfg.format``; prints and returns the file and its JSON sidecar."""
    path, sidecar = export_checkpoint(cfg.ckpt_path, cfg.format, cfg.output, cfg.tolerance)
    print(f"wrote {path} and {sidecar}")
    return path, sidecar


def main(arguments: Sequence[str] | None = None) -> None:
    """Entry point of ``unet-export``."""
    with user_errors_exit():
        export(key_value_config("export", sys.argv[1:] if arguments is None else arguments))


if __name__ == "__main__":
    main()
