"""Files written by earlier versions still work: unet 0.1's checkpoints and weight exports.

The files are rebuilt here in unet 0.1.0's exact layout, as recorded from that version's output (a
``maxunpool`` run on tiny synthetic data, depth 2, base width 4, and its ``unet-export format=weights``
file): the U-Net's options beside the module's in the hyper-parameters, no format key, and a sidecar
holding the options as ``unet``. The weights are fresh; the layout is what is under test.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from unet.export import export_checkpoint
from unet.inference import load_predictor
from unet.models import UNet, build_network, load_model
from unet.models.loading import CHECKPOINT_FORMAT, FORMAT_KEY, load_checkpoint, read_sidecar
from unet.models.safe_loading import CheckpointError
from unet.training.checkpoint import module_from_checkpoint
from unet.training.evaluate import evaluate

# unet 0.1.0's U-Net options, as its hyper-parameters and weights sidecar held them.
V0_1_UNET = {
    "in_channels": 1, "num_classes": 4, "upsample": "maxunpool", "upsample_options": {}, "depth": 2,
    "base_channels": 4, "fuse": "concat", "norm": "batch", "activation": "relu", "dropout": 0.0, "decoder_width": 1.0,
}  # fmt: skip
V0_1_HYPER_PARAMETERS = {
    **V0_1_UNET,
    "class_names": ["background", "circle", "square", "triangle"], "ignore_index": None, "mean": [0.5], "std": [0.18],
    "checkpoint_encoder": False,
    "loss": {"_target_": "unet.training.losses.SegmentationLoss", "ce_weight": 1.0, "dice_weight": 1.0, "class_weights": None},
    "optimizer": {"_target_": "torch.optim.AdamW", "lr": 0.001, "weight_decay": 0.0001},
    "scheduler": {"_target_": "unet.training.schedules.WarmupCosine", "warmup_steps": 0, "min_lr_ratio": 0.01},
    "network": None, "memory_format": "contiguous", "compile": False,
}  # fmt: skip
V0_1_DATA = {
    "_target_": "unet.data.SyntheticDataModule", "num_train": 32, "num_val": 8, "num_test": 8, "image_size": 32,
    "in_channels": 1, "num_shapes": [1, 4], "noise": 0.08, "seed": 0, "batch_size": 8, "num_workers": 0,
    "train_transforms": [{"_target_": "albumentations.HorizontalFlip", "p": 0.5}],
    "val_transforms": None, "test_transforms": None,
}  # fmt: skip


@pytest.fixture(scope="module")
def v0_1(tmp_path_factory) -> SimpleNamespace:
    """A unet 0.1.0 checkpoint and weights export (with its sidecar), in that version's layout."""
    root = tmp_path_factory.mktemp("v0_1")
    torch.manual_seed(0)
    net = UNet(**V0_1_UNET)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so eval mode differs from a fresh model
        for _ in range(2):
            net(torch.randn(4, 1, 32, 32))
    state = {name: tensor.clone() for name, tensor in net.state_dict().items()}
    checkpoint = root / "best.ckpt"
    torch.save(
        {"epoch": 0, "global_step": 4, "pytorch-lightning_version": "2.6.0",
         "state_dict": {f"net.{name}": tensor for name, tensor in state.items()},
         "hyper_parameters": V0_1_HYPER_PARAMETERS, "unet_run_config": {"data": V0_1_DATA}},
        checkpoint,
    )  # fmt: skip
    weights = root / "best.weights.pt"
    torch.save(state, weights)
    sidecar = {
        "format": "weights", "in_channels": 1, "num_classes": 4, "class_names": V0_1_HYPER_PARAMETERS["class_names"],
        "ignore_index": None, "mean": [0.5], "std": [0.18], "upsample": "maxunpool", "upsample_options": {},
        "depth": 2, "min_size": 4, "metrics": {}, "versions": {"unet": "0.1.0"}, "unet": V0_1_UNET,
    }  # fmt: skip
    Path(f"{weights}.json").write_text(json.dumps(sidecar))
    return SimpleNamespace(checkpoint=checkpoint, weights=weights)


def test_a_v0_1_checkpoint_is_upgraded_to_the_network_config(v0_1):
    module, checkpoint = module_from_checkpoint(v0_1.checkpoint)
    assert FORMAT_KEY not in checkpoint  # written before formats were recorded
    hparams = module.hparams
    assert hparams.upsample == "maxunpool" and "depth" not in hparams and "network" not in hparams
    assert hparams.net["_target_"] == "unet.models.UNet"
    assert (hparams.net["depth"], hparams.net["base_channels"], hparams.net["norm"]) == (2, 4, "batch")
    config = module.network_config
    assert (config["in_channels"], config["num_classes"], config["upsample"]) == (1, 4, "maxunpool")
    # The weights are the file's: a network rebuilt from the config and loaded strictly agrees.
    rebuilt = build_network(config).eval()
    rebuilt.load_state_dict({k.removeprefix("net."): v for k, v in checkpoint["state_dict"].items()})
    images = torch.randn(2, 1, 20, 28)
    loaded = load_model(v0_1.checkpoint)
    assert loaded.net_config == config and (loaded.format_version, loaded.unet_version) == (1, None)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(images), module(images))
        torch.testing.assert_close(loaded.network(images), module(images))


def test_a_v0_1_checkpoint_evaluates_and_exports_with_the_new_sidecar(v0_1, compose_config, tmp_path):
    result = evaluate(compose_config("eval", f"ckpt_path={v0_1.checkpoint}"))
    assert result["upsample"] == "maxunpool" and 0 <= result["metrics"]["test/miou"] <= 1
    path, _ = export_checkpoint(v0_1.checkpoint, "weights", tmp_path / "m.weights.pt")
    metadata = read_sidecar(path)
    assert metadata["net"]["upsample"] == "maxunpool" and metadata["net"]["depth"] == 2
    assert metadata["min_size"] == 4 and metadata["versions"]["unet"] != "0.1.0"


def test_a_v0_1_weights_export_predicts_like_its_checkpoint(v0_1):
    assert "unet" in json.loads(Path(f"{v0_1.weights}.json").read_text())  # the old sidecar layout
    images = np.random.default_rng(0).standard_normal((1, 1, 23, 31)).astype(np.float32)
    np.testing.assert_allclose(
        load_predictor(v0_1.weights)(images), load_predictor(v0_1.checkpoint)(images), atol=1e-5
    )


def test_a_checkpoint_of_a_newer_format_is_refused_naming_both_versions(v0_1, tmp_path):
    checkpoint = torch.load(v0_1.checkpoint, weights_only=True)
    checkpoint.update({FORMAT_KEY: CHECKPOINT_FORMAT + 1, "unet_version": "9.0.0"})
    torch.save(checkpoint, tmp_path / "future.ckpt")
    with pytest.raises(CheckpointError, match=r"written by unet 9\.0\.0 .*upgrade unet"):
        load_checkpoint(tmp_path / "future.ckpt")


@pytest.mark.parametrize("key", ["network", "loss"])
def test_a_target_outside_the_trusted_packages_is_refused(v0_1, key, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    checkpoint = torch.load(v0_1.checkpoint, weights_only=True)
    checkpoint["hyper_parameters"][key] = {"_target_": "os.system", "command": "touch pwned"}
    torch.save(checkpoint, tmp_path / "evil.ckpt")
    for load in (load_model, module_from_checkpoint):
        with pytest.raises(
            CheckpointError, match="evil.ckpt cannot be loaded: .*'os.system' is outside the packages"
        ):
            load(tmp_path / "evil.ckpt")
    assert not (tmp_path / "pwned").exists()


def test_a_stored_data_config_naming_untrusted_code_is_refused(v0_1, compose_config, tmp_path):
    checkpoint = torch.load(v0_1.checkpoint, weights_only=True)
    checkpoint["unet_run_config"]["data"]["train_transforms"] = [
        {"_target_": "subprocess.call", "args": "true"}
    ]
    torch.save(checkpoint, tmp_path / "evil.ckpt")
    with pytest.raises(ValueError, match="'subprocess.call' is outside the packages"):
        evaluate(compose_config("eval", f"ckpt_path={tmp_path / 'evil.ckpt'}"))
