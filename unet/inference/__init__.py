"""Segment new images with a checkpoint or an exported model: any size, tiled, optional flip TTA."""

from unet.inference.files import predict_files
from unet.inference.predictors import Predictor, load_predictor
from unet.inference.tiling import predict_probabilities

__all__ = ["Predictor", "load_predictor", "predict_files", "predict_probabilities"]
