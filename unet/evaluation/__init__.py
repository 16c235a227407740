"""Plain-torch evaluation: boundary F1 and checkerboard-artifact score.

No Lightning, Hydra or data imports here, so scripts and the training loop share one definition.
What a model costs (parameters, FLOPs, speed, memory) is measured by :mod:`unet.profiling`.
"""

from unet.evaluation.boundary import BoundaryF1, boundary_f1
from unet.evaluation.checkerboard import CheckerboardScore, checkerboard_score

__all__ = [
    "BoundaryF1",
    "CheckerboardScore",
    "boundary_f1",
    "checkerboard_score",
]
