"""Every method can learn: a tiny model overfits one synthetic batch on the CPU."""

import pytest
import torch
import torch.nn.functional as F

from unet.models import UPSAMPLERS, UNet


def one_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Two 32x32 images: bright disc (class 1) and square (class 2) on a noisy background."""
    generator = torch.Generator().manual_seed(0)
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    masks = torch.zeros(2, 32, 32, dtype=torch.long)
    masks[0][(ys - 12) ** 2 + (xs - 18) ** 2 < 49] = 1
    masks[1][6:20, 10:26] = 2
    masks[1][(ys - 25) ** 2 + (xs - 8) ** 2 < 16] = 1
    images = masks[:, None].float() * 0.6 + 0.3 * torch.randn(2, 1, 32, 32, generator=generator)
    return images, masks


@pytest.mark.parametrize("method", sorted(UPSAMPLERS))
def test_tiny_model_overfits_one_batch(method):
    images, masks = one_batch()
    model = UNet(in_channels=1, num_classes=3, depth=2, base_channels=16, upsample=method)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(35):
        loss = F.cross_entropy(model(images), masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 20, f"{method}: loss {losses[0]:.3f} -> {losses[-1]:.3f}"
