"""Additive fusion: ``sum_i P_i(X_i)``, where ``P_i`` is a 1x1 conv when ``Ci != C`` and
the identity otherwise.

Parameter-free when every width equals ``C``: the whole cost is the element-wise
additions, (n-1)*B*C*H*W FLOPs, which most FLOP counters report as 0.

Shape contract: inputs (B, Ci, Hi, Wi) aligned to (H, W); output (B, C, H, W).
Parameters: sum over inputs with Ci != C of Ci*C + C.
"""

from __future__ import annotations

from .base import FusionBlock, apply_each, projections, skip_identities, sum_maps


class AddFusion(FusionBlock):
    kind = "add"
    min_inputs = 1

    def __init__(self, in_channels, out_channels, *, proj_bias: bool = True, **align) -> None:
        super().__init__(in_channels, out_channels, **align)
        self.proj = projections(self.in_channels, out_channels, proj_bias)
        self._proj = skip_identities(self.proj)

    def forward(self, *xs):
        self.check_inputs(xs)
        return sum_maps(apply_each(self._proj, self.aligned(xs)))
