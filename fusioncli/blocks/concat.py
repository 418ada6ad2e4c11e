"""Concatenation fusion: ``cat(X1..Xn, dim=1) -> conv kxk (sum(Ci) -> C) [-> norm -> act]``.

The classic example of this block is often printed with a bug: a 1x1 conv declared
with ``in_channels=C`` fed a 2C-channel concat. Here the conv's input width is the
*sum* of the input widths.

``kernel`` (default 1) is the conv's size, zero-padded to keep the size: ``kernel=3, norm=bn,
act=relu`` is BEVFusion's ``ConvFuser`` (Liu et al., ICRA 2023; mit-han-lab/bevfusion
``mmdet3d/models/fusers/conv.py``: cat of the camera and LiDAR BEV maps, 3x3 conv without bias,
BatchNorm, ReLU). Volumes (CxDxHxW, ``dims=3``, set by the inputs' rank) use Conv3d and BatchNorm3d:
the merge of a 3-D U-Net's skip (Cicek et al., MICCAI 2016).

Shape contract: inputs (B, Ci, Hi, Wi) aligned to the reference size (H, W);
output (B, C, H, W). Volumes: (B, Ci, Di, Hi, Wi) -> (B, C, D, H, W).
Parameters: sum(Ci)*C*k^dims, + C for the bias (present by default unless a norm follows:
``bias=none`` means automatic), + 2C for ``norm=bn``.
"""

from __future__ import annotations

from torch import cat

from ..errors import SpecError
from .base import ActName, Dims, FusionBlock, NormName, check_dims, conv_nd, create_act, create_norm, run_chain


class ConcatFusion(FusionBlock):
    """Concatenate, then one conv (``kernel``: 1 by default, 3 for BEVFusion's ConvFuser), norm, activation."""

    kind = "concat"
    min_inputs = 1
    takes_volumes = True

    def __init__(self, in_channels, out_channels, *, kernel: int = 1, bias: bool | None = None,
                 norm: NormName = "none", act: ActName = "none", dims: Dims = 2, **align) -> None:
        super().__init__(in_channels, out_channels, **align)
        self.dims = check_dims(self, dims)
        if kernel < 1 or kernel % 2 == 0:
            raise SpecError.bad("kernel", kernel, "allowed: an odd positive integer (1: a 1x1 conv; 3: BEVFusion)")
        self.conv = conv_nd(dims)(sum(self.in_channels), out_channels, kernel_size=kernel, padding=kernel // 2,
                                  bias=(norm == "none") if bias is None else bias)
        self.norm = create_norm(norm, out_channels, dims)
        self.act = create_act(act)

    def forward(self, *xs):
        self.check_inputs(xs)
        return run_chain(self.conv(cat(self.aligned(xs), dim=1)), self.norm, self.act)
