"""BiFPN fusion node: fast normalised weighted sum, Swish, depthwise-separable conv, BN.

Paper: Tan, Pang, Le, EfficientDet: Scalable and Efficient Object Detection, CVPR 2020.
Canonical code: zylo117/Yet-Another-EfficientDet-Pytorch ``efficientdet/model.py``
(``BiFPN``, ``SeparableConvBlock``); rwightman/efficientdet-pytorch
``effdet/efficientdet.py`` (``FpnCombine``, ``ResampleFeatureMap``, ``BiFpnLayer``).

One node of a BiFPN layer, e.g. ``P4_1 = node(P4_0, up(P5_1))`` or
``P4_2 = node(P4_0, P4_1, down(P3_2))``:

1. Resample (as ``ResampleFeatureMap``): an input whose width ``Ci != C`` first gets a
   1x1 conv (with bias) + BN to ``C``; then every input is resized to the reference
   size (``align``, default the first input's). A map an integer factor ``s`` larger is
   max-pooled (kernel ``s+1``, stride ``s``: the reference's 3x3/2 pool for adjacent
   levels; ``pooling=avg`` averages, ``pooling=none`` interpolates); a smaller map is
   upsampled with ``resize_mode`` (nearest, as the reference). ``pad=symmetric`` (default)
   pads ``s//2`` on every side, as rwightman's default ``pad_type=''``; ``pad=same`` pads
   TF-"same" as zylo117 (``MaxPool2dStaticSamePadding``) and the TF original: the extra
   ``(ceil(H/s) - 1)*s + s+1 - H`` split with the odd pixel right/bottom (1 pixel, all of it
   right/bottom, for even sizes), which shifts the windows by one pixel: use it with
   TF-ported weights. Max pooling never picks the padding; ``pooling=avg`` counts it as
   zeros in the mean (rwightman's ``nn.AvgPool2d`` and ``AvgPool2dSame``, whose
   ``count_include_pad`` is True).
2. Weighted sum, ``weighting``:
   ``fast``: ``w = ReLU(edge_weights)``, ``O = sum_i w_i I_i / (epsilon + sum_j w_j)``;
   ``softmax``: ``O = sum_i softmax(edge_weights)_i I_i``; ``sum``: ``O = sum_i I_i``
   (no weights). ``edge_weights`` start at ones, as in both references.
3. ``Swish -> depthwise 3x3 (no bias) -> pointwise 1x1 (bias) -> BN`` (momentum 0.01,
   eps 1e-3, the TensorFlow defaults in PyTorch's convention); ``conv_bn_act=true``
   gives ``depthwise -> pointwise -> BN -> Swish`` instead (rwightman's
   ``conv_bn_relu_pattern``).

Paper vs reference code: the paper says "we use depthwise separable convolution for
feature fusion, and add batch normalization and activation after each convolution";
the authors' TensorFlow code (google/automl), zylo117 and rwightman all apply Swish
*before* the separable conv and BN without activation after it. The default follows the
code (and BLOCKS.md); ``conv_bn_act=true`` is the paper sentence's literal reading.

Shape contract: inputs (B, Ci, Hi, Wi), n >= 2; output (B, C, H, W) at the reference
size (the first input's by default).
Parameters: n (``fast``/``softmax``; 0 for ``sum``)
+ sum over inputs with Ci != C of (Ci*C + C + 2C)
+ 9C (depthwise) + C*C + C (pointwise) + 2C (BN).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .base import FusionBlock, Resize, apply_each, children, pad_same, sum_maps

BN_MOMENTUM = 0.01
BN_EPS = 1e-3


class PoolResize(Resize):
    """Resize to a target size: pooling (kernel s+1, stride s) when the map is an integer factor s
    larger and that pooling lands exactly on the target, else interpolation. ``pad``: ``symmetric``
    (s//2 on each side) or TF ``same`` (:func:`~fusioncli.blocks.base.pad_same`)."""

    def __init__(self, pooling: str, mode: str, align_corners: bool, pad: str = "symmetric") -> None:
        super().__init__(mode, align_corners)
        self.pooling = pooling
        self.pad = pad

    def forward(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        h, w = (int(d) for d in x.shape[-2:])  # ints under JIT tracing too (fvcore's --crosscheck)
        th, tw = (int(d) for d in size)
        if self.pooling != "none" and h > th and w > tw:
            s = round(h / th)
            k, p = s + 1, s // 2
            if self.pad == "same":
                if -(-h // s) == th and -(-w // s) == tw:
                    # max: the padding never wins (-inf, as zylo117); avg: zeros counted (rwightman's AvgPool2dSame)
                    if self.pooling == "max":
                        return F.max_pool2d(pad_same(x, k, s, float("-inf")), k, s)
                    return F.avg_pool2d(pad_same(x, k, s, 0.0), k, s)
            elif (h + 2 * p - k) // s + 1 == th and (w + 2 * p - k) // s + 1 == tw:
                if self.pooling == "max":
                    return F.max_pool2d(x, k, s, p)
                return F.avg_pool2d(x, k, s, p)  # padding counted in the mean, as rwightman's nn.AvgPool2d
        return super().forward(x, size)

    def extra_repr(self) -> str:
        return f"pooling={self.pooling!r}, pad={self.pad!r}, " + super().extra_repr()


class BiFPNFusion(FusionBlock):
    """One BiFPN node over n >= 2 inputs; see the module docstring.

    Args:
        weighting: ``fast`` (ReLU weights normalised by their sum + ``epsilon``),
            ``softmax`` over the weights, or ``sum`` (unweighted).
        epsilon: the fast-normalisation epsilon (1e-4), not BN's.
        pooling: how a larger input is brought down: ``max`` (reference), ``avg``, or
            ``none`` (interpolate with ``resize_mode``).
        pad: the pool's padding: ``symmetric`` (rwightman) or ``same`` (TF, zylo117).
        conv_bn_act: ``dw -> pw -> BN -> Swish`` instead of ``Swish -> dw -> pw -> BN``.
    """

    kind = "bifpn"
    min_inputs = 2
    default_align = "first"
    default_resize_mode = "nearest"

    def __init__(self, in_channels, out_channels, *, weighting: Literal["fast", "softmax", "sum"] = "fast",
                 epsilon: float = 1e-4, pooling: Literal["max", "avg", "none"] = "max",
                 pad: Literal["symmetric", "same"] = "symmetric", conv_bn_act: bool = False, **align) -> None:
        super().__init__(in_channels, out_channels, **align)
        c = out_channels
        self.weighting = weighting
        self.epsilon = epsilon
        self.conv_bn_act = conv_bn_act
        self.resize = nn.ModuleList(PoolResize(pooling, self.resize_mode, self.align_corners, pad)
                                    for _ in self.in_channels)
        self.proj = nn.ModuleList(
            nn.Identity() if ci == c else nn.Sequential(nn.Conv2d(ci, c, 1), nn.BatchNorm2d(c, momentum=BN_MOMENTUM,
                                                                                            eps=BN_EPS))
            for ci in self.in_channels
        )
        self.edge_weights = nn.Parameter(torch.ones(len(self.in_channels))) if weighting != "sum" else None
        self.act = nn.SiLU()
        self.depthwise = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
        self.pointwise = nn.Conv2d(c, c, 1)
        self.bn = nn.BatchNorm2d(c, momentum=BN_MOMENTUM, eps=BN_EPS)

    def _weighted_sum(self, xs) -> torch.Tensor:
        # one Python call less per step where it is free: on a GPU this whole node is ~10 kernel
        # launches, and each Python call costs about what a launch does
        size = xs[0].shape[-2:] if self.align_ref == "first" else self.target_size(xs)
        xs = apply_each(self.proj, xs)
        ys = [x if x.shape[-2:] == size else r(x, size) for r, x in zip(children(self.resize), xs)]
        if self.weighting == "sum":
            return sum_maps(ys)
        if self.weighting == "fast":
            w = F.relu(self.edge_weights)
            w = w / (w.sum() + self.epsilon)
        else:
            w = torch.softmax(self.edge_weights, dim=0)
        out = ys[0] * w[0]
        for i in range(1, len(ys)):
            out = torch.addcmul(out, ys[i], w[i])
        return out

    def forward(self, *xs):
        if len(xs) != len(self.in_channels):  # check_inputs says why; calling it costs a Python call
            self.check_inputs(xs)
        out = self._weighted_sum(xs)  # the resized maps are freed here, before the convs
        if self.conv_bn_act:
            return self.act(self.bn(self.pointwise(self.depthwise(out))))
        return self.bn(self.pointwise(self.depthwise(self.act(out))))
