"""Concatenation fusion: ``cat(X1..Xn, dim=1) -> 1x1 conv (sum(Ci) -> C)``.

The classic example of this block is often printed with a bug: a 1x1 conv declared
with ``in_channels=C`` fed a 2C-channel concat. Here the conv's input width is the
*sum* of the input widths.

Shape contract: inputs (B, Ci, Hi, Wi), aligned to the reference size (H, W);
output (B, C, H, W).
Parameters: sum(Ci)*C, + C for the bias (present by default unless a norm follows:
``bias=none`` means automatic), + 2C for ``norm=bn``.
"""

from __future__ import annotations

from torch import cat, nn

from .base import ActName, FusionBlock, NormName, create_act, create_norm, run_chain


class ConcatFusion(FusionBlock):
    kind = "concat"
    min_inputs = 1

    def __init__(self, in_channels, out_channels, *, bias: bool | None = None, norm: NormName = "none",
                 act: ActName = "none", **align) -> None:
        super().__init__(in_channels, out_channels, **align)
        self.conv = nn.Conv2d(sum(self.in_channels), out_channels, kernel_size=1,
                              bias=(norm == "none") if bias is None else bias)
        self.norm = create_norm(norm, out_channels)
        self.act = create_act(act)

    def forward(self, *xs):
        self.check_inputs(xs)
        return run_chain(self.conv(cat(self.aligned(xs), dim=1)), self.norm, self.act)
