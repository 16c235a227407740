"""The Lightning layer: joins the model, the loss and the metrics for training and evaluation."""

from unet.training.module import SegmentationModule

__all__ = ["SegmentationModule"]
