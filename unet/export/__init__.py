"""Export trained checkpoints to formats other tools run: ONNX, TorchScript and plain weights."""

from unet.export.exporters import EXPORTERS, ExportError, export_checkpoint

__all__ = ["EXPORTERS", "ExportError", "export_checkpoint"]
