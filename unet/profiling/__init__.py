"""Measuring cost: drift-corrected timing, model costs, data throughput, the machine they ran on.

Plain torch and the data layer: no Lightning module and no Hydra here; the benchmarks
(:mod:`unet.benchmarks`), the plan and ``unet-compare`` measure with it.
"""

from unet.profiling.costs import (
    COST_KEYS,
    InputSpec,
    flops_per_image,
    inference_latency,
    measure_costs,
    peak_memory_bytes,
    training_flops_per_image,
    training_peak_memory_mb,
    training_step,
    training_throughput,
    upsampler_parameters,
)
from unet.profiling.data import (
    data_throughput,
    folder_datamodule,
    synthetic_datamodule,
    write_mitochondria_proxy,
    write_png_folder,
    write_street_proxy,
)
from unet.profiling.timing import (
    StepSample,
    efficiency,
    images_per_s,
    interleaved_samples,
    matmul_gflops,
    median_seconds,
)

__all__ = [
    "COST_KEYS",
    "InputSpec",
    "StepSample",
    "data_throughput",
    "efficiency",
    "flops_per_image",
    "folder_datamodule",
    "images_per_s",
    "inference_latency",
    "interleaved_samples",
    "matmul_gflops",
    "measure_costs",
    "median_seconds",
    "peak_memory_bytes",
    "synthetic_datamodule",
    "training_flops_per_image",
    "training_peak_memory_mb",
    "training_step",
    "training_throughput",
    "upsampler_parameters",
    "write_mitochondria_proxy",
    "write_png_folder",
    "write_street_proxy",
]
