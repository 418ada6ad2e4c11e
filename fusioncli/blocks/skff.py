"""Selective kernel feature fusion (SKFF) of n streams, from MIRNet.

Paper: Zamir, Arora, Khan, Hayat, Khan, Yang, Shao, *Learning Enriched Features for Real
Image Restoration and Enhancement* (MIRNet), ECCV 2020.
Canonical code: swz30/MIRNet ``networks/MIRNet_model.py`` (``SKFF``).

Each input is one stream (the SK "branches" are the streams themselves; there are no convs
on them). ``L = sum_i X_i``; ``s = GAP(L)``; ``z = PReLU(W_d s)`` (1x1, C -> d);
``v_i = W_i z`` (one 1x1 d -> C per stream); ``a = softmax over the n streams`` (per channel);
``out = sum_i a_i * X_i``. d = max(floor(C / reduction), 4), reduction = 8; the 1x1 convs have
no bias (``bias=False`` in the reference); PReLU has one shared slope.

Streams must share (C, H, W). Sizes are aligned to the ``align`` reference (resizing; MIRNet
itself resamples streams with its own up/down-sampling modules before SKFF). Widths must all
equal ``out_channels``, unless ``project=true``, which adds a 1x1 projection (bias as ``bias``)
for every stream whose width differs.

Shape contract: inputs (B, C, Hi, Wi) aligned to (H, W); output (B, C, H, W).
Parameters: C*d + 1 + n*d*C (+ d + n*C with ``bias``) + sum over projected streams of Ci*C (+ C).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import SpecError
from .base import FusionBlock, apply_each, projections, sum_maps


class SKFF(FusionBlock):
    """MIRNet SKFF over n >= 2 streams.

    Args:
        reduction: d = max(floor(C / reduction), 4).
        bias: bias of the 1x1 convs (reference: False).
        project: add a 1x1 projection to ``out_channels`` for streams of another width.
    """

    kind = "skff"
    min_inputs = 2

    def __init__(self, in_channels, out_channels, *, reduction: int = 8, bias: bool = False, project: bool = False,
                 **align) -> None:
        super().__init__(in_channels, out_channels, **align)
        if reduction < 1:
            raise SpecError.bad("reduction", reduction, "allowed: positive integers (reference: 8)")
        c = out_channels
        widths = ", ".join(map(str, self.in_channels))
        if not project:
            if len(set(self.in_channels)) > 1:
                raise SpecError(f"in_channels: 'skff' needs equal input widths, got {widths}; "
                                "set project=True to add 1x1 projections", field="in_channels")
            if self.in_channels[0] != c:
                raise SpecError(f"out_channels: 'skff' outputs its streams' width {self.in_channels[0]}, got out_channels {c}; "
                                "set out_channels to it, or project=True to add 1x1 projections", field="out_channels")
        self.height = len(self.in_channels)
        self.proj = projections(self.in_channels, c, bias=bias)
        d = max(int(c / reduction), 4)
        self.rd_channels = d
        self.conv_du = nn.Sequential(nn.Conv2d(c, d, 1, bias=bias), nn.PReLU())
        self.fcs = nn.ModuleList(nn.Conv2d(d, c, 1, bias=bias) for _ in range(self.height))

    def forward(self, *xs):
        self.check_inputs(xs)
        xs = apply_each(self.proj, self.aligned(xs))
        z = self.conv_du(sum_maps(xs).mean((2, 3), keepdim=True))
        logits = torch.cat([fc(z) for fc in self.fcs], dim=1)
        a = torch.softmax(logits.view(logits.shape[0], self.height, -1, 1, 1), dim=1)
        out = a[:, 0] * xs[0]
        for i in range(1, self.height):
            out = out + a[:, i] * xs[i]
        return out
