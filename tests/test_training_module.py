"""Speed options of the Lightning module change the layout, never the numbers or the checkpoint."""

import pytest
import torch

from unet.training.module import SegmentationModule
from unet.utils.errors import ConfigError

SMALL = {
    "in_channels": 1,
    "num_classes": 2,
    "net": {"_target_": "unet.models.UNet", "depth": 2, "base_channels": 8},
}


def test_channels_last_module_computes_the_same_and_its_checkpoint_loads_anywhere():
    torch.manual_seed(0)
    contiguous = SegmentationModule(**SMALL).eval()
    channels_last = SegmentationModule(**SMALL, memory_format="channels_last").eval()
    channels_last.load_state_dict(contiguous.state_dict())
    conv = next(
        m for m in channels_last.net.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1
    )
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    images = torch.randn(2, 1, 32, 32)  # plain NCHW input, as the datamodule serves it
    with torch.no_grad():
        torch.testing.assert_close(channels_last(images), contiguous(images), atol=1e-5, rtol=1e-5)
    contiguous.load_state_dict(channels_last.state_dict())  # same keys, either way


def test_unknown_memory_format_lists_the_valid_ones():
    with pytest.raises(
        ValueError, match="model.memory_format='nhwc': expected one of contiguous, channels_last"
    ):
        SegmentationModule(**SMALL, memory_format="nhwc")


def test_an_optimizer_that_refuses_the_configs_options_is_a_config_error_naming_the_key():
    module = SegmentationModule(
        **SMALL, optimizer={"_target_": "torch.optim.SGD", "lr": -1.0}, scheduler=None
    )
    with pytest.raises(
        ConfigError, match=r"^model.optimizer \(torch.optim.SGD\): Invalid learning rate: -1.0"
    ):
        module.configure_optimizers()


def test_a_loss_option_the_loss_does_not_take_is_a_config_error_naming_the_key():
    loss = {"_target_": "unet.training.losses.SegmentationLoss", "dice_wieght": 1.0}
    with pytest.raises(
        ConfigError, match=r"^model.loss \(unet.training.losses.SegmentationLoss\): .*'dice_wieght'"
    ):
        SegmentationModule(**SMALL, loss=loss)


def test_a_loss_value_the_loss_refuses_keeps_the_losses_own_message():
    loss = {"_target_": "unet.training.losses.SegmentationLoss", "focal_gamma": -1.0}
    with pytest.raises(ConfigError, match="focal_gamma must be >= 0, got -1.0") as refused:
        SegmentationModule(**SMALL, loss=loss)
    assert not str(refused.value).startswith("model.loss")
