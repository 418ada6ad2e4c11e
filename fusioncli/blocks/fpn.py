"""FPN top-down merge: lateral 1x1 convs, nearest upsampling of the coarser merged map, 3x3 conv.

Paper: Lin, Dollar, Girshick, He, Hariharan, Belongie, Feature Pyramid Networks for Object
Detection, CVPR 2017. Canonical code: open-mmlab/mmdetection ``mmdet/models/necks/fpn.py``
(``FPN``).

Input order: fine to coarse, as mmdetection's ``inputs`` (C2, C3, C4, C5): each input is
no larger than the one before. With inputs C_1 (finest) .. C_n (coarsest):
``L_i = lateral_i(C_i)`` (1x1 conv to C), ``M_n = L_n``,
``M_i = L_i + upsample(M_{i+1}, size of L_i)`` (nearest, to the exact size, so odd sizes
work), and the output is the finest level ``P_1 = conv3x3(M_1)``. As in the paper and
mmdetection, the top-down chain carries the merged maps ``M`` (before the 3x3 conv); the
3x3 convs of the coarser levels do not feed ``P_1``, so the block has only the finest
one. With two inputs this is the single merge ``P = conv3(lateral(C_fine) +
up(lateral(C_coarse)))``. No activation (the paper found non-linearities unnecessary;
mmdetection's ``act_cfg=None``); ``norm`` adds mmdetection's ``norm_cfg`` (conv bias off).

Every input gets a lateral conv, so the widths may all differ.
Shape contract: inputs (B, Ci, Hi, Wi) fine to coarse; output (B, C, H1, W1), the
first input's size (``align`` is not used).
Parameters (no norm): sum_i (Ci*C + C) + 9*C*C + C. With ``norm`` (bn/gn): no conv
biases, plus 2C per norm (n laterals, unless ``no_norm_on_lateral``, and the 3x3 conv).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..errors import SpecError
from .base import FusionBlock, NormName, children, create_norm


def conv_module(cin: int, cout: int, k: int, norm: str = "none", stride: int = 1, act: nn.Module | None = None):
    """mmcv's ``ConvModule``: conv (bias only without norm) -> norm -> act."""
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, bias=norm == "none")]
    if norm != "none":
        layers.append(create_norm(norm, cout))
    if act is not None:
        layers.append(act)
    return nn.Sequential(*layers)


def check_fine_to_coarse(kind: str, xs: Sequence) -> None:
    for i in range(1, len(xs)):
        a, b = xs[i - 1].shape[-2:], xs[i].shape[-2:]
        if b[0] > a[0] or b[1] > a[1]:
            raise SpecError(f"in_channels: '{kind}' takes levels fine to coarse; input {i} ({b[0]}x{b[1]}) is larger than "
                            f"input {i - 1} ({a[0]}x{a[1]}); reorder the inputs", field="in_channels")


class FPNFusion(FusionBlock):
    """FPN top-down merge of n >= 2 levels ordered fine to coarse; returns the finest output.

    Args:
        norm: normalisation after every conv (mmdetection ``norm_cfg``), ``none`` by default.
        no_norm_on_lateral: leave the lateral 1x1 convs without norm (mmdetection option).
    """

    kind = "fpn"
    min_inputs = 2
    default_resize_mode = "nearest"

    def __init__(self, in_channels, out_channels, *, norm: NormName = "none", no_norm_on_lateral: bool = False,
                 **align) -> None:
        super().__init__(in_channels, out_channels, **align)
        lateral_norm = "none" if no_norm_on_lateral else norm
        self.lateral = nn.ModuleList(conv_module(c, out_channels, 1, lateral_norm) for c in self.in_channels)
        self.fpn_conv = conv_module(out_channels, out_channels, 3, norm)

    def reference_size(self, sizes):
        return tuple(sizes[0])

    def forward(self, *xs):
        self.check_inputs(xs)
        check_fine_to_coarse(self.kind, xs)
        lateral, resize = tuple(children(self.lateral)), tuple(children(self.resize))  # ModuleList indexing: ~1 us
        m = lateral[-1](xs[-1])
        for i in range(len(xs) - 2, -1, -1):
            lat = lateral[i](xs[i])
            size = lat.shape[-2:]
            m = lat + (m if m.shape[-2:] == size else resize[i + 1](m, size))
        return self.fpn_conv(m)
