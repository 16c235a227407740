"""Peer networks are configs of model/net like the U-Net: trained, stored, exported and rebuilt the same way."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY_RUN

from unet.export import export_checkpoint
from unet.inference import load_predictor
from unet.models import build_network
from unet.models.loading import read_sidecar
from unet.training.module import SegmentationModule
from unet.training.run import train

# TINY_RUN without its U-Net options, which a peer does not take.
TINY_DATA = [override for override in TINY_RUN if not override.startswith("model.net.")]


def test_monai_basicunet_trains_exports_and_predicts_through_the_pipeline(compose_config, tmp_path):
    pytest.importorskip("monai", reason='needs pip install -e ".[baselines]"')
    cfg = compose_config(
        "train", *TINY_DATA, "trainer.max_epochs=1", "model/net=monai_basicunet", "model.upsample=null", "model.encoder=null",
        "model.net.features=[4,4,8,8,16,4]",
    )  # fmt: skip
    metrics = train(cfg)
    assert 0 <= metrics["val/miou"] <= 1
    assert (tmp_path / "tensorboard" / "monai_basicunet" / "version_0").is_dir()
    checkpoint = tmp_path / "checkpoints" / "best.ckpt"
    weights, _ = export_checkpoint(checkpoint, "weights", tmp_path / "peer.weights.pt")
    sidecar = read_sidecar(weights)
    assert sidecar["net"]["_target_"] == "unet.models.peers.monai_basicunet" and sidecar["upsample"] is None
    assert sidecar["net"]["features"] == [4, 4, 8, 8, 16, 4] and sidecar["min_size"] == 16
    images = np.random.default_rng(0).standard_normal((1, 1, 48, 40)).astype(np.float32)
    np.testing.assert_allclose(load_predictor(weights)(images), load_predictor(checkpoint)(images), atol=1e-5)


def test_a_peer_without_a_decoder_choice_refuses_an_upsampling_method():
    pytest.importorskip("monai", reason='needs pip install -e ".[baselines]"')
    net = {"_target_": "unet.models.peers.monai_basicunet", "features": [4, 4, 8, 8, 16, 4]}
    with pytest.raises(ValueError, match=r"has no decoder upsampling to choose; set model.upsample=null"):
        SegmentationModule(in_channels=1, num_classes=2, net=net, upsample="maxunpool")


def test_smp_unet_builds_from_its_config():
    pytest.importorskip("segmentation_models_pytorch", reason='needs pip install -e ".[baselines]"')
    net = build_network({"_target_": "unet.models.peers.smp_unet", "in_channels": 3, "num_classes": 5})
    with torch.no_grad():
        assert net.eval()(torch.randn(1, 3, 64, 96)).shape == (1, 5, 64, 96)
    assert net.min_size == 32
