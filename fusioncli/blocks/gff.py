"""Gated Fully Fusion (GFF): every pyramid level is gated by itself and by all the others.

Paper: Xiangtai Li, Houlong Zhao, Lei Han, Yunhai Tong, Shaohua Tan, Kuiyuan Yang,
"Gated Fully Fusion for Semantic Segmentation", AAAI 2020 (arXiv:1904.01803).
Canonical code: lxtGH/DecoupleSegNets ``network/gffnets.py`` (``WiderResNetGFFDFPHead``),
with ``conv_bn_relu`` / ``conv_sigmoid`` from ``network/nn/operators.py``.

For levels X1..Xn of shapes (Ci, Hi, Wi):

    G_i = sigmoid(W_i X_i + b_i)                       (1x1 conv on the raw input)
    P_i = ReLU(BN(V_i X_i))                             (1x1 conv, no bias, to C channels)
    X~_t = (1 + G_t) * P_t + (1 - G_t) * sum_{j != t} resize(G_j * P_j, size of level t)

Only one fused level is returned: ``target`` (a level index, default 0, the first and
usually finest level; negative indices count from the end). The products G_j * P_j are
resized to level t (``resize_mode``, ``align_corners``), as in the reference code. The
``align`` option has no effect: the reference size is always the target level's.

Paper vs reference code
-----------------------
* Gate width. The paper gives each level one gate *map* G_i in [0, 1]^(Hi x Wi),
  predicted by a 1x1 conv with a single output channel and broadcast over the channels
  (``variant="paper"``). The reference code's ``conv_sigmoid(Ci, 128)`` predicts a gate
  per pixel *and channel*, C maps (``variant="reference"``).
* Update order. The paper computes every X~_i from the original levels. The reference
  code updates the levels one after another in place, so level i's fusion already sees
  the fused X~_j of the levels j < i. ``variant="reference"`` reproduces this: for
  ``target`` t it fuses levels 0..t in order (for t = 0 both orders agree).
* Resizing. The reference resizes bilinearly with ``align_corners=True``:
  ``variant="reference"`` implies it. ``align_corners`` left unset (its default ``none``)
  follows the variant, False for the paper and True for the reference; set it to override.

Both variants project every level, including levels already C wide (the reference's
``d_in1`` is a 128 -> 128 ConvBNReLU), and give the gate conv a bias.

Shape contract: inputs (B, Ci, Hi, Wi), any widths and sizes, n >= 2;
output (B, C, H_t, W_t).
Parameters: sum_i (Ci*C + 2C) for the projections (conv + BN), plus
sum_i (Ci + 1) for the paper's one-channel gates or sum_i (Ci*C + C) for the
reference's C-channel gates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from ..errors import SpecError
from .base import FusionBlock, children


class GFF(FusionBlock):
    """Gated fully fusion of n levels; returns the fused level ``target`` (C channels)."""

    kind = "gff"
    min_inputs = 2
    default_align_corners = None  # the variant's: False (paper), True (reference, as its code)

    def __init__(self, in_channels, out_channels, *, target: int = 0,
                 variant: Literal["paper", "reference"] = "paper", **align) -> None:
        if align.get("align_corners") is None:
            align["align_corners"] = variant == "reference"
        super().__init__(in_channels, out_channels, **align)
        n = len(self.in_channels)
        if not -n <= target < n:
            raise SpecError.bad("target", target, f"allowed: a level index from {-n} to {n - 1}")
        self.target = target % n
        self.variant = variant
        gate_width = 1 if variant == "paper" else out_channels
        self.proj = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU())
            for c in self.in_channels)
        self.gate = nn.ModuleList(nn.Sequential(nn.Conv2d(c, gate_width, 1), nn.Sigmoid()) for c in self.in_channels)

    def reference_size(self, sizes: Sequence[tuple[int, int]]) -> tuple[int, int]:
        return tuple(sizes[self.target])

    def _fuse(self, i: int, ps: list[torch.Tensor], gs: list[torch.Tensor]) -> torch.Tensor:
        size = ps[i].shape[-2:]
        s = None
        for j, (g, p, r) in enumerate(zip(gs, ps, children(self.resize))):
            if j == i:
                continue
            gp = g * p
            if gp.shape[-2:] != size:
                gp = r(gp, size)
            s = gp if s is None else s + gp
        return (1 + gs[i]) * ps[i] + (1 - gs[i]) * s

    def forward(self, *xs):
        self.check_inputs(xs)
        gs = [g(x) for g, x in zip(self.gate, xs)]
        ps = [p(x) for p, x in zip(self.proj, xs)]
        if self.variant == "paper":
            return self._fuse(self.target, ps, gs)
        for i in range(self.target + 1):
            ps[i] = self._fuse(i, ps, gs)
        return ps[self.target]
