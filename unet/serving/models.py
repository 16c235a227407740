"""The models a server answers with, found from what the user names: a model file, a list of them, a
folder of exported models, or the output directory of one ``unet-compare`` (each method's best
checkpoint, as its report uses)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unet.compare.plan import COMPARISON_FILE
from unet.compare.runs import best_checkpoints, collect_records
from unet.export.exporters import DEFAULT_SUFFIXES
from unet.inference import Predictor, load_predictor
from unet.inference.files import segment_image
from unet.utils.errors import InputNotFoundError
from unet.utils.files import read_json

# A training checkpoint and every export form's file.
MODEL_SUFFIXES = frozenset({".ckpt", *DEFAULT_SUFFIXES.values()})


@dataclass
class ServedModel:
    """One model the server runs: its name (as the page and ``?model=`` call it) and its predictor."""

    name: str
    predictor: Predictor

    def describe(self) -> dict[str, Any]:
        """What ``GET /health`` says of it."""
        metadata = self.predictor.metadata
        return {
            "name": self.name,
            "file": str(self.predictor.source),
            "in_channels": metadata["in_channels"],
            "classes": list(metadata.get("class_names") or range(metadata["num_classes"])),
        }


def comparison_models(output_dir: Path) -> dict[str, Path]:
    """Each method of a finished ``unet-compare`` in ``output_dir`` -> its best checkpoint."""
    plan = read_json(output_dir / COMPARISON_FILE)
    found = best_checkpoints(collect_records(output_dir / "runs", plan["methods"], plan["seeds"]))
    if not found:
        raise InputNotFoundError(f"{output_dir} is a comparison without a finished run's best.ckpt")
    return found


def folder_models(folder: Path) -> list[Path]:
    """The model files directly in ``folder`` (sidecars and other files left alone)."""
    files = sorted(path for path in folder.iterdir() if path.is_file() and path.suffix in MODEL_SUFFIXES)
    if not files:
        raise InputNotFoundError(f"no model files ({', '.join(sorted(MODEL_SUFFIXES))}) in {folder}")
    return files


def unique_names(paths: Sequence[Path]) -> dict[str, Path]:
    """Each file named by its stem, or where stems repeat by its path below the files' common folder."""
    stems = [path.stem for path in paths]
    if len(set(stems)) == len(stems):
        return dict(zip(stems, paths, strict=True))
    common = Path(os.path.commonpath([path.resolve() for path in paths]))
    return {path.resolve().relative_to(common).as_posix(): path for path in paths}


def find_models(spec: str | Path | Sequence[str | Path]) -> dict[str, Path]:
    """``ckpt_path`` as given -> model name -> file: a file, a list of files, a folder of exported
    models, or a ``unet-compare`` output directory (its methods' best checkpoints)."""
    if isinstance(spec, str | Path):
        path = Path(spec).expanduser()
        if path.is_dir() and (path / COMPARISON_FILE).is_file():
            return comparison_models(path)
        if path.is_dir():
            return unique_names(folder_models(path))
        spec = [path]
    paths = [Path(item).expanduser() for item in spec]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing or not paths:
        raise InputNotFoundError(f"ckpt_path: model file(s) not found: {', '.join(missing) or 'none given'}")
    return unique_names(paths)


def load_models(
    spec: str | Path | Sequence[str | Path], device: str = "cpu", memory_format: str = "auto"
) -> list[ServedModel]:
    """The models ``spec`` names (:func:`find_models`), loaded as unet-predict loads one."""
    return [
        ServedModel(name, load_predictor(path, device, memory_format))
        for name, path in find_models(spec).items()
    ]


def warm_up(model: ServedModel, tile_size: int) -> None:
    """Run one tile through ``model``, so its one-time choices (the memory layout timed on the first
    batch) are made before requests run it from several threads at once."""
    metadata = model.predictor.metadata
    size = max(tile_size, metadata["min_size"])
    segment_image(model.predictor, np.zeros((size, size, metadata["in_channels"]), np.uint8), size)
