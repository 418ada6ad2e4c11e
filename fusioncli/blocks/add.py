"""Additive fusion: ``sum_i P_i(X_i)``, where ``P_i`` is a 1x1 conv when ``Ci != C`` and
the identity otherwise.

Parameter-free when every width equals ``C``: the whole cost is the element-wise
additions, (n-1)*B*C*H*W FLOPs, which most FLOP counters report as 0.

Shape contract: inputs (B, Ci, Hi, Wi) aligned to (H, W); output (B, C, H, W). Volumes
(CxDxHxW, ``dims=3``, set by the inputs' rank: a 3-D U-Net's additive skip, e.g. wolny/pytorch-3dunet's
ResidualUNet3D, ``pytorch3dunet/unet3d/buildingblocks.py`` ``Decoder``: sum joining) take (B, Ci, Di, Hi, Wi) to (B, C, D, H, W) with 1x1x1 Conv3d projections.
Parameters: sum over inputs with Ci != C of Ci*C + C.
"""

from __future__ import annotations

from .base import Dims, FusionBlock, apply_each, check_dims, projections


class AddFusion(FusionBlock):
    kind = "add"
    min_inputs = 1
    takes_volumes = True

    def __init__(self, in_channels, out_channels, *, proj_bias: bool = True, dims: Dims = 2, **align) -> None:
        super().__init__(in_channels, out_channels, **align)
        self.dims = check_dims(self, dims)
        self._two = len(self.in_channels) == 2  # configuration, not a module: safe to keep
        if all(c == out_channels for c in self.in_channels):
            # nothing to project: no container at all, so the common case below tests one
            # dict entry (a ModuleList of identities would cost ~2 us to read and check a call)
            self.register_module("proj", None)
        else:
            self.proj = projections(self.in_channels, out_channels, proj_bias, dims)

    def forward(self, x1, x2=None, *rest):
        # The whole op can be one ~10 us add, so the common case (two maps of one shape, no
        # projection) costs one C call before it; named parameters instead of ``*xs`` spare
        # packing and unpacking a tuple (a Python step is ~0.1 us, a tenth of the add's budget).
        proj = self._modules["proj"]  # the live tree: see blocks/base.py
        if proj is None and self._two and not rest and x2 is not None and x1.is_same_size(x2):
            return x1 + x2
        xs = (x1,) if x2 is None and not rest else (x1, x2, *rest)
        self.check_inputs(xs)
        xs = self.aligned(xs)
        if proj is not None:
            xs = apply_each(proj, xs)
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out
