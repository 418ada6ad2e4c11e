"""BiFPN neck (EfficientDet): ``repeats`` bidirectional layers over P3-P7 with weighted merges.

Paper: Tan, Pang, Le, EfficientDet: Scalable and Efficient Object Detection, CVPR 2020.
Canonical code: rwightman/efficientdet-pytorch ``effdet/efficientdet.py`` (``BiFpn``,
``BiFpnLayer``, ``FpnCombine``, ``ResampleFeatureMap``, ``get_fpn_config('bifpn_fa')``);
zylo117/Yet-Another-EfficientDet-Pytorch ``efficientdet/model.py`` (``BiFPN``).

Over inputs P_l (l = first_level .. top, backbone widths C_l) and width C:

1. Extra levels up to ``levels`` outputs (P6, P7 for P3-P5 inputs): ``extra_P6`` = conv1x1
   (C_top -> C, bias) + BN (momentum 0.01, eps 1e-3) where the width differs, then max pool
   3x3 stride 2 padding 1 (``ResampleFeatureMap``; zylo117 ``p5_to_p6``); each next one a max
   pool of the previous (``p6_to_p7``). ``pad=same`` pads every max pool of the neck TF-"same"
   instead (right/bottom: zylo117's ``MaxPool2dStaticSamePadding``), as TF-ported weights need.
2. Each of ``repeats`` layers (index r): top-down ``L{r}_td_Pl`` = node(P_l, up(td_P(l+1)))
   for l = top-1 .. first (the top level's own input at the first step; the finest td node is
   that level's output), then bottom-up ``L{r}_out_Pl`` = node(P_l, td_Pl, down(out_P(l-1)))
   for l = first+1 .. top-1 and ``L{r}_out_Ptop`` = node(P_top, down(out_P(top-1))). Each input
   edge whose width is not C gets its own conv1x1 (bias) + BN, as a layer of the node
   (rwightman's per-edge ``ResampleFeatureMap``; zylo117's ``p4_down_channel`` and
   ``p4_down_channel_2``): only the first layer's backbone inputs. ``up`` is a nearest resize
   to the node's level, ``down`` a max pool 3x3 stride 2 padding 1 (interpolation where the
   sizes are not an exact factor 2 apart).
3. The node (default ``bifpn``: fast normalised weights, Swish, depthwise-separable conv, BN,
   see ``fusion explain bifpn``) gets inputs at width C and at its level's size.

Parameters (node ``bifpn``, inputs C_l, extra levels from the top input):
[C_top != C] (C_top*C + C + 2C) + sum over first-layer edges with C_l != C of (C_l*C + 3C)
+ repeats * sum over nodes of (n_inputs + 9C + C*C + C + 2C).
"""

from __future__ import annotations

from typing import Any, Literal

from torch import nn

from ..blocks.bifpn import BN_EPS, BN_MOMENTUM, PoolResize
from ..errors import SpecError
from .base import MaxPool, Neck, Node, build_merge, fusion_factory, node_width


def _resample_conv(cin: int, c: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, c, 1), nn.BatchNorm2d(c, momentum=BN_MOMENTUM, eps=BN_EPS))


class BiFPN(Neck):
    """EfficientDet's BiFPN; see the module docstring.

    Args:
        node: the fusion kind of every node (default ``bifpn``), or a user block.
        first_level: the index of the finest input (P3 at stride 8).
        levels: output levels (5: P3-P7 from P3-P5 inputs).
        repeats: BiFPN layers (EfficientDet-D0: 3, D1: 4, ... D7: 8).
        pad: the max pools' padding: ``symmetric`` (1 on every side, rwightman) or ``same``
            (TF "same": right/bottom, zylo117 and the TF original; for TF-ported weights).
    """

    kind = "neck:bifpn"

    def __init__(self, in_channels, out_channels, *, node: str = "bifpn", first_level: int = 3, levels: int = 5,
                 repeats: int = 3, pad: Literal["symmetric", "same"] = "symmetric",
                 node_options: dict[str, Any] | None = None) -> None:
        super().__init__(in_channels, out_channels, first_level)
        if levels < len(self.in_channels):
            raise SpecError.bad("levels", levels, f"allowed: at least the number of inputs ({len(self.in_channels)})")
        if repeats < 1:
            raise SpecError.bad("repeats", repeats, "allowed: an integer >= 1")
        self.node_kind = node
        make = fusion_factory(node, node_options)
        c = out_channels
        feats = list(self.input_names)
        lvl = first_level + len(feats) - 1
        while len(feats) < levels:
            lvl += 1
            prev = feats[-1]
            pool = MaxPool(3, 2, "same" if pad == "same" else 1)
            cin = self.widths[prev]
            op = pool if cin == c else nn.Sequential(_resample_conv(cin, c), pool)
            feats.append(self.add(f"extra_P{lvl}", Node(op, kind="maxpool3x3/2" if cin == c else "conv1x1+bn+maxpool",
                                                        level=lvl), [prev], c))
        lv = [first_level + i for i in range(len(feats))]

        def merge(node_id: str, level: int, inputs: list[str]) -> str:
            widths = [self.widths[x] for x in inputs]
            proj = [nn.Identity() if w == c else _resample_conv(w, c) for w in widths]
            width = node_width(node, [c] * len(inputs), c)
            if width != c:
                raise SpecError(f"node {node_id!r}: '{node}' outputs {width} channels (the sum of its inputs); a "
                                f"BiFPN node must keep the width {c}", field="node")
            resize = [nn.Identity()] + [PoolResize("max", "nearest", False, pad) for _ in inputs[1:]]
            n = build_merge(make, node, node_id, [c] * len(inputs), c, level=level, proj=proj, resize=resize)
            return self.add(node_id, n, inputs, c)

        for r in range(repeats):
            td = {len(feats) - 1: feats[-1]}
            for i in range(len(feats) - 2, -1, -1):
                td[i] = merge(f"L{r}_td_P{lv[i]}", lv[i], [feats[i], td[i + 1]])
            outs = [td[0]]
            for i in range(1, len(feats)):
                ins = [feats[i], td[i], outs[-1]] if i < len(feats) - 1 else [feats[i], outs[-1]]
                outs.append(merge(f"L{r}_out_P{lv[i]}", lv[i], ins))
            feats = outs
        for level, out in zip(lv, feats):
            self.output(level, out)
