"""Plain concatenation: ``cat(X1..Xn, dim=1)``, no parameters.

The merge of the original U-Net decoder (Ronneberger et al., MICCAI 2015: "a concatenation
with the correspondingly cropped feature map from the contracting path", followed by two
3x3 convolutions that belong to the decoder, not to the merge) and of many other decoders
whose next layer takes the concatenation as it is.

Shape contract: inputs (B, Ci, Hi, Wi), aligned to the reference size (H, W); output
(B, sum(Ci), H, W): ``out_channels`` must be the sum of the input widths.
Parameters: 0.
"""

from __future__ import annotations

from torch import cat

from ..errors import SpecError
from .base import FusionBlock


class CatFusion(FusionBlock):
    kind = "cat"
    min_inputs = 1
    width_rule = "sum"  # the output width is the sum of the input widths (necks size the next layer by it)

    def __init__(self, in_channels, out_channels, **align) -> None:
        super().__init__(in_channels, out_channels, **align)
        total = sum(self.in_channels)
        if out_channels != total:
            widths = " + ".join(map(str, self.in_channels))
            raise SpecError(f"out_channels: 'cat' outputs the sum of its input widths ({widths} = {total}), got "
                            f"{out_channels}; allowed: {total}", field="out_channels")

    def forward(self, *xs):
        self.check_inputs(xs)
        return cat(self.aligned(xs), dim=1)
