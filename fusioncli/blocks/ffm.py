"""BiSeNet Feature Fusion Module (FFM): concatenate, ConvBNReLU, SE-like channel attention, residual.

Paper: Changqian Yu, Jingbo Wang, Chao Peng, Changxin Gao, Gang Yu, Nong Sang,
"BiSeNet: Bilateral Segmentation Network for Real-time Semantic Segmentation",
ECCV 2018 (Fig. 2(c)).
Canonical code: open-mmlab/mmsegmentation ``mmseg/models/backbones/bisenetv1.py``
(``FeatureFusionModule``); also CoinCheung/BiSeNet ``lib/models/bisenetv1.py``
(``FeatureFusionModule``) and the first author's ycszen/TorchSeg (``FeatureFusion``).

    f = ReLU(BN(W cat(X1..Xn)))                          (1x1 conv, no bias, sum(Ci) -> C)
    a = sigmoid(W2 ReLU(W1 GAP(f)))                      (1x1 convs C -> C/r -> C, no bias, no BN)
    out = f * a + f

Paper vs reference code
-----------------------
* ``variant="paper"`` (default): the paper's attention branch, global pool -> 1x1 conv
  -> ReLU -> 1x1 conv -> sigmoid, without batch norm. The convs carry no bias, as in
  TorchSeg. ``reduction`` r sets the bottleneck: 1 (C -> C -> C) is the paper and
  TorchSeg; 4 (C -> C/4 -> C) is what CoinCheung/BiSeNet computed until July 2021.
* ``variant="reference"``: mmsegmentation's module, whose attention branch is a
  single 1x1 conv (C -> C, no bias) followed by BN and ReLU, then the sigmoid (mmseg's
  own note: "No BN and more 1x1 conv in paper"). ``reduction`` does not apply.
* CoinCheung/BiSeNet since July 2021 (commit e40b825, "use conv-bn instead of 2 layer
  mlp, so that tensorrt 7.2.3.4 can work for fp16"): GAP -> one 1x1 conv (C -> C, no
  bias) -> BN -> sigmoid, with no ReLU before the sigmoid; neither variant is that: its
  parameters are the reference variant's (C*C + 2C), its FLOPs C fewer (the ReLU).

Inputs of different sizes are resized to the ``align`` reference (default: the first
input, BiSeNet's spatial path); widths may differ (they are concatenated).

Shape contract: inputs (B, Ci, Hi, Wi), n >= 2; output (B, C, H, W).
Parameters: sum(Ci)*C + 2C (conv + BN), plus 2*C*floor(C/r) (paper) or
C*C + 2C (reference).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from ..errors import SpecError
from .base import FusionBlock


class FFM(FusionBlock):
    """BiSeNetV1 feature fusion module."""

    kind = "ffm"
    min_inputs = 2

    def __init__(self, in_channels, out_channels, *, reduction: int = 1,
                 variant: Literal["paper", "reference"] = "paper", **align) -> None:
        super().__init__(in_channels, out_channels, **align)
        c = out_channels
        if variant == "reference" and reduction != 1:
            raise SpecError(f"reduction: variant='reference' (mmseg) has a single {c} -> {c} attention conv, "
                            f"got reduction={reduction}; reduction applies to variant='paper'", field="reduction")
        if not 1 <= reduction <= c:
            raise SpecError.bad("reduction", reduction, f"allowed: 1 to {c} (out channels)")
        self.variant = variant
        self.conv = nn.Sequential(nn.Conv2d(sum(self.in_channels), c, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        if variant == "paper":
            mid = c // reduction
            self.attn = nn.Sequential(nn.Conv2d(c, mid, 1, bias=False), nn.ReLU(),
                                      nn.Conv2d(mid, c, 1, bias=False), nn.Sigmoid())
        else:
            self.attn = nn.Sequential(nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(), nn.Sigmoid())

    def forward(self, *xs):
        self.check_inputs(xs)
        f = self.conv(torch.cat(self.aligned(xs), dim=1))
        return f * self.attn(self.pool(f)) + f
