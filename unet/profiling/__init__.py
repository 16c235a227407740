"""Measuring cost: drift-corrected timing, model costs, data throughput, speed levers, the benchmark.

Plain torch and the data layer: no Lightning module and no Hydra here; ``unet-benchmark`` and
``unet-compare`` are the commands that configure and call it.
"""

from unet.profiling.benchmark import BenchmarkSettings, format_report, run_benchmark
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
from unet.profiling.levers import measure_data_levers, measure_levers, without_inplace_activations
from unet.profiling.scaling import SCALING_SIZES, measure_scaling
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
    "SCALING_SIZES",
    "BenchmarkSettings",
    "InputSpec",
    "StepSample",
    "data_throughput",
    "efficiency",
    "flops_per_image",
    "folder_datamodule",
    "format_report",
    "images_per_s",
    "inference_latency",
    "interleaved_samples",
    "matmul_gflops",
    "measure_costs",
    "measure_data_levers",
    "measure_levers",
    "measure_scaling",
    "median_seconds",
    "peak_memory_bytes",
    "run_benchmark",
    "synthetic_datamodule",
    "training_flops_per_image",
    "training_peak_memory_mb",
    "training_step",
    "training_throughput",
    "upsampler_parameters",
    "without_inplace_activations",
    "write_mitochondria_proxy",
    "write_png_folder",
    "write_street_proxy",
]
