"""SegFormer's all-MLP head as a neck: per-level linear layers, resize to the finest, one fusion node.

Paper: Xie et al., SegFormer: Simple and Efficient Design for Semantic Segmentation with
Transformers, NeurIPS 2021 (Eq. 4). Canonical code: open-mmlab/mmsegmentation
``mmseg/models/decode_heads/segformer_head.py`` (``SegformerHead``); NVlabs/SegFormer.

The ``segformer`` block computes the whole head as one block; this neck splits it so the
fusion can be swapped: ``linear_Pl`` = the per-level linear layer (C_l -> C: a 1x1 conv with
bias, or mmseg's ConvModule 1x1 + BN + ReLU with ``variant=reference``), then one node
``fuse`` over every level, each resized to the finest level (bilinear, align_corners False,
as ``resize(..., mode='bilinear', align_corners=self.align_corners)``) as a layer of the node.
The default node is ``concat``, the paper's ``Linear(4C, C)`` on the concatenation; with
``variant=reference`` and no node options given, ``concat`` gets ``norm=bn, act=relu``
(mmseg's ``fusion_conv``). The classifier (dropout, 1x1 conv to classes) is not part of it.
With the default node it has the ``segformer`` block's parameters and MACs exactly.
"""

from __future__ import annotations

from typing import Any, Literal

from torch import nn

from ..blocks.segformer import _layer
from ..blocks.base import Resize
from .base import Neck, Node, build_merge, fusion_factory, node_width


class SegFormerHead(Neck):
    """SegFormer's decoder up to the fused features; see the module docstring.

    Args:
        node: the fusion kind of the all-level merge (default ``concat``), or a user block.
        variant: ``paper`` (Linear layers) or ``reference`` (mmseg's ConvModules).
        first_level: the index of the finest level (2: stride 4).
    """

    kind = "neck:segformer"

    def __init__(self, in_channels, out_channels, *, node: str = "concat", variant: Literal["paper", "reference"] = "paper",
                 first_level: int = 2, node_options: dict[str, Any] | None = None) -> None:
        super().__init__(in_channels, out_channels, first_level)
        self.node_kind = node
        reference = variant == "reference"
        if reference and node == "concat" and not node_options:
            node_options = {"norm": "bn", "act": "relu"}
        make = fusion_factory(node, node_options)
        c = out_channels
        lins = [self.add(f"linear_P{first_level + i}", Node(_layer(ci, c, reference),
                                                           kind="conv1x1+bn+relu" if reference else "linear",
                                                           level=first_level + i), [name], c)
                for i, (ci, name) in enumerate(zip(self.in_channels, self.input_names))]
        widths = [c] * len(lins)
        width = node_width(node, widths, c)
        n = build_merge(make, node, "fuse", widths, width, level=first_level,
                        resize=[nn.Identity()] + [Resize("bilinear", False) for _ in lins[1:]])
        self.output(first_level, self.add("fuse", n, lins, width))
