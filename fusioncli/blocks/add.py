"""Additive fusion: ``sum_i P_i(X_i)``, where ``P_i`` is a 1x1 conv when ``Ci != C`` and
the identity otherwise.

Parameter-free when every width equals ``C``: the whole cost is the element-wise
additions, (n-1)*B*C*H*W FLOPs, which most FLOP counters report as 0.

Shape contract: inputs (B, Ci, Hi, Wi) aligned to (H, W); output (B, C, H, W).
Parameters: sum over inputs with Ci != C of Ci*C + C.
"""

from __future__ import annotations

from .base import FusionBlock, apply_each, projections, skip_identities


class AddFusion(FusionBlock):
    kind = "add"
    min_inputs = 1

    def __init__(self, in_channels, out_channels, *, proj_bias: bool = True, **align) -> None:
        super().__init__(in_channels, out_channels, **align)
        self.proj = projections(self.in_channels, out_channels, proj_bias)
        self._proj = skip_identities(self.proj)
        self._pair = self._proj is None and len(self.in_channels) == 2

    def forward(self, *xs):
        # The whole op can be one ~10 us add, so the common case (two maps of one shape, no
        # projection) costs one C call before it: a Python call or tensor attribute is ~0.1-0.3 us.
        if self._pair and len(xs) == 2:
            a, b = xs
            if a.is_same_size(b):
                return a + b
        if len(xs) != self._n_inputs:
            self.check_inputs(xs)
        xs = self.aligned(xs)
        if self._proj is not None:
            xs = apply_each(self._proj, xs)
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out
