"""`data.train_scale`: the network works at a reduced resolution; scores, exports and predictions stay full size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY_RUN

from unet.export import export_checkpoint
from unet.inference import load_predictor
from unet.models.loading import read_sidecar
from unet.models.networks import ScaledNetwork, build_network
from unet.training.checkpoint import module_from_checkpoint
from unet.training.run import train


def test_scaled_network_runs_at_the_scale_and_answers_at_the_input_size():
    seen = []

    class Probe(torch.nn.Module):
        min_size = 4

        def forward(self, x):
            seen.append(tuple(x.shape[-2:]))
            return x.mean(dim=1, keepdim=True).repeat(1, 3, 1, 1)

    scaled = ScaledNetwork(Probe(), 0.5)
    assert scaled(torch.randn(2, 1, 40, 62)).shape == (2, 3, 40, 62)
    assert seen == [(20, 31)] and scaled.min_size == 8
    with pytest.raises(ValueError, match="input_scale must be in"):
        ScaledNetwork(Probe(), 1.5)


@pytest.fixture(scope="module")
def half_scale_run(tmp_path_factory):
    from unet.utils.config import compose_config

    output_dir = tmp_path_factory.mktemp("half")
    train(
        compose_config(
            "train",
            [f"paths.output_dir={output_dir}", *TINY_RUN, "trainer.max_epochs=1", "data.train_scale=0.5"],
        )
    )
    return output_dir


def test_training_at_half_scale_scores_and_predicts_at_full_size(half_scale_run, tmp_path):
    checkpoint = half_scale_run / "checkpoints" / "best.ckpt"
    module, _ = module_from_checkpoint(checkpoint)
    assert module.hparams.input_scale == 0.5 and isinstance(module.net, ScaledNetwork)
    assert module.network_config["input_scale"] == 0.5
    images = np.random.default_rng(0).standard_normal((1, 1, 40, 56)).astype(np.float32)
    reference = load_predictor(checkpoint)(images)
    assert reference.shape == (1, 4, 40, 56)
    for export_format, suffix in [("onnx", ".onnx"), ("torchscript", ".pt"), ("weights", ".weights.pt")]:
        path, _ = export_checkpoint(checkpoint, export_format, tmp_path / f"m{suffix}")
        metadata = read_sidecar(path)
        assert metadata["net"]["input_scale"] == 0.5 and metadata["min_size"] == 8  # depth 2 at half scale
        np.testing.assert_allclose(load_predictor(path)(images), reference, atol=1e-4)
    rebuilt = build_network(module.network_config)
    assert isinstance(rebuilt, ScaledNetwork) and rebuilt.inner.depth == 2
