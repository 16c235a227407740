"""Model cost measurements on a tiny U-Net: counts that are known exactly, timings that are sane."""

import math

import pytest
import torch

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
from unet.models import UNet


def tiny(upsample: str = "nearest") -> UNet:
    return UNet(in_channels=3, num_classes=2, upsample=upsample, depth=2, base_channels=8)


def test_parameter_counts_match_the_layer_shapes():
    nearest, transposed = tiny("nearest"), tiny("transposed")
    # Decoder stages map 32 -> 16 and 16 -> 8 channels: a 1x1 conv vs a 2x2 transposed conv, with bias.
    stages = [(32, 16), (16, 8)]
    assert upsampler_parameters(nearest) == sum(cin * cout + cout for cin, cout in stages)
    assert upsampler_parameters(transposed) == sum(cin * cout * 4 + cout for cin, cout in stages)
    difference = upsampler_parameters(transposed) - upsampler_parameters(nearest)
    assert count_parameters(transposed) - count_parameters(nearest) == difference
    assert count_parameters(nearest) == sum(p.numel() for p in nearest.parameters())


def test_flops_scale_with_the_number_of_pixels_and_leave_the_model_as_it_was():
    model = tiny().train()
    small = flops_per_image(model, 3, 32, 32)
    assert 3.5 < flops_per_image(model, 3, 64, 64) / small < 4.5
    assert model.training


def test_throughput_and_latency_are_positive_and_the_model_is_untouched():
    model = tiny().eval()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    throughput = training_throughput(model, 2, 3, 2, 32, 32, steps=2, warmup=1)
    latency = inference_latency(model, 3, 32, 32, repeats=3, warmup=1, channels_last=True)
    assert 0 < throughput < math.inf and 0 < latency < math.inf
    assert not model.training
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_peak_memory_sees_a_200_megabyte_tensor():
    assert peak_memory_bytes(lambda: torch.ones(50_000_000)) >= 150e6  # 50M float32 = 200 MB


def test_model_costs_fills_every_report_column():
    model = tiny("transposed")
    costs = model_costs(model, 3, 2, 32, 32, batch_size=2, steps=1, warmup=0, repeats=1)
    assert tuple(costs) == COST_KEYS
    assert costs["params"] == count_parameters(model)
    assert costs["upsampler_params"] == upsampler_parameters(model)
    assert costs["gflops"] == pytest.approx(flops_per_image(model, 3, 32, 32) / 1e9)
    assert all(value > 0 for value in costs.values())
