"""FPN and PAFPN necks: lateral 1x1 convs, a top-down path of merges, 3x3 output convs; PAFPN adds
a bottom-up path.

Papers: Lin et al., Feature Pyramid Networks for Object Detection, CVPR 2017; Liu et al., Path
Aggregation Network for Instance Segmentation, CVPR 2018. Canonical code:
open-mmlab/mmdetection ``mmdet/models/necks/fpn.py`` (``FPN``) and ``pafpn.py`` (``PAFPN``);
pytorch/vision ``torchvision/ops/feature_pyramid_network.py`` (``FeaturePyramidNetwork``,
``LastLevelMaxPool``, ``LastLevelP6P7``).

FPN over inputs C_l (l = first_level .. top), width C:

1. ``lateral_Pl`` = conv1x1(C_l -> C) (bias; mmdet's ConvModule without norm, torchvision's
   ``inner_blocks``);
2. top-down, coarse to fine: ``merge_Pl`` = node(lateral_Pl, up(merge_P(l+1))) with ``up`` the
   nearest resize to lateral_Pl's exact size (mmdet's default ``upsample_cfg``; torchvision
   ``F.interpolate(size=..., mode="nearest")``), so odd sizes work; the default node is ``add``
   (the reference's ``+``); the top level has no merge;
3. ``output_Pl`` = conv3x3(-> C, padding 1, bias) of each merge (``fpn_convs`` / ``layer_blocks``);
4. ``extra_levels`` more outputs: ``extra=pool``: ``max_pool2d(kernel 1, stride 2)`` of the
   previous output (torchvision ``LastLevelMaxPool``, mmdet ``add_extra_convs=False``);
   ``extra=conv``: conv3x3 stride 2 (padding 1, bias), the first from the top input
   (``extra_source=input``: mmdet ``'on_input'``, torchvision ``LastLevelP6P7`` when the widths
   differ) or the top output (``output``), the next ones from the previous extra level, after
   a ReLU when ``extra_relu`` (mmdet ``relu_before_extra_convs``; torchvision's P7 always).

PAFPN (mmdet ``PAFPN``): steps 1-3 give N_l = output_Pl; then bottom-up, fine to coarse:
``down_Pl`` = conv3x3 stride 2 (padding 1, bias) of the previous level's bottom-up merge
(output_P(first) at the finest), ``bu_merge_Pl`` = node(output_Pl, down_Pl) (resized to
output_Pl's size if they differ), ``pafpn_Pl`` = conv3x3 of the merge; the finest output is
output_P(first). Extras as FPN (from the
last bottom-up output).

Parameters (FPN, node ``add``, no conv extras): sum_l (C_l*C + C) + L * (9*C*C + C).
"""

from __future__ import annotations

from typing import Any, Literal

from torch import nn

from ..blocks.base import Resize, ResizeMode
from ..errors import SpecError
from .base import MaxPool, Neck, Node, build_merge, conv, fusion_factory, node_width


class FPN(Neck):
    """Feature Pyramid Network; see the module docstring.

    Args:
        node: the fusion kind of every merge (default ``add``), or a user block.
        first_level: the index of the finest input (C2 at stride 4).
        extra_levels: outputs added above the top level (P6, P7, ...).
        extra: ``pool`` (max pool, kernel 1, stride 2) or ``conv`` (3x3 stride 2).
        extra_source: the first extra conv's input: the top ``input`` or the top ``output``.
        extra_relu: a ReLU before each extra conv after the first.
        upsample: the top-down resize mode (nearest in both references).
    """

    kind = "neck:fpn"
    default_node = "add"

    def __init__(self, in_channels, out_channels, *, node: str = "add", first_level: int = 2,
                 extra_levels: int = 0, extra: Literal["pool", "conv"] = "pool",
                 extra_source: Literal["input", "output"] = "output", extra_relu: bool = False,
                 upsample: ResizeMode = "nearest", node_options: dict[str, Any] | None = None) -> None:
        super().__init__(in_channels, out_channels, first_level)
        if extra_levels < 0:
            raise SpecError.bad("extra_levels", extra_levels, "allowed: an integer >= 0")
        self.node_kind = node
        self._make = fusion_factory(node, node_options)
        self._upsample = upsample
        tops = self._top_down()
        outs = [self.add(f"output_P{lvl}", Node(conv(self.widths[m], out_channels, 3), kind="conv3x3", level=lvl),
                         [m], out_channels) for lvl, m in tops]
        last = self._bottom_up(tops, outs)
        self._extras(last, extra_levels, extra, extra_source, extra_relu)

    def _top_down(self) -> list[tuple[int, str]]:
        """Laterals and the top-down merges: ``[(level, node id of the level's merge)]``, fine to coarse."""
        c = self.out_channels
        lats = [self.add(f"lateral_P{self.first_level + i}",
                         Node(conv(ci, c, 1), kind="conv1x1", level=self.first_level + i), [name], c)
                for i, (ci, name) in enumerate(zip(self.in_channels, self.input_names))]
        top = self.first_level + len(lats) - 1
        prev = lats[-1]
        merged = {top: prev}
        for i in range(len(lats) - 2, -1, -1):
            prev = self._merge(f"merge_P{self.first_level + i}", self.first_level + i, lats[i], prev)
            merged[self.first_level + i] = prev
        return sorted(merged.items())

    def _merge(self, node_id: str, level: int, own: str, other: str) -> str:
        widths = [self.widths[own], self.widths[other]]
        width = node_width(self.node_kind, widths, self.out_channels)
        node = build_merge(self._make, self.node_kind, node_id, widths, width,
                           level=level, resize=[nn.Identity(), Resize(self._upsample, False)])
        return self.add(node_id, node, [own, other], width)

    def _bottom_up(self, tops: list[tuple[int, str]], outs: list[str]) -> tuple[int, str]:
        for (lvl, _), out in zip(tops, outs):
            self.output(lvl, out)
        return tops[-1][0], outs[-1]

    def _extras(self, last: tuple[int, str], n: int, extra: str, source: str, relu: bool) -> None:
        lvl, prev = last
        c = self.out_channels
        for i in range(n):
            lvl += 1
            if extra == "pool":
                node = Node(MaxPool(1, 2, 0), kind="maxpool", level=lvl)
                width = self.widths[prev]
            elif i == 0:
                src = self.input_names[-1] if source == "input" else prev
                node = Node(conv(self.widths[src], c, 3, stride=2), kind="conv3x3/2", level=lvl)
                prev, width = src, c
            else:
                op = nn.Sequential(nn.ReLU(), conv(c, c, 3, stride=2)) if relu else conv(c, c, 3, stride=2)
                node = Node(op, kind="relu+conv3x3/2" if relu else "conv3x3/2", level=lvl)
                width = c
            prev = self.add(f"extra_P{lvl}", node, [prev], width)
            self.output(lvl, prev)


class PAFPN(FPN):
    """PANet's FPN with the bottom-up path (mmdet ``PAFPN``); see the module docstring."""

    kind = "neck:pafpn"

    def _bottom_up(self, tops: list[tuple[int, str]], outs: list[str]) -> tuple[int, str]:
        c = self.out_channels
        (lvl0, _), prev = tops[0], outs[0]
        self.output(lvl0, prev)
        last = prev
        for (lvl, _), out in zip(tops[1:], outs[1:]):
            down = self.add(f"down_P{lvl}", Node(conv(self.widths[prev], c, 3, stride=2), kind="conv3x3/2",
                                                 level=lvl), [prev], c)
            prev = self._merge(f"bu_merge_P{lvl}", lvl, out, down)  # the next down conv reads the merge
            last = self.add(f"pafpn_P{lvl}", Node(conv(self.widths[prev], c, 3), kind="conv3x3", level=lvl),
                            [prev], c)
            self.output(lvl, last)
        return tops[-1][0], last
