"""Gated fusion: a learned gate decides, per pixel and channel, how much of each input passes.

Two inputs: ``g = sigmoid(W [P1(X1); P2(X2)] + b)``, ``out = g*P1(X1) + (1-g)*P2(X2)``.
n > 2 inputs: ``W`` predicts n gate maps, ``a = softmax over the n maps``,
``out = sum_i a_i * P_i(X_i)``. ``P_i`` is a 1x1 projection when ``Ci != C``.

``granularity`` sets the gate's shape: ``element`` (C maps at full resolution,
the default), ``channel`` (one weight per channel, from the global average of the
concatenation) or ``spatial`` (one map shared by all channels).

Shape contract: inputs (B, Ci, Hi, Wi) aligned to (H, W); output (B, C, H, W). Volumes
(CxDxHxW, ``dims=3``, set by the inputs' rank) take (B, Ci, Di, Hi, Wi) to (B, C, D, H, W): 1x1x1
Conv3d projections and gate, the ``channel`` gate pooled over D, H and W.
Parameters: projections, plus the gate 1x1 conv from n*C to G*g_w where
g_w = C (element, channel) or 1 (spatial) and G = 1 for two inputs, n otherwise.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from .base import Dims, FusionBlock, apply_each, check_dims, conv_nd, projections, run_chain


class GatedFusion(FusionBlock):
    kind = "gated"
    min_inputs = 2
    takes_volumes = True

    def __init__(self, in_channels, out_channels, *,
                 granularity: Literal["element", "channel", "spatial"] = "element", dims: Dims = 2, **align) -> None:
        super().__init__(in_channels, out_channels, **align)
        self.dims = check_dims(self, dims)
        n = len(self.in_channels)
        self.granularity = granularity
        self.proj = projections(self.in_channels, out_channels, dims=dims)
        width = 1 if granularity == "spatial" else out_channels
        self.gates = 1 if n == 2 else n
        pool = nn.AdaptiveAvgPool3d if dims == 3 else nn.AdaptiveAvgPool2d
        self.pool = pool(1) if granularity == "channel" else nn.Identity()
        self.gate = conv_nd(dims)(n * out_channels, self.gates * width, kernel_size=1)

    def _logits(self, ys):
        x = torch.cat(ys, dim=1)
        return self.gate(run_chain(x, self.pool))  # granularity=spatial: the identity is not called

    def forward(self, *xs):
        self.check_inputs(xs)
        ys = apply_each(self.proj, self.aligned(xs))
        if self.gates == 1:
            g = torch.sigmoid(self._logits(ys))
            return g * ys[0] + (1 - g) * ys[1]
        a = torch.softmax(self._logits(ys).unflatten(1, (self.gates, -1)), dim=1)
        out = a[:, 0] * ys[0]
        for i in range(1, self.gates):
            out = out + a[:, i] * ys[i]
        return out
