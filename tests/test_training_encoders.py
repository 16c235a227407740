"""Backbone encoders through the training pipeline: config keys, pretrained weights, freezing, encoder
learning rate, normalisation planned from the weights, and checkpoints that rebuild without them."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from conftest import TINY_RUN

from unet.planning import plan_config
from unet.training.checkpoint import check_same_network, module_from_checkpoint
from unet.training.module import SegmentationModule
from unet.training.run import build_datamodule, build_module, train

# TINY_RUN on fewer images (a ResNet is larger); its depth and base_channels are ignored by backbones.
ENCODER_RUN = [*TINY_RUN, "data.num_train=16", "data.num_val=4", "data.num_test=4", "data.batch_size=4",
               "model.encoder=resnet18"]  # fmt: skip


def test_a_run_starts_from_the_weights_file_and_its_checkpoint_rebuilds_without_it(
    compose_config, resnet18_file, tmp_path
):
    cfg = compose_config(
        "train", *ENCODER_RUN, f"model.encoder_weights={resnet18_file}", "trainer.max_epochs=1"
    )
    datamodule = build_datamodule(cfg.data)
    module = build_module(cfg.model, datamodule)
    stored = torch.load(resnet18_file, weights_only=True)
    # Gray data: the first convolution's RGB kernels summed; the other layers as stored.
    torch.testing.assert_close(
        module.net.encoder.stages[1][1][0].conv1.weight, stored["layer1.0.conv1.weight"]
    )
    torch.testing.assert_close(
        module.net.encoder.stages[0][0].weight, stored["conv1.weight"].sum(1, keepdim=True)
    )
    assert "encoder_weights" not in module.network_config and module.network_config["encoder"] == "resnet18"

    train(cfg)
    moved = tmp_path / "elsewhere.pth"
    resnet18_file.rename(moved)  # a checkpoint holds its weights: the file it started from is not needed
    try:
        rebuilt, checkpoint = module_from_checkpoint(tmp_path / "checkpoints" / "best.ckpt")
    finally:
        moved.rename(resnet18_file)
    assert checkpoint["hyper_parameters"]["encoder"] == "resnet18"
    assert rebuilt.hparams.encoder_weights is None
    check_same_network(checkpoint, module, "best.ckpt")  # the same network: resuming is allowed


def test_resuming_with_another_encoder_is_refused_naming_the_key(compose_config, tmp_path):
    cfg = compose_config("train", *ENCODER_RUN)
    datamodule = build_datamodule(cfg.data)
    module = build_module(cfg.model, datamodule)
    other = build_module(
        compose_config("train", *ENCODER_RUN[:-1], "model.encoder=resnet34").model, datamodule
    )
    checkpoint = {"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}
    with pytest.raises(ValueError, match="model.encoder: resnet18 in the checkpoint, resnet34 in the config"):
        check_same_network(checkpoint, other, "last.ckpt")


def frozen_run(compose_config, freeze_epochs: int, epochs: int) -> tuple[dict, dict]:
    cfg = compose_config("train", *ENCODER_RUN, f"model.freeze_encoder_epochs={freeze_epochs}")
    datamodule = build_datamodule(cfg.data)
    module = build_module(cfg.model, datamodule)
    before = {key: value.clone() for key, value in module.net.state_dict().items()}
    trainer = L.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_train_batches=2, limit_val_batches=1)  # fmt: skip
    trainer.fit(module, datamodule=datamodule)
    return before, module.net.state_dict()


def test_a_frozen_encoder_keeps_its_weights_and_batchnorm_statistics_then_trains(compose_config):
    before, after = frozen_run(compose_config, freeze_epochs=1, epochs=1)
    encoder = [key for key in before if key.startswith("encoder.")]
    decoder = [key for key in before if key.startswith("decoder.") and key.endswith("weight")]
    assert any("running_mean" in key for key in encoder)
    assert all(torch.equal(before[key], after[key]) for key in encoder)
    assert all(not torch.equal(before[key], after[key]) for key in decoder)
    before, after = frozen_run(compose_config, freeze_epochs=1, epochs=2)  # the second epoch trains it
    assert not torch.equal(before["encoder.stages.0.0.weight"], after["encoder.stages.0.0.weight"])
    assert not torch.equal(
        before["encoder.stages.0.1.running_mean"], after["encoder.stages.0.1.running_mean"]
    )


def test_the_encoder_learns_at_its_fraction_of_the_learning_rate(compose_config):
    cfg = compose_config("train", *ENCODER_RUN, "model.encoder_lr_ratio=0.1", "model.scheduler=null")
    module = build_module(cfg.model, build_datamodule(cfg.data))
    encoder_group, rest_group = module.configure_optimizers()["optimizer"].param_groups
    assert encoder_group["lr"] == pytest.approx(1e-4) and rest_group["lr"] == pytest.approx(1e-3)
    assert sum(p.numel() for p in encoder_group["params"]) == sum(
        p.numel() for p in module.net.encoder.parameters()
    )
    assert len(encoder_group["params"]) + len(rest_group["params"]) == len(list(module.parameters()))


def test_pretrained_weights_plan_the_normalisation_they_expect(
    compose_config, resnet18_file, tmp_path, fixed_training_speed
):
    from test_configs import write_folder_data

    write_folder_data(tmp_path / "data")
    folder = ["data=folder", f"data.root={tmp_path / 'data'}", "data.in_channels=1", "data.val_fraction=0.34",
              "+data.mask_mapping={0: 0, 255: 1, 100: 255}", "data.ignore_index=255"]  # fmt: skip
    cfg = compose_config("train", *folder, "model.encoder=resnet18", f"model.encoder_weights={resnet18_file}")
    plan = plan_config(cfg)
    # ImageNet's statistics averaged over RGB for gray images, as the first convolution's kernels are summed.
    assert plan.value("data.mean") == [round((0.485 + 0.456 + 0.406) / 3, 4)]
    assert plan.value("data.std") == [round((0.229 + 0.224 + 0.225) / 3, 4)]
    assert "resnet18 weights" in plan.choices["data.mean"].reason
    plain = plan_config(compose_config("train", *folder, "model.encoder=resnet18"))
    assert "training images" in plain.choices["data.mean"].reason


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"freeze_encoder_epochs": -1}, "model.freeze_encoder_epochs must be an integer >= 0"),
        ({"encoder_lr_ratio": 0}, "model.encoder_lr_ratio must be positive"),
    ],
)
def test_bad_encoder_options_are_refused_with_their_key(options, message):
    with pytest.raises(ValueError, match=message):
        SegmentationModule(in_channels=1, num_classes=2, **options)


def test_a_network_without_an_encoder_refuses_encoder_options():
    net = {"_target_": "unet.models.peers.monai_basicunet", "features": [4, 4, 8, 8, 16, 4]}
    pytest.importorskip("monai", reason='needs pip install -e ".[baselines]"')
    with pytest.raises(ValueError, match=r"has no encoder to choose; set model.encoder=null"):
        SegmentationModule(in_channels=1, num_classes=2, net=net, upsample=None, encoder="resnet18")
    with pytest.raises(ValueError, match="need a network with an `encoder`"):
        SegmentationModule(in_channels=1, num_classes=2, net=net, upsample=None, freeze_encoder_epochs=1)
