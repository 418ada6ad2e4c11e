"""SegFormer all-MLP decoder fusion: per-level projection, resize to the finest level, concat, fuse.

Paper: Enze Xie, Wenhai Wang, Zhiding Yu, Anima Anandkumar, Jose M. Alvarez, Ping Luo,
"SegFormer: Simple and Efficient Design for Semantic Segmentation with Transformers",
NeurIPS 2021 (Sec. 3.2, Eq. 4).
Canonical code: open-mmlab/mmsegmentation ``mmseg/models/decode_heads/segformer_head.py``
(``SegformerHead``); the authors' NVlabs/SegFormer has its own
``mmseg/models/decode_heads/segformer_head.py``.

    F^_i = Linear(Ci, C)(F_i)                 per level, at the level's own resolution
    F^_i = Upsample(H x W)(F^_i)              bilinear, align_corners=False
    F    = Linear(n*C, C)(cat(F^_1..F^_n))

The class-prediction layer ``Linear(C, N_cls)`` is not part of the fusion. A Linear
applied to every pixel's channel vector is a 1x1 conv; the block uses 1x1 convs (same
weights, same MACs, no token reshapes). (H, W) is the ``align`` reference, by default
the largest (finest) input; the projection runs before the resize, so coarse levels are
projected at their own, cheaper, resolution.

Paper vs reference code
-----------------------
* ``variant="paper"`` (default): Eq. 4 as written, plain Linear layers with bias, no
  normalisation, no activation.
* ``variant="reference"``: mmsegmentation's ``SegformerHead``, where every per-level
  Linear is a ConvModule (1x1 conv without bias, BN, ReLU) and so is the fusion layer.
* The authors' NVlabs code sits between the two (per-level Linear with bias, fusion
  ConvModule with BN and ReLU) and concatenates coarsest level first; the concat
  order only permutes the fusion weights and changes no count.

Shape contract: inputs (B, Ci, Hi, Wi), n >= 2, any widths and sizes; output
(B, C, H, W).
Parameters: paper: sum_i (Ci*C + C) + n*C*C + C;
reference: sum_i (Ci*C + 2C) + n*C*C + 2C.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from .base import FusionBlock


def _layer(cin: int, cout: int, reference: bool) -> nn.Module:
    if reference:
        return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())
    return nn.Conv2d(cin, cout, 1)


class SegFormerFusion(FusionBlock):
    """SegFormer MLP-decoder fusion of n levels to C channels at the finest level."""

    kind = "segformer"
    min_inputs = 2
    default_align = "largest"

    def __init__(self, in_channels, out_channels, *, variant: Literal["paper", "reference"] = "paper",
                 **align) -> None:
        super().__init__(in_channels, out_channels, **align)
        reference = variant == "reference"
        self.variant = variant
        self.linear = nn.ModuleList(_layer(c, out_channels, reference) for c in self.in_channels)
        self.fuse = _layer(len(self.in_channels) * out_channels, out_channels, reference)

    def forward(self, *xs):
        self.check_inputs(xs)
        size = self.target_size(xs)
        # Each level is resized right after its linear layer, so its unresized map is freed before
        # the next level's is made (and its memory reused while still in cache): keeping all of
        # them until the resize costs 1.2x on CPU and GPU at the default sizes.
        ys = []
        for m, r, x in zip(self.linear, self.resize, xs):
            y = m(x)
            ys.append(y if y.shape[-2:] == size else r(y, size))
        return self.fuse(torch.cat(ys, dim=1))
