"""Serving trained models over HTTP (``unet-serve``): ``POST /predict``, ``GET /health`` and a page that
compares several models on an uploaded image. The HTTP application (:mod:`unet.serving.app`) needs the
``serve`` extra; finding and loading the models, segmenting uploads and tracing polygons do not."""

from unet.serving.models import ServedModel, find_models, load_models
from unet.serving.polygons import class_polygons

__all__ = ["ServedModel", "class_polygons", "find_models", "load_models"]
