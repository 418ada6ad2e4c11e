"""DPT decoder (also Depth Anything's): per-level 3x3 convs to the features, fused coarse to fine.

Paper: Ranftl, Bochkovskiy, Koltun, Vision Transformers for Dense Prediction, ICCV 2021.
Canonical code: isl-org/DPT ``dpt/models.py`` (``DPT.forward``) and ``dpt/blocks.py``
(``_make_scratch``, ``FeatureFusionBlock_custom``); LiheYoung/Depth-Anything
``depth_anything/dpt.py`` (``DPTHead``).

Over the reassembled levels R_l (l = first_level .. top; DPT-Base 96, 192, 384, 768 at strides
4..32) and F features:

1. ``rn_Pl`` = conv3x3(C_l -> F, padding 1, no bias) (``scratch.layerX_rn``);
2. ``fuse_Ptop`` = node(rn_Ptop) when the node takes one input (``refinenet4``: the ``dpt`` block's
   RCU, x2 upsampling, 1x1 out conv); a kind that needs two inputs leaves the top level as it is;
3. coarse to fine, ``fuse_Pl`` = node(path, rn_Pl): ``path`` (the previous fuse) first, as
   ``FeatureFusionBlock(xs[0], xs[1])`` takes it, resized to rn_Pl's size (bilinear,
   align_corners, DPT's interpolation) when they differ, as Depth Anything's ``size=``
   argument does;
4. the output is the last fuse (``path_1``, at half the finest stride with the ``dpt`` node).
   The head (the output convs to depth or classes) is not part of the decoder.

``upsample=scale`` (DPT): each ``dpt`` node upsamples x2 (``scale_factor=2``); where a level is
not exactly twice the next one, the next fuse resizes the path (bilinear). ``upsample=size``
(Depth Anything): each fuse but the finest upsamples to the next level's size
(``refinenet4(layer_4_rn, size=layer_3_rn.shape[2:])``): the node takes that level as a last
input used for its size only; the finest upsamples x2. A node kind without a ``size`` argument
upsamples as it does, and the next fuse resizes.

The reference builds ``resConfUnit1`` in ``refinenet4`` too, never calls it, and counts it in
``sum(p.numel())`` (2 * (9F*F + F) parameters: 1,180,160 at F = 256). As for the ``dpt`` block,
the default builds only what runs; ``--set node.variant=reference`` builds it, unused (listed
under parameters no op used), so the parameter count and state dict are the reference's.

Parameters (node ``dpt``, no BN): sum_l 9*C_l*F + 2 * 2 * (9F*F + F) * (L - 1) + 2 * (9F*F + F)
+ L * (F*F + F): the convs to F, the RCUs (two per fusion, one at the top), the out convs.
"""

from __future__ import annotations

from typing import Any, Literal

from torch import nn

from ..blocks.base import Resize
from ..errors import SpecError
from .base import Neck, Node, build_merge, conv, fusion_factory, node_width, takes_size


class DPTDecoder(Neck):
    """DPT's convolutional decoder; see the module docstring.

    Args:
        node: the fusion kind of every fusion (default ``dpt``), or a user block.
        first_level: the index of the finest level (2: stride 4).
    """

    kind = "neck:dpt"

    def __init__(self, in_channels, out_channels, *, node: str = "dpt", first_level: int = 2,
                 upsample: Literal["scale", "size"] = "scale", node_options: dict[str, Any] | None = None) -> None:
        super().__init__(in_channels, out_channels, first_level)
        self.node_kind = node
        make = fusion_factory(node, node_options)
        f = out_channels
        rns = [self.add(f"rn_P{first_level + i}", Node(conv(ci, f, 3, bias=False), kind="conv3x3",
                                                       level=first_level + i), [name], f)
               for i, (ci, name) in enumerate(zip(self.in_channels, self.input_names))]
        top = first_level + len(rns) - 1
        path = rns[-1]
        try:
            single = make([f], node_width(node, [f], f))
        except SpecError:
            single = None  # a kind of two or more inputs: the top level has no fusion
        by_size = upsample == "size" and len(rns) > 1
        if single is not None:
            sized = by_size and takes_size(single)
            path = self.add(f"fuse_P{top}", Node(single, kind=node, level=top, merge=True, size_input=sized),
                            [path, *([rns[-2]] if sized else [])], node_width(node, [f], f))
        for i in range(len(rns) - 2, -1, -1):
            lvl = first_level + i
            widths = [self.widths[path], f]
            width = node_width(node, widths, f)
            n = build_merge(make, node, f"fuse_P{lvl}", widths, width, level=lvl, ref=1,
                            resize=[Resize("bilinear", True), nn.Identity()])
            sized = by_size and i > 0 and takes_size(n.op)
            n.size_input = sized
            path = self.add(f"fuse_P{lvl}", n, [path, rns[i], *([rns[i - 1]] if sized else [])], width)
        self.output("path", path)
