"""U-Net decoder: per level, upsample, merge with the skip, two 3x3 convs.

Paper: Ronneberger, Fischer, Brox, U-Net: Convolutional Networks for Biomedical Image
Segmentation, MICCAI 2015 (Fig. 1). Canonical code: milesial/Pytorch-UNet
``unet/unet_parts.py`` (``Up``, ``DoubleConv``); qubvel-org/segmentation_models.pytorch
``decoders/unet/decoder.py``.

Over encoder levels E_l (l = first_level .. top, widths C_l; the top one is the bottleneck),
coarse to fine, starting from x = E_top:

1. ``up_Pl`` = ConvTranspose2d(width(x) -> C_l, kernel 2, stride 2, bias) ("a 2x2 convolution
   (up-convolution) that halves the number of feature channels");
2. ``merge_Pl`` = node(E_l, up_Pl), the skip first as ``torch.cat([x2, x1])`` in milesial's
   ``Up``; the default node ``cat`` is the paper's concatenation (2 C_l channels). With
   ``padding=same`` the upsampled map is zero-padded to the skip's size where they differ
   (milesial's ``F.pad``); with ``padding=valid`` (the paper) the skip is centre-cropped to the
   upsampled map ("cropping is necessary due to the loss of border pixels");
3. ``block_Pl`` = conv3x3(width(merge) -> C_l) + [BN] + ReLU, conv3x3(C_l -> C_l) + [BN] + ReLU
   (padding 1 or 0; bias without BN, as the paper; milesial's ``DoubleConv`` uses BN and no
   bias: ``norm=bn``); the finest block outputs ``out_channels``.

Every decoder level is an output. Parameters (node ``cat``, no BN, out_channels = C_first):
sum over decoder levels l of [4*C_(l+1)*C_l + C_l] + [9*2C_l*C_l + C_l] + [9*C_l*C_l + C_l].
"""

from __future__ import annotations

from typing import Any, Literal

from torch import nn

from ..blocks.base import NormName, create_norm
from .base import CropOrPad, Neck, Node, build_merge, fusion_factory, node_width


def _double_conv(cin: int, cout: int, padding: int, norm: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in ((cin, cout), (cout, cout)):
        layers.append(nn.Conv2d(a, b, 3, padding=padding, bias=norm == "none"))
        if norm != "none":
            layers.append(create_norm(norm, b))
        layers.append(nn.ReLU(inplace=False))
    return nn.Sequential(*layers)


class UNetDecoder(Neck):
    """The U-Net expanding path; see the module docstring.

    Args:
        node: the fusion kind of every merge (default ``cat``), or a user block.
        first_level: the index of the finest level (0: full resolution, as the paper's encoder).
        padding: ``same`` (3x3 convs padded by 1) or ``valid`` (unpadded, the paper).
        norm: ``none`` (the paper), ``bn`` or ``gn`` after each 3x3 conv.
    """

    kind = "neck:unet"

    def __init__(self, in_channels, out_channels, *, node: str = "cat", first_level: int = 0,
                 padding: Literal["same", "valid"] = "same", norm: NormName = "none",
                 node_options: dict[str, Any] | None = None) -> None:
        super().__init__(in_channels, out_channels, first_level)
        self.node_kind = node
        make = fusion_factory(node, node_options)
        pad = 1 if padding == "same" else 0
        ref = 0 if padding == "same" else 1
        x = self.input_names[-1]
        levels = []
        for i in range(len(self.in_channels) - 2, -1, -1):
            lvl = first_level + i
            c = self.in_channels[i]
            up = self.add(f"up_P{lvl}", Node(nn.ConvTranspose2d(self.widths[x], c, 2, stride=2), kind="convT2x2/2",
                                             level=lvl), [x], c)
            widths = [c, c]
            width = node_width(node, widths, c)
            m = build_merge(make, node, f"merge_P{lvl}", widths, width, level=lvl, ref=ref,
                            resize=[CropOrPad(), CropOrPad()])
            merged = self.add(f"merge_P{lvl}", m, [self.input_names[i], up], width)
            cout = out_channels if i == 0 else c
            x = self.add(f"block_P{lvl}", Node(_double_conv(width, cout, pad, norm), kind="2x conv3x3+relu",
                                               level=lvl), [merged], cout)
            levels.append((lvl, x))
        for lvl, node_id in reversed(levels):  # fine to coarse, as the other necks
            self.output(lvl, node_id)
