"""Gradient checkpointing of the encoder (``UNet(checkpoint_encoder=True)``): same numbers, less memory."""

import copy

import pytest
import torch
import torch.nn.functional as F

from unet.models import UNet


def pair(upsample: str, **options) -> tuple[UNet, UNet]:
    """The same weights without and with checkpointing."""
    plain = UNet(in_channels=3, num_classes=4, upsample=upsample, depth=3, base_channels=8, **options)
    checkpointed = copy.deepcopy(plain)
    checkpointed.checkpoint_encoder = True
    return plain, checkpointed


def training_step(model: UNet, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    model.train()
    torch.manual_seed(1)  # the same dropout masks in both models
    logits = model(x)
    F.cross_entropy(logits, y).backward()
    return logits.detach()


@pytest.mark.parametrize("upsample", ["bilinear", "maxunpool"])
@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_same_outputs_gradients_and_batchnorm_statistics(upsample, dropout):
    plain, checkpointed = pair(upsample, dropout=dropout)
    x, y = torch.randn(2, 3, 40, 36), torch.randint(0, 4, (2, 40, 36))
    torch.testing.assert_close(training_step(checkpointed, x, y), training_step(plain, x, y))
    for (name, p), q in zip(plain.named_parameters(), checkpointed.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, msg=f"gradient of {name}")
    # The recomputation during backward must not update the running statistics a second time.
    for (name, b), c in zip(plain.named_buffers(), checkpointed.buffers(), strict=True):
        assert torch.equal(c, b), f"buffer {name} differs"
    assert checkpointed.encoder[0][1].num_batches_tracked.item() == 1


def test_encoder_blocks_are_checkpointed_only_in_training_with_grad(monkeypatch):
    calls = []
    real = torch.utils.checkpoint.checkpoint

    def counting(*args, **kwargs):
        calls.append(kwargs.get("use_reentrant"))
        return real(*args, **kwargs)

    monkeypatch.setattr("unet.models.unet.checkpoint", counting)
    plain, checkpointed = pair("bilinear")
    x = torch.randn(1, 3, 32, 32)
    plain.eval()
    checkpointed.eval()
    assert torch.equal(checkpointed(x), plain(x))
    assert calls == []  # eval mode: the flag has no effect
    checkpointed.train()
    with torch.no_grad():
        checkpointed(x)
    assert calls == []  # no graph to save memory on
    checkpointed(x).sum().backward()
    assert calls == [False] * 4  # depth 3: four encoder blocks, each non-reentrant


def test_off_by_default():
    assert UNet().checkpoint_encoder is False
