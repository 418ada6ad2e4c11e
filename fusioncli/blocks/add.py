"""Additive fusion: ``sum_i P_i(X_i)``, where ``P_i`` is a 1x1 conv when ``Ci != C`` and
the identity otherwise.

Parameter-free when every width equals ``C``: the whole cost is the element-wise
additions, (n-1)*B*C*H*W FLOPs, which most FLOP counters report as 0.

Shape contract: inputs (B, Ci, Hi, Wi) aligned to (H, W); output (B, C, H, W).
Parameters: sum over inputs with Ci != C of Ci*C + C.
"""

from __future__ import annotations

from .base import FusionBlock, projections


class AddFusion(FusionBlock):
    kind = "add"
    min_inputs = 1

    def __init__(self, in_channels, out_channels, *, proj_bias: bool = True, **align) -> None:
        super().__init__(in_channels, out_channels, **align)
        self.proj = projections(self.in_channels, out_channels, proj_bias)

    def forward(self, *xs):
        self.check_inputs(xs)
        xs = self.aligned(xs)
        out = self.proj[0](xs[0])
        for p, x in zip(self.proj[1:], xs[1:]):
            out = out + p(x)
        return out
