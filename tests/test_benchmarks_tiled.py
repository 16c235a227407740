"""Tiled inference of a large image against MONAI's sliding window (unet-benchmark mode=tiled)."""

import numpy as np
import pytest
import torch

from unet.benchmarks import TiledSettings, format_tiled, run_tiled
from unet.benchmarks.subjects import checkpoint_subject, mosaic, synthetic_subject
from unet.models import UNet

# OpenVINO in the test process: run apart from the parallel suite (pyproject.toml, own_process).
pytestmark = pytest.mark.own_process


def test_tiled_inference_equals_monais_sliding_window_and_reports_speed_and_memory():
    """mode=tiled's measurement on a small scan: every runner of ours gives MONAI's probabilities
    (within 1e-4) and class map, with megapixels/s and peak memory for each; static int8 nearly so.
    Many small images: unet-predict's images/s on files one by one and batched, with equal masks.

    Slow: an ONNX export, its static int8 quantisation and OpenVINO conversion, then every runner on the
    scan and on the photo files, one by one and batched."""
    torch.manual_seed(0)
    net = UNet(in_channels=1, num_classes=2, base_channels=4, depth=2)
    net.train()
    with torch.no_grad():  # BatchNorm statistics of its own, so folding them changes the weights
        net(torch.randn(4, 1, 64, 64) * 2 + 1)
    settings = TiledSettings(
        size=200, tile_size=64, batch_size=3, rounds=2, small_images=3, small_size=(36, 48)
    )
    report = run_tiled(synthetic_subject(net, settings), settings)
    rows = {row["runner"]: row for row in report["rows"]}
    runners = ["pytorch, as loaded", "pytorch, inference form", "onnxruntime", "onnxruntime, static int8"]
    runners += [name for name in rows if name.startswith("openvino")]  # where OpenVINO is installed
    assert list(rows) == ["MONAI sliding_window_inference", *runners]
    assert report["megapixels"] == pytest.approx(0.04)
    for name, row in rows.items():
        assert row["megapixels_per_s"] > 0 and row["peak_mb"] >= 0 and row["vs_monai"] > 0, name
        assert "miou" not in row  # a synthetic image has no labels
        if name in ("onnxruntime, static int8", "openvino, bf16"):  # quantised: close, not equal
            assert row["max_probability_difference"] < 0.2 and row["mask_agreement"] > 0.9, name
        elif name != "MONAI sliding_window_inference":
            assert row["equal_within_tolerance"] and row["max_probability_difference"] < 1e-4, name
            assert row["mask_agreement"] > 0.999, name
    small = {row["runner"]: row for row in report["small_images"]["rows"]}
    assert report["small_images"]["count"] == 3 and report["small_images"]["size"] == [36, 48]
    assert report["small_images"]["images_per_pass"] == 3 * 64 * 64 // (36 * 48)
    assert small["pytorch, inference form, one by one"]["vs_one_by_one"] == 1.0
    assert "pytorch, as loaded, batched" not in small  # not a form unet-predict runs
    for name in runners[1:]:
        if name not in ("onnxruntime, static int8", "openvino, bf16"):
            assert small[f"{name}, batched"]["images_per_s"] > 0
            assert small[f"{name}, batched"]["mask_agreement"] > 0.999, name
    text = format_tiled(report, settings)
    assert "tiles 64, overlap 0.25" in text and report["machine"] in text and "3 image files of 36x48" in text


def test_a_trained_subject_is_a_mosaic_of_its_validation_images_scored_against_their_labels(tmp_path):
    """tiled.checkpoint: the image is the validation images repeated (flipped) to the size, with their
    labels; each runner's mIoU is scored beside MONAI's (equal output: no change)."""
    from test_export_deploy import synthetic_checkpoint

    settings = TiledSettings(
        size=80, tile_size=32, batch_size=2, rounds=1, small_images=2, small_size=(16, 24), onnx=False
    )
    subject = checkpoint_subject(synthetic_checkpoint(tmp_path / "run" / "best.ckpt"), settings)
    assert subject.image.shape == (80, 80, 1) and subject.image.dtype == np.uint8
    assert subject.labels.shape == (80, 80) and set(np.unique(subject.labels)) <= {0, 1, 2, 3}
    assert [photo.shape for photo in subject.photos] == [(16, 24, 1)] * 2
    report = run_tiled(subject, settings)
    for row in report["rows"]:
        assert 0 <= row["miou"] <= 1 and abs(row["miou_change"]) < 1e-3 and row["within_quality_tolerance"]
    assert "mIoU change" in format_tiled(report, settings)


def test_a_mosaic_repeats_the_images_flipped_in_turn():
    images = [np.arange(6).reshape(2, 3, 1), np.arange(6, 12).reshape(2, 3, 1)]
    tiled = mosaic(images, 5)[..., 0]
    assert tiled.shape == (5, 5)
    assert np.array_equal(tiled[:2, :3], images[0][..., 0]) and np.array_equal(
        tiled[:2, 3:5], images[1][:, :2, 0]
    )
    assert np.array_equal(tiled[2:4, :3], images[0][:, ::-1, 0])  # the third cell: the first, flipped


def test_quick_tiled_settings_are_a_few_small_tiles():
    settings = TiledSettings(size=8192, rounds=5, quick=True)
    assert (settings.size, settings.tile_size, settings.rounds) == (160, 64, 1)
    assert settings.overlap == 0.25  # what quick leaves alone stays as given
