"""A trained model loaded from any file unet writes, to segment images in memory or on disk and to export.

:func:`load` reads a training checkpoint (``.ckpt``) or an export (``.onnx``, ``.pt2``, ``.pt``) with the
predictor ``unet-predict`` uses (:func:`unet.inference.load_predictor`); :meth:`Model.predict` segments
one image with the tiling every prediction uses (:func:`unet.inference.files.segment_image`),
:meth:`Model.predict_files` and :meth:`Model.export` run ``unet-predict``'s and ``unet-export``'s work
(:mod:`unet.api.deploy`) on their configs composed from keywords (:mod:`unet.api.keywords`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from unet.api.deploy import export_from_config, predict_from_config
from unet.api.jobs import command_config, run_job
from unet.data.io import image_array, pil_to_array, read_image
from unet.export.exporters import DEFAULT_SUFFIXES
from unet.inference import Predictor, load_predictor
from unet.inference.files import refuse_probabilities_of_masks, segment_image
from unet.inference.runtimes import file_to_run
from unet.profiling.machine import default_device
from unet.utils.errors import ConfigError, InputFileError

log = logging.getLogger(__name__)
# What an image given to Model.predict may be.
ImageLike = np.ndarray | Image.Image | str | os.PathLike
# predict_files' keys that the Model fixes: the file it was loaded from, and how (unet.load's arguments).
LOADED_KEYS = ("ckpt_path", "device", "memory_format", "runtime_choice", "runtime_tolerance")


def load(
    path: str | os.PathLike,
    device: str = "auto",
    memory_format: str = "auto",
    runtime_choice: str = "auto",
    runtime_tolerance: float = 0.005,
) -> Model:
    """The model in ``path`` (``.ckpt``, ``.onnx``, ``.xml``, ``.pt2``, ``.pt``) on ``device`` (``auto``: ``cuda``
    when present, else ``cpu``), and ``memory_format``, as ``unet-predict``'s keys of the same names
    (networks rebuilt from weights: ``auto`` times both layouts).

    ``runtime_choice``: ``auto`` runs the fastest form of the model measured on this CPU within
    ``runtime_tolerance`` mIoU of the checkpoint (its exports beside it, as ``unet-predict`` chooses;
    logged in one line and kept in :attr:`Model.runtime_choice`), ``given`` runs ``path`` itself."""
    device = default_device(device)
    running, reason = file_to_run(path, runtime_choice, runtime_tolerance)
    if reason:
        log.info(reason)
    predictor = load_predictor(running, device, memory_format)
    return Model(predictor, Path(path), device, memory_format, running, reason)


class Model:
    """A loaded model: :meth:`predict`, :meth:`predict_files`, :meth:`export`, and what it segments
    (:attr:`classes`, :attr:`in_channels`, :attr:`metadata`: the checkpoint's or the export sidecar's).

    :attr:`path` is the file given to :func:`load`; :attr:`running` the file that runs (another form of it
    with ``runtime_choice=auto``), :attr:`runtime_choice` the line that says why (``None``: as given)."""

    def __init__(
        self,
        predictor: Predictor,
        path: Path,
        device: str,
        memory_format: str,
        running: Path | None = None,
        runtime_choice: str | None = None,
    ) -> None:
        self.predictor = predictor
        self.path = path
        self.device = device
        self.memory_format = memory_format
        self.running = running or path
        self.runtime_choice = runtime_choice

    @property
    def metadata(self) -> dict[str, Any]:
        return self.predictor.metadata

    @property
    def classes(self) -> list[str]:
        return list(self.metadata["class_names"])

    @property
    def num_classes(self) -> int:
        return int(self.metadata["num_classes"])

    @property
    def in_channels(self) -> int:
        return int(self.metadata["in_channels"])

    @property
    def format(self) -> str:
        """``checkpoint``, or the export's format (``onnx``, ``pt2``, ``torchscript``, ``weights``)."""
        return str(self.metadata.get("format", "checkpoint"))

    def __repr__(self) -> str:
        running = "" if self.running == self.path else f", running {self.running.name}"
        return f"Model({str(self.path)!r}, {self.format}{running}, classes={self.classes}, in_channels={self.in_channels})"

    def predict(
        self,
        image: ImageLike,
        *,
        tile_size: int = 512,
        overlap: float = 0.25,
        tta: bool = False,
        batch_size: int = 4,
        probabilities: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """The class map ``(H, W)`` (uint8; uint16 past 256 classes) of one image, and with
        ``probabilities`` the softmax probabilities ``(K, H, W)`` float32 too.

        ``image``: a numpy array ``(H, W)`` or channels-last ``(H, W, C)``, uint8, 16-bit, or float in
        [0, 1] (as PIL, imageio and ``unet.data.io.read_image`` give them; a ``(C, H, W)`` array is
        refused: ``array.transpose(1, 2, 0)``), a PIL image, or an image file's path. Gray and colour
        are converted to the model's channels as files are. Images larger than ``tile_size`` run as
        overlapping tiles; ``tta`` averages flips; the defaults are ``unet-predict``'s.
        """
        pixels = self._pixels(image)
        blended = None
        if probabilities:
            refuse_probabilities_of_masks(self.predictor, "probabilities=True")
            blended = np.empty((self.num_classes, *pixels.shape[:2]), np.float32)
        mask = segment_image(self.predictor, pixels, tile_size, overlap, tta, batch_size, blended)
        return (mask, blended) if probabilities else mask

    def _pixels(self, image: ImageLike) -> np.ndarray:
        """``image`` as read from a file: ``(H, W, in_channels)`` uint8 or float32 in [0, 1]."""
        if isinstance(image, str | os.PathLike):
            return read_image(Path(image), self.in_channels)
        if isinstance(image, Image.Image):
            array = pil_to_array(ImageOps.exif_transpose(image), as_mask=False)
            return image_array(array, self.in_channels, "(PIL image)")
        return image_array(image, self.in_channels, f"(array of shape {np.shape(image)})")

    def predict_files(
        self, inputs: str | os.PathLike, output: str | os.PathLike, **keywords: Any
    ) -> dict[str, Any]:
        """Segment image files as ``unet-predict`` would (an image, a folder or a glob pattern into the
        folder ``output``: masks, overlays, with ``save_probabilities=True`` probabilities); keywords
        are its keys (``tile_size``, ``tta``, ``skip_errors``...); returns its summary."""
        fixed = sorted(set(keywords) & set(LOADED_KEYS))
        if fixed:
            raise ConfigError(f"{', '.join(fixed)}: chosen when the model was loaded: unet.load(path, ...)")
        loaded = {"ckpt_path": self.running, "device": self.device, "memory_format": self.memory_format}
        settings = {**loaded, "input": inputs, "output": output, **keywords}
        cfg, _ = command_config("predict", settings)
        return run_job(cfg, lambda task: predict_from_config(task, self.predictor))

    def export(
        self, path: str | os.PathLike | None = None, format: str | None = None, **keywords: Any
    ) -> Path:
        """Export this checkpoint as ``unet-export`` would, to ``path`` (``None``: beside the checkpoint),
        in ``format`` (``None``: told by the suffix of ``path``, ``.onnx``, ``.pt2``, ``.weights.pt``,
        ``.pt``; else ``onnx``); keywords are its keys (``embed_preprocessing``, ``quantize``...).
        Returns the written file (its JSON sidecar lies beside it)."""
        if self.path.suffix.lower() != ".ckpt":
            raise InputFileError(f"{self.path} is an export; exporting needs the training checkpoint (.ckpt)")
        settings: dict[str, Any] = {"ckpt_path": self.path}
        if path is not None:
            settings.update(output=path, format=format or export_format(path))
        elif format is not None:
            settings["format"] = format
        cfg, _ = command_config("export", {**settings, **keywords})
        written, _ = run_job(cfg, export_from_config)
        return written


def export_format(path: str | os.PathLike) -> str:
    """The export format a file name asks for, by its suffix (the longest registered one it ends with)."""
    name = Path(path).name.lower()
    matches = [(suffix, fmt) for fmt, suffix in DEFAULT_SUFFIXES.items() if name.endswith(suffix)]
    if not matches:
        suffixes = ", ".join(sorted(DEFAULT_SUFFIXES.values()))
        raise ConfigError(
            f"cannot tell the export format of {path} from its name: end it in one of {suffixes}, or give format=..."
        )
    return max(matches, key=lambda match: len(match[0]))[1]
