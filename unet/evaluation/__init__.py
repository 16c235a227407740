"""Plain-torch evaluation: class scores, boundary F1, checkerboard-artifact score, per-image scores.

No Lightning, Hydra or data imports here, so scripts and the training loop share one definition.
What a model costs (parameters, FLOPs, speed, memory) is measured by :mod:`unet.profiling`.
"""

from unet.evaluation.boundary import BoundaryF1, boundary_f1
from unet.evaluation.checkerboard import CheckerboardScore, checkerboard_score
from unet.evaluation.per_image import image_scores, read_per_image, write_per_image
from unet.evaluation.scores import metric_key, scores_from_confusion

__all__ = [
    "BoundaryF1",
    "CheckerboardScore",
    "boundary_f1",
    "checkerboard_score",
    "image_scores",
    "metric_key",
    "read_per_image",
    "scores_from_confusion",
    "write_per_image",
]
