"""Attentional feature fusion (AFF) and iterative AFF (iAFF).

Paper: Dai, Gieseke, Oehmcke, Wu, Barnard, "Attentional Feature Fusion", WACV 2021.
Canonical code: YimianDai/open-aff ``aff_pytorch/aff_net/fusion.py`` (``AFF``, ``iAFF``,
``MS_CAM``); module names here follow it (``local_att``, ``global_att``, ``local_att2``,
``global_att2``), so its state dicts load.

MS-CAM, with C channels and Cr = C // r::

    L(S) = BN(conv1x1(ReLU(BN(conv1x1(S)))))        C -> Cr -> C, full resolution
    G(S) = the same layers after GAP(S)              (B, C, 1, 1), broadcast
    M(S) = sigmoid(L(S) + G(S))

AFF:   Z = M(X + Y) * X + (1 - M(X + Y)) * Y
iAFF:  I = M1(X + Y) * X + (1 - M1(X + Y)) * Y;   Z = M2(I) * X + (1 - M2(I)) * Y

X is the first input, Y the second. The blend is computed as ``lerp(Y, X, M)``
(``Y + M * (X - Y)``, the same value in one kernel).

Paper vs reference code:

- ``AFF.forward`` returns ``2 * X * M + 2 * Y * (1 - M)``: the author keeps the two
  weights summing to 2, as the plain sum X + Y that AFF replaces in a ResNet block
  does. ``variant=reference`` doubles the output likewise.
- ``iAFF.__init__`` builds a second global branch ``global_att2`` but ``forward`` calls
  ``global_att`` again for M2, so ``global_att2``'s parameters never run (and never
  train). ``variant=reference`` builds and ignores it the same way, so its parameter
  count and state dict match the reference; the paper variant uses ``global_att2``.
  The reference iAFF has no factor 2.

Inputs must share the width C = ``out_channels`` (the reference block is built with one
``channels``); ``project=true`` adds a 1x1 projection (with bias) to C for each input
whose width differs. Inputs of different sizes are aligned to the ``align`` reference
(default ``largest``, as the paper's cross-layer fusion upsamples the coarser map).

Shape contract: inputs (B, Ci, Hi, Wi), aligned to (H, W); output (B, C, H, W).

Parameters, Cr = C // r: one MS-CAM has ``2 * (2 C Cr + 3 Cr + 3 C)`` (two branches of
conv C->Cr with bias, BN(Cr), conv Cr->C with bias, BN(C)); AFF has one, iAFF two
(both variants), plus ``Ci * C + C`` per projected input.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from ..errors import SpecError
from .base import FusionBlock, projections

Variant = Literal["paper", "reference"]


def attention_branch(channels: int, inter: int, pooled: bool) -> nn.Sequential:
    """One MS-CAM branch: [GAP] -> 1x1 (C -> Cr) -> BN -> ReLU -> 1x1 (Cr -> C) -> BN."""
    layers = [nn.AdaptiveAvgPool2d(1)] if pooled else []
    layers += [nn.Conv2d(channels, inter, kernel_size=1), nn.BatchNorm2d(inter), nn.ReLU(inplace=True),
               nn.Conv2d(inter, channels, kernel_size=1), nn.BatchNorm2d(channels)]
    return nn.Sequential(*layers)


class AFF(FusionBlock):
    """Attentional feature fusion of two maps; see the module docstring.

    Args:
        in_channels: widths of X and Y; each must equal ``out_channels`` unless ``project``.
        out_channels: C.
        r: channel reduction ratio of the MS-CAM bottleneck (Cr = C // r).
        variant: ``paper`` (weights sum to 1) or ``reference`` (open-aff's code, see above).
        project: 1x1 projections to C for inputs of other widths.
    """

    kind = "aff"
    min_inputs = 2
    max_inputs = 2
    default_align = "largest"

    def __init__(self, in_channels, out_channels, *, r: int = 4, variant: Variant = "paper", project: bool = False,
                 **align) -> None:
        super().__init__(in_channels, out_channels, **align)
        if not project and any(c != out_channels for c in self.in_channels):
            widths = ", ".join(map(str, self.in_channels))
            raise SpecError(f"in_channels: '{self.kind}' needs every input width equal to out_channels {out_channels}, got {widths}; "
                            "set project=True to add 1x1 projections", field="in_channels")
        if r < 1 or out_channels // r < 1:
            raise SpecError.bad("r", r, f"allowed: 1 to {out_channels} (C // r >= 1 at C = {out_channels})")
        self.variant = variant
        self.inter_channels = out_channels // r
        self.proj = projections(self.in_channels, out_channels) if project else None
        self.local_att = attention_branch(out_channels, self.inter_channels, pooled=False)
        self.global_att = attention_branch(out_channels, self.inter_channels, pooled=True)

    def _inputs(self, xs):
        self.check_inputs(xs)
        x, y = self.aligned(xs)
        if self.proj is not None:
            x, y = self.proj[0](x), self.proj[1](y)
        return x, y

    def forward(self, *xs):
        x, y = self._inputs(xs)
        s = x + y
        z = torch.lerp(y, x, torch.sigmoid(self.local_att(s) + self.global_att(s)))
        return 2 * z if self.variant == "reference" else z


class IAFF(AFF):
    """Iterative AFF: the first AFF's output feeds a second MS-CAM; see the module docstring."""

    kind = "iaff"

    def __init__(self, in_channels, out_channels, **options) -> None:
        super().__init__(in_channels, out_channels, **options)
        self.local_att2 = attention_branch(out_channels, self.inter_channels, pooled=False)
        self.global_att2 = attention_branch(out_channels, self.inter_channels, pooled=True)

    def forward(self, *xs):
        x, y = self._inputs(xs)
        s = x + y
        i = torch.lerp(y, x, torch.sigmoid(self.local_att(s) + self.global_att(s)))
        global2 = self.global_att if self.variant == "reference" else self.global_att2
        return torch.lerp(y, x, torch.sigmoid(self.local_att2(i) + global2(i)))
