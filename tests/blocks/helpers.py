"""Shared by the per-block tests."""

from __future__ import annotations

import torch


def randomize_bn(block, seed: int = 3, mean_scale: float = 0.1) -> None:
    """Give every BatchNorm non-trivial running statistics and affine weights, so functional
    reimplementations are compared on more than the identity normalisation."""
    gen = torch.Generator().manual_seed(seed)
    for m in block.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * mean_scale)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.num_features, generator=gen))
                m.bias.copy_(torch.randn(m.num_features, generator=gen))
