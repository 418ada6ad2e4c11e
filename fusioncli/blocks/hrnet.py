"""HRNet's exchange unit: n branches in, n branches out, every output a sum over all branches.

Paper: Wang et al., *Deep High-Resolution Representation Learning for Visual Recognition*, TPAMI 2020
(HRNet; "repeated multi-resolution fusions"). Canonical code: HRNet/HRNet-Semantic-Segmentation
``lib/models/seg_hrnet.py`` (``HighResolutionModule._make_fuse_layers`` and ``forward``); the pose
code, leoxiaobin/deep-high-resolution-net.pytorch ``lib/models/pose_hrnet.py``, builds the same layers.

Inputs X1..Xn: branch i has Ci channels at half the size of branch i-1 (as a 3x3 stride-2 conv
halves: ceil(H/2) x ceil(W/2)), finest first. Output i (Ci channels, at Xi's size) is
``ReLU(sum_j F_ij(Xj))``:

* j = i: Xi itself;
* j > i (coarser): 1x1 conv Cj -> Ci (no bias), BN, then resized to Xi's size (bilinear,
  align_corners=False, as the segmentation code's ``F.interpolate``);
* j < i (finer): i - j convs 3x3 stride 2 (no bias), each with BN; all but the last keep Cj channels
  and are followed by ReLU, the last maps Cj -> Ci (no ReLU before the sum).

The first block with several outputs: ``forward`` returns the list [Y1, ..., Yn].

Shape contract: inputs (B, Ci, Hi, Wi), H_{i+1} = ceil(Hi / 2), W_{i+1} = ceil(Wi / 2); outputs
[(B, Ci, Hi, Wi)] for every i; ``out_channels`` must be C1 (the outputs keep the branches' widths).
Parameters: sum over i < j of (Cj*Ci + 2Ci) [up]  +  sum over j < i of ((i-j-1)*(9*Cj^2 + 2Cj) + 9*Cj*Ci + 2Ci) [down].

Paper vs code: the paper upsamples bilinearly, then applies the 1x1 conv; the code applies the 1x1
conv and BN at the coarse size, then resizes: the same numbers (both are linear, and bilinear weights
sum to 1), fewer MACs. The pose code resizes with ``nn.Upsample(scale_factor=2**(j-i), mode='nearest')``:
``resize_mode=nearest``.
"""

from __future__ import annotations

from torch import nn

from ..errors import SpecError
from .base import Chain, FusionBlock, Resize, run_chain


def _conv_bn(cin: int, cout: int, k: int, stride: int, relu: bool) -> Chain:
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)]
    return Chain(*layers, nn.ReLU()) if relu else Chain(*layers)


class HRNetFusion(FusionBlock):
    """HRNet exchange unit (``fuse_layers`` of seg_hrnet.py): n branches to n outputs."""

    kind = "hrnet"
    min_inputs = 2
    not_a_node = "it returns one output per branch, a neck's merge one map"

    def __init__(self, in_channels, out_channels, **align) -> None:
        super().__init__(in_channels, out_channels, **align)
        cs = self.in_channels
        if out_channels != cs[0]:
            raise SpecError(f"out_channels: 'hrnet' keeps every branch's width; out is the finest branch's "
                            f"({cs[0]}), got {out_channels}; allowed: {cs[0]}", field="out_channels")
        n = len(cs)
        fuse = []
        for i in range(n):
            row = []
            for j in range(n):
                if j > i:
                    row.append(_conv_bn(cs[j], cs[i], 1, 1, relu=False))
                elif j == i:
                    row.append(nn.Identity())
                else:
                    row.append(Chain(*(_conv_bn(cs[j], cs[i] if k == i - j - 1 else cs[j], 3, 2, relu=k < i - j - 1)
                                       for k in range(i - j))))
            fuse.append(nn.ModuleList(row))
        self.fuse_layers = nn.ModuleList(fuse)
        # one resize per (output, coarser input) pair: each shows as a layer where it runs
        self.up = nn.ModuleList(nn.ModuleList(Resize(self.resize_mode, self.align_corners) for _ in range(n - 1 - i))
                                for i in range(n))
        self.relu = nn.ReLU()

    def _check_sizes(self, sizes) -> None:
        for i in range(1, len(sizes)):
            half = tuple(-(-d // 2) for d in sizes[i - 1])
            if tuple(sizes[i]) != half:
                got = "x".join(map(str, sizes[i]))
                raise SpecError(f"inputs: 'hrnet' branch {i} ({got}) must be branch {i - 1} halved by a stride-2 conv "
                                f"({'x'.join(map(str, half))}); give the branches finest first", field="inputs")

    def forward(self, *xs):
        self.check_inputs(xs)
        self._check_sizes([x.shape[2:] for x in xs])
        outs = []
        for i, (row, ups) in enumerate(zip(self.fuse_layers._modules.values(), self.up._modules.values())):
            fs, rs = list(row._modules.values()), list(ups._modules.values())
            size = xs[i].shape[2:]
            y = run_chain(xs[0], fs[0])
            for j in range(1, len(xs)):
                t = run_chain(xs[j], fs[j])
                y = y + (rs[j - i - 1](t, size) if j > i else t)
            outs.append(self.relu(y))
        return outs

    def output_shape(self, shapes):
        """One (C, H, W) per output: the branches' own shapes."""
        self._check_sizes([tuple(s[1:]) for s in shapes])
        return [tuple(s) for s in shapes]
