"""Model cost measurements on a tiny U-Net: counts that are known exactly, timings that are sane."""

import math

import pytest
import torch
from torch import nn

from unet.models import UNet
from unet.models.sizing import count_parameters
from unet.profiling import (
    COST_KEYS,
    InputSpec,
    flops_per_image,
    inference_latency,
    measure_costs,
    peak_memory_bytes,
    training_throughput,
    upsampler_parameters,
)

SPEC = InputSpec(in_channels=3, num_classes=2, height=32, width=32, batch_size=2)


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
    small = flops_per_image(model, SPEC)
    assert 3.5 < flops_per_image(model, InputSpec(3, 2, 64, 64)) / small < 4.5
    assert model.training


def test_throughput_and_latency_are_positive_and_the_model_is_untouched():
    model = tiny().eval()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    throughput = training_throughput(model, SPEC, steps=2, warmup=1)
    latency = inference_latency(model, SPEC, repeats=3, warmup=1, channels_last=True)
    assert 0 < throughput < math.inf and 0 < latency < math.inf
    assert not model.training
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_peak_memory_sees_a_200_megabyte_tensor():
    assert peak_memory_bytes(lambda: torch.ones(50_000_000)) >= 150e6  # 50M float32 = 200 MB


def test_measure_costs_fills_every_report_column():
    model = tiny("transposed")
    costs = measure_costs({"transposed": model}, SPEC, rounds=1, warmup=0, repeats=1)
    assert list(costs) == ["transposed"]
    cost = costs["transposed"]
    assert tuple(cost) == COST_KEYS
    assert cost["params"] == count_parameters(model)
    assert cost["upsampler_params"] == upsampler_parameters(model)
    assert cost["gflops"] == pytest.approx(flops_per_image(model, SPEC) / 1e9)
    assert all(value > 0 for value in cost.values())


def test_measure_costs_times_several_models_together():
    # A network that is not our U-Net has no upsampler count: NaN, not a misleading 0.
    other = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 1))
    costs = measure_costs({"nearest": tiny("nearest"), "other": other}, SPEC, rounds=2, warmup=1, repeats=1)
    assert list(costs) == ["nearest", "other"]
    for cost in costs.values():
        assert tuple(cost) == COST_KEYS
        assert 0 < cost["train_images_per_s"] < math.inf
    assert math.isnan(costs["other"]["upsampler_params"])
