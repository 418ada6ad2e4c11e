"""A 3-D fusion: volumes (C x D x H x W) concatenated on channels, then a 3x3x3 convolution.

    fusion inspect examples/volume_fusion.py:volume_fusion --in 32x8x32x32 --in 32x8x32x32 --out 32
"""

from torch import nn

from _blocks import Concat  # a sibling module: the file's folder is importable while it loads


def volume_fusion(in_channels: list[int], out_channels: int, norm: bool = True) -> nn.Module:
    """A factory: concat -> Conv3d 3x3x3 (bias only without norm) -> [BatchNorm3d] -> ReLU."""
    layers = [Concat(), nn.Conv3d(sum(in_channels), out_channels, 3, padding=1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm3d(out_channels))
    layers.append(nn.ReLU())
    return Seq(*layers)


class Seq(nn.Sequential):
    """nn.Sequential whose first layer takes every input."""

    def forward(self, *xs):
        x = self[0](*xs)
        for layer in list(self)[1:]:
            x = layer(x)
        return x
