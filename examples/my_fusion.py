"""A 2-D fusion as a user would write it: concatenate on channels, 3x3 conv, batch norm, ReLU.

    fusion inspect examples/my_fusion.py:MyFusion --in 64x32x32 --in 64x32x32 --out 64
"""

import torch
from torch import nn


class MyFusion(nn.Module):
    """concat(X1..Xn) -> Conv3x3 (no bias) -> BatchNorm2d -> ReLU; inputs B x Ci x H x W, output B x out x H x W."""

    def __init__(self, in_channels: list[int], out_channels: int, kernel_size: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(sum(in_channels), out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(torch.cat(xs, dim=1))))
