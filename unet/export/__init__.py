"""Export trained checkpoints to formats other tools run: ONNX, TorchScript and plain weights."""

from unet.export.exporters import EXPORTERS, ExportError, export_checkpoint
from unet.export.metadata import read_metadata

__all__ = ["EXPORTERS", "ExportError", "export_checkpoint", "read_metadata"]
