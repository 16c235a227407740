"""Files written by earlier versions still work: unet 0.1's checkpoints and weight exports (tests/fixtures/).

The fixtures are real outputs of unet 0.1.0: a 1-epoch ``maxunpool`` run on tiny synthetic data
(depth 2, base width 4) and its ``unet-export format=weights`` file with the sidecar of that version.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from unet.export import export_checkpoint, read_metadata
from unet.inference import load_predictor
from unet.models import build_network
from unet.training.checkpoint import CheckpointError, load_checkpoint, module_from_checkpoint
from unet.training.evaluate import evaluate
from unet.training.module import CHECKPOINT_FORMAT, FORMAT_KEY

FIXTURES = Path(__file__).parent / "fixtures"
V0_1_CHECKPOINT = FIXTURES / "v0.1.0_maxunpool.ckpt"
V0_1_WEIGHTS = FIXTURES / "v0.1.0_maxunpool.weights.pt"


def test_a_v0_1_checkpoint_is_upgraded_to_the_network_config():
    module, checkpoint = module_from_checkpoint(V0_1_CHECKPOINT)
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
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(images), module(images))


def test_a_v0_1_checkpoint_evaluates_and_exports_with_the_new_sidecar(compose_config, tmp_path):
    result = evaluate(compose_config("eval", f"ckpt_path={V0_1_CHECKPOINT}"))
    assert result["upsample"] == "maxunpool" and 0 <= result["metrics"]["test/miou"] <= 1
    path, _ = export_checkpoint(V0_1_CHECKPOINT, "weights", tmp_path / "m.weights.pt")
    metadata = read_metadata(path)
    assert metadata["net"]["upsample"] == "maxunpool" and metadata["net"]["depth"] == 2
    assert metadata["min_size"] == 4 and metadata["versions"]["unet"] != "0.1.0"


def test_a_v0_1_weights_export_predicts_like_its_checkpoint():
    assert "unet" in json.loads(Path(f"{V0_1_WEIGHTS}.json").read_text())  # the old sidecar layout
    images = np.random.default_rng(0).standard_normal((1, 1, 23, 31)).astype(np.float32)
    np.testing.assert_allclose(
        load_predictor(V0_1_WEIGHTS)(images), load_predictor(V0_1_CHECKPOINT)(images), atol=1e-5
    )


def test_a_checkpoint_of_a_newer_format_is_refused_naming_both_versions(tmp_path):
    checkpoint = torch.load(V0_1_CHECKPOINT, weights_only=True)
    checkpoint.update({FORMAT_KEY: CHECKPOINT_FORMAT + 1, "unet_version": "9.0.0"})
    torch.save(checkpoint, tmp_path / "future.ckpt")
    with pytest.raises(CheckpointError, match=r"written by unet 9\.0\.0 .*upgrade unet"):
        load_checkpoint(tmp_path / "future.ckpt")


@pytest.mark.parametrize("key", ["network", "loss"])
def test_a_target_outside_the_trusted_packages_is_refused(key, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    checkpoint = torch.load(V0_1_CHECKPOINT, weights_only=True)
    checkpoint["hyper_parameters"][key] = {"_target_": "os.system", "command": "touch pwned"}
    torch.save(checkpoint, tmp_path / "evil.ckpt")
    with pytest.raises(ValueError, match="'os.system' is outside the packages"):
        module_from_checkpoint(tmp_path / "evil.ckpt")
    assert not (tmp_path / "pwned").exists()


def test_a_stored_data_config_naming_untrusted_code_is_refused(compose_config, tmp_path):
    checkpoint = torch.load(V0_1_CHECKPOINT, weights_only=True)
    checkpoint["unet_run_config"]["data"]["train_transforms"] = [
        {"_target_": "subprocess.call", "args": "true"}
    ]
    torch.save(checkpoint, tmp_path / "evil.ckpt")
    with pytest.raises(ValueError, match="'subprocess.call' is outside the packages"):
        evaluate(compose_config("eval", f"ckpt_path={tmp_path / 'evil.ckpt'}"))
