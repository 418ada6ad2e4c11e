"""ASFF: adaptively spatial feature fusion of n pyramid levels at one target level.

Paper: Liu, Huang, Wang, Learning Spatial Fusion for Single-Shot Object Detection,
arXiv:1911.09516, 2019. Canonical code: GOATmessi8/ASFF ``models/network_blocks.py``
(``ASFF``, ``add_conv``).

Input order: coarse to fine, as in the reference (level 0 is the coarsest map, e.g.
YOLOv3 at 416: 512x13x13, 256x26x26, 256x52x52). ``level`` picks the target; its width
``d = C_level`` is the working width. ``add_conv(k, s)`` is conv k x k stride s (no
bias) -> BN -> LeakyReLU(0.1) (ReLU6 with ``leaky=false``, as ``ASFFmobile``).

1. Resize every level i to the target (``X^{i->l}``):
   coarser (i < level): ``add_conv 1x1`` to ``d`` when ``C_i != d``, then nearest
   upsampling to the target's exact size;
   finer (i > level, k = i - level steps): k-1 max-pools (3x3, stride 2, padding 1) then
   ``add_conv 3x3 stride 2`` to ``d`` (k = 2 is the reference's level-0 path for level 2);
   the target itself is used as is.
2. Weights: ``v_i = add_conv 1x1 (d -> compress_c)(X^{i->l})``;
   ``lambda = 1x1 conv (n*compress_c -> n, bias)(cat(v_1..v_n))``; ``alpha = softmax over
   the n levels``, per pixel.
3. ``Y = sum_i alpha_i * X^{i->l}`` (alpha broadcast over channels), then
   ``expand = add_conv 3x3 (d -> C)``. The reference expands level 0/1/2 to 1024/512/256.

If a resized map still differs from the target size (sizes that are not exact powers of
two apart), it is interpolated to it with ``resize_mode``; for exact pyramids this never runs.

Shape contract: inputs (B, Ci, Hi, Wi) ordered coarse to fine (each no larger than the
next); output (B, C, H_level, W_level). ``align`` is not used: the output is at the
target level's size.
Parameters (d = C_level, c = compress_c, n levels, BN = 2 per channel):
sum over coarser i with C_i != d of (C_i*d + 2d) + sum over finer i of (9*C_i*d + 2d)
+ n*(d*c + 2c) + (n*c*n + n) + (9*d*C + 2C).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import SpecError
from .base import FusionBlock, apply_each


def add_conv(cin: int, cout: int, k: int, stride: int = 1, leaky: bool = True) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.LeakyReLU(0.1) if leaky else nn.ReLU6())


class ASFF(FusionBlock):
    """ASFF at target ``level`` over n >= 2 levels ordered coarse to fine.

    Args:
        level: index of the target level (0 = coarsest); its width is the working width.
        compress_c: width of each level's weight branch (16; the reference uses 8 with RFB).
        leaky: LeakyReLU(0.1) in every conv block (``ASFF``); false: ReLU6 (``ASFFmobile``).
    """

    kind = "asff"
    min_inputs = 2
    default_resize_mode = "nearest"

    def __init__(self, in_channels, out_channels, *, level: int = 0, compress_c: int = 16, leaky: bool = True,
                 **align) -> None:
        super().__init__(in_channels, out_channels, **align)
        n = len(self.in_channels)
        if not 0 <= level < n:
            raise SpecError(f"level: invalid value {level!r}; allowed: 0 to {n - 1} "
                            f"(an index into the {n} inputs, 0 = coarsest)", field="level")
        if compress_c <= 0:
            raise SpecError.bad("compress_c", compress_c, "allowed: positive integers")
        self.level = level
        d = self.in_channels[level]
        resample: list[nn.Module] = []
        for i, c in enumerate(self.in_channels):
            if i < level:
                resample.append(add_conv(c, d, 1, 1, leaky) if c != d else nn.Identity())
            elif i == level:
                resample.append(nn.Identity())
            else:
                pools = [nn.MaxPool2d(3, 2, 1) for _ in range(i - level - 1)]
                resample.append(nn.Sequential(*pools, add_conv(c, d, 3, 2, leaky)))
        self.resample = nn.ModuleList(resample)
        self.weight_level = nn.ModuleList(add_conv(d, compress_c, 1, 1, leaky) for _ in range(n))
        self.weight_levels = nn.Conv2d(compress_c * n, n, 1)
        self.expand = add_conv(d, out_channels, 3, 1, leaky)

    def reference_size(self, sizes):
        return tuple(sizes[self.level])

    def forward(self, *xs):
        self.check_inputs(xs)
        for i in range(1, len(xs)):
            a, b = xs[i - 1].shape[-2:], xs[i].shape[-2:]
            if a[0] > b[0] or a[1] > b[1]:
                raise SpecError(f"in_channels: 'asff' takes levels coarse to fine (level 0 = coarsest); input {i} "
                                f"({b[0]}x{b[1]}) is smaller than input {i - 1} ({a[0]}x{a[1]}); reorder the inputs",
                                field="in_channels")
        size = tuple(xs[self.level].shape[-2:])
        ys = self.aligned(apply_each(self.resample, xs), size)
        v = torch.cat([w(y) for w, y in zip(self.weight_level, ys)], dim=1)
        alpha = torch.softmax(self.weight_levels(v), dim=1)
        out = ys[0] * alpha[:, 0:1]
        for i in range(1, len(ys)):
            out = torch.addcmul(out, ys[i], alpha[:, i:i + 1])
        return self.expand(out)
