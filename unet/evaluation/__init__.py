"""Plain-torch evaluation: boundary F1, checkerboard-artifact score and model cost profiling.

No Lightning, Hydra or data imports here, so scripts and the training loop share one definition.
"""

from unet.evaluation.boundary import BoundaryF1, boundary_f1
from unet.evaluation.checkerboard import CheckerboardScore, checkerboard_score
from unet.evaluation.profiling import (
    COST_KEYS,
    count_parameters,
    flops_per_image,
    inference_latency,
    model_costs,
    peak_memory_bytes,
    training_throughput,
    upsampler_parameters,
)

__all__ = [
    "COST_KEYS",
    "BoundaryF1",
    "CheckerboardScore",
    "boundary_f1",
    "checkerboard_score",
    "count_parameters",
    "flops_per_image",
    "inference_latency",
    "model_costs",
    "peak_memory_bytes",
    "training_throughput",
    "upsampler_parameters",
]
