"""BatchNorm folding: an inference-only rewrite of a trained network that keeps its outputs and cuts its
memory traffic (not the skip-connection fusion of ``model.net.fuse``)."""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batch_norms(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` in which every ``Conv2d`` followed by a ``BatchNorm2d`` is one conv.

    In eval mode a BatchNorm is a per-channel affine map, so it folds into the preceding conv's
    weights and bias: the same outputs (up to float rounding) with one pass over each activation
    less. ``model`` itself is left as it is.
    """
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if not isinstance(module, nn.Sequential):
            continue
        for index in range(len(module) - 1):
            conv, norm = module[index], module[index + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                module[index] = fuse_conv_bn_eval(conv, norm)
                module[index + 1] = nn.Identity()
    return folded
