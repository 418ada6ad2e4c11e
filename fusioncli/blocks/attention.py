"""Channel-attention fusion: concatenate, project with a 1x1 conv, then re-weight (SE, CBAM, ECA, CoordAtt).

Papers: Hu, Shen, Sun, *Squeeze-and-Excitation Networks*, CVPR 2018 (``se``);
Woo, Park, Lee, Kweon, *CBAM: Convolutional Block Attention Module*, ECCV 2018 (``cbam``);
Wang et al., *ECA-Net: Efficient Channel Attention*, CVPR 2020 (``eca``);
Hou, Zhou, Feng, *Coordinate Attention for Efficient Mobile Network Design*, CVPR 2021 (``coordatt``).
Canonical code: huggingface/pytorch-image-models ``timm/layers/squeeze_excite.py``
(``SEModule``) and ``timm/layers/cbam.py`` (``CbamModule``, ``ChannelAttn``, ``SpatialAttn``);
BangguWu/ECANet ``models/eca_module.py`` (``eca_layer``) and ``models/eca_resnet.py`` (its k_size);
houqb/CoordAttention ``coordatt.py`` (``CoordAtt``, ``h_swish``).

Every block first fuses: ``Y = act(norm(W_p cat(X1..Xn)))``, a 1x1 conv from sum(Ci) to C
(bias only with ``norm=none``; ``norm``/``act`` default to none). Then, with d the
reduced width (below):

* SE:   ``s = GAP(Y)``; ``g = sigmoid(W2 relu(W1 s + b1) + b2)``; ``out = g * Y``
  (W1: C->d, W2: d->C, 1x1 convs with bias, as timm's ``SEModule``).
* CBAM: channel ``Mc = sigmoid(MLP(GAP(Y)) + MLP(GMP(Y)))`` with one shared bias-free
  MLP ``W1 relu(W0 .)`` (C->d->C); ``Y' = Mc * Y``; spatial
  ``Ms = sigmoid(f7x7([mean_c(Y'); max_c(Y')]))`` (2->1 channels, no bias); ``out = Ms * Y'``.
* ECA:  ``s = GAP(Y)`` as a 1-channel sequence of length C; ``g = sigmoid(conv1d_k(s))`` (one kernel
  of k taps over neighbouring channels, zero padding (k-1)/2, no bias); ``out = g * Y``.
  k = t if t is odd else t + 1, t = int(|(log2(C) + b) / gamma|), gamma = 2, b = 1 (paper, Eq. 12).
* CoordAtt: ``z_h = mean over W`` (C x H), ``z_w = mean over H`` (C x W);
  ``f = h_swish(BN(W1 [z_h; z_w] + b1))`` (1x1 C->m on the H+W positions, m = max(8, C // 32));
  ``a_h = sigmoid(W_h f_h + b_h)``, ``a_w = sigmoid(W_w f_w + b_w)`` (1x1 m->C); ``out = Y * a_w * a_h``,
  h_swish(x) = x * relu6(x + 3) / 6.

Shape contract: inputs (B, Ci, Hi, Wi) aligned to the reference (H, W); output (B, C, H, W).
SE also takes volumes (CxDxHxW, ``dims=3``, set by the inputs' rank): 1x1x1 Conv3d layers, GAP over
D, H and W (the channel SE of 3-D segmentation nets, e.g. pytorch-3dunet ``unet3d/se.py``).

Parameters (S = sum(Ci); P = S*C + C with ``norm=none``, S*C + 2C with ``norm=bn``):

* SE:   P + C*d + d + d*C + C
* CBAM: P + 2*C*d + 2*k^2 (``spatial_kernel`` k = 7: 98), + 2 for the BN of variant=reference
* ECA:  P + k
* CoordAtt: P + C*m + m + 2m (BN) + 2*(m*C + C)

Paper vs reference code
-----------------------
The reduced width d differs. Papers: d = C*rd_ratio (C/r, r = 16), rounded down, at least 1.
timm rounds it with ``make_divisible``: SE to a multiple of 8 (at least 8; C = 64 gives
d = 8, the paper 4), CBAM to the nearest integer (C = 88 gives 6, the paper 5).
CBAM's spatial branch: the paper writes ``sigmoid(f7x7(.))``; timm's ``SpatialAttn`` uses
``ConvNormAct(2, 1, 7, apply_act=False)``, a bias-free conv followed by a BatchNorm.
``variant="reference"`` gives timm's widths and the BatchNorm. (The CBAM authors' own code,
Jongchan/attention-module, differs again: MLP biases, BN momentum 0.01, [max; mean] order.)
ECA: the paper picks k from C (above; C = 64 gives 3, C = 256 gives 5); the authors' ImageNet
models (``eca_resnet.py``) fix ``k_size = 3`` in every stage: ``variant="reference"``.
CoordAtt: the paper and ``coordatt.py`` agree; timm's ``CoordAttn`` (make_divisible widths, other
activation) is not followed.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from ..errors import SpecError
from .base import ActName, Dims, FusionBlock, NormName, check_dims, conv_nd, create_act, create_norm, run_chain


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """timm's ``make_divisible``: round ``v`` to the nearest multiple of ``divisor`` (at least
    ``min_value`` or ``divisor``), going up one step if rounding lost more than ``1 - round_limit``."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


def paper_width(channels: int, rd_ratio: float) -> int:
    """C/r rounded down, at least 1 (the papers' reduced width)."""
    return max(1, int(channels * rd_ratio + 1e-9))


def _check_ratio(rd_ratio: float) -> None:
    if not 0 < rd_ratio <= 1:
        raise SpecError.bad("rd_ratio", rd_ratio, "allowed: a float in (0, 1], e.g. 0.0625 (= 1/16)")


class _ProjectedAttention(FusionBlock):
    """Shared front: cat(X1..Xn) -> 1x1 conv (sum Ci -> C) -> norm -> act."""

    min_inputs = 1

    def _build_projection(self, norm: str, act: str, dims: int = 2) -> None:
        self.proj = conv_nd(dims)(sum(self.in_channels), self.out_channels, kernel_size=1, bias=norm == "none")
        self.norm = create_norm(norm, self.out_channels, dims)
        self.act = create_act(act)

    def _fuse(self, xs) -> torch.Tensor:
        self.check_inputs(xs)
        return run_chain(self.proj(torch.cat(self.aligned(xs), dim=1) if len(xs) > 1 else xs[0]), self.norm, self.act)


class SEFusion(_ProjectedAttention):
    """Concat, 1x1 conv to ``out_channels``, squeeze-and-excitation gate (timm ``SEModule``).

    Args:
        rd_ratio: reduction ratio of the excitation MLP (1/r, r = 16).
        norm, act: normalisation and activation after the 1x1 fusion conv.
        variant: ``paper`` (d = floor(C*rd_ratio)) or ``reference`` (timm: make_divisible(C*rd_ratio, 8)).
    """

    kind = "se"
    takes_volumes = True

    def __init__(self, in_channels, out_channels, *, rd_ratio: float = 1 / 16, norm: NormName = "none",
                 act: ActName = "none", variant: Literal["paper", "reference"] = "paper", dims: Dims = 2,
                 **align) -> None:
        super().__init__(in_channels, out_channels, **align)
        _check_ratio(rd_ratio)
        self.dims = check_dims(self, dims)
        self.variant = variant
        self._build_projection(norm, act, dims)
        c = out_channels
        d = make_divisible(c * rd_ratio, 8, round_limit=0.0) if variant == "reference" else paper_width(c, rd_ratio)
        self.rd_channels = d
        self._spatial = tuple(range(2, 2 + dims))  # configuration, not a module
        self.fc1 = conv_nd(dims)(c, d, kernel_size=1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = conv_nd(dims)(d, c, kernel_size=1, bias=True)

    def forward(self, *xs):
        y = self._fuse(xs)
        s = self.fc2(self.relu(self.fc1(y.mean(self._spatial, keepdim=True))))
        return y * torch.sigmoid(s)


class CBAMFusion(_ProjectedAttention):
    """Concat, 1x1 conv to ``out_channels``, CBAM channel then spatial attention (timm ``CbamModule``).

    Args:
        rd_ratio: reduction ratio of the shared channel MLP (1/r, r = 16).
        spatial_kernel: kernel of the spatial attention conv (7 in the paper).
        norm, act: normalisation and activation after the 1x1 fusion conv.
        variant: ``paper`` (d = floor(C*rd_ratio); spatial conv then sigmoid) or ``reference``
            (timm: d = make_divisible(C*rd_ratio, 1, round_limit=0); spatial conv, BatchNorm, sigmoid).
    """

    kind = "cbam"

    def __init__(self, in_channels, out_channels, *, rd_ratio: float = 1 / 16, spatial_kernel: int = 7,
                 norm: NormName = "none", act: ActName = "none", variant: Literal["paper", "reference"] = "paper",
                 **align) -> None:
        super().__init__(in_channels, out_channels, **align)
        _check_ratio(rd_ratio)
        if spatial_kernel <= 0 or spatial_kernel % 2 == 0:
            raise SpecError.bad("spatial_kernel", spatial_kernel, "allowed: odd positive integers (paper: 7)")
        self.variant = variant
        self._build_projection(norm, act)
        c = out_channels
        d = make_divisible(c * rd_ratio, 1, round_limit=0.0) if variant == "reference" else paper_width(c, rd_ratio)
        self.rd_channels = d
        self.fc1 = nn.Conv2d(c, d, kernel_size=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(d, c, kernel_size=1, bias=False)
        self.spatial = nn.Conv2d(2, 1, spatial_kernel, padding=spatial_kernel // 2, bias=False)
        self.spatial_norm = nn.BatchNorm2d(1) if variant == "reference" else nn.Identity()

    def forward(self, *xs):
        y = self._fuse(xs)
        avg = self.fc2(self.relu(self.fc1(y.mean((2, 3), keepdim=True))))
        mx = self.fc2(self.relu(self.fc1(y.amax((2, 3), keepdim=True))))
        y = y * torch.sigmoid(avg + mx)
        m = torch.cat([y.mean(1, keepdim=True), y.amax(1, keepdim=True)], dim=1)
        return y * torch.sigmoid(run_chain(m, self.spatial, self.spatial_norm))


def eca_kernel(channels: int, gamma: int = 2, b: int = 1) -> int:
    """ECA's adaptive kernel size: t = int(|(log2(C) + b) / gamma|), made odd by adding 1."""
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


class ECAFusion(_ProjectedAttention):
    """Concat, 1x1 conv to ``out_channels``, efficient channel attention (ECANet ``eca_layer``).

    Args:
        k_size: taps of the channel conv; 0 = by variant (paper: from C; reference: 3).
        norm, act: normalisation and activation after the 1x1 fusion conv.
        variant: ``paper`` (k adaptive in C) or ``reference`` (ECANet's ResNets: k = 3).
    """

    kind = "eca"

    def __init__(self, in_channels, out_channels, *, k_size: int = 0, norm: NormName = "none", act: ActName = "none",
                 variant: Literal["paper", "reference"] = "paper", **align) -> None:
        super().__init__(in_channels, out_channels, **align)
        if k_size < 0 or (k_size and k_size % 2 == 0):
            raise SpecError.bad("k_size", k_size, "allowed: 0 (by variant) or an odd positive integer")
        self.variant = variant
        self._build_projection(norm, act)
        k = k_size or (3 if variant == "reference" else eca_kernel(out_channels))
        self.conv = nn.Conv1d(1, 1, kernel_size=k, padding=(k - 1) // 2, bias=False)

    def forward(self, *xs):
        y = self._fuse(xs)
        s = self.conv(y.mean((2, 3)).unsqueeze(1))  # (B, 1, C): the channels as a sequence
        return y * torch.sigmoid(s).transpose(1, 2).unsqueeze(-1)


class CoordAttFusion(_ProjectedAttention):
    """Concat, 1x1 conv to ``out_channels``, coordinate attention (houqb/CoordAttention ``CoordAtt``).

    Args:
        reduction: m = max(8, C // reduction) (32).
        norm, act: normalisation and activation after the 1x1 fusion conv.
    """

    kind = "coordatt"

    def __init__(self, in_channels, out_channels, *, reduction: int = 32, norm: NormName = "none",
                 act: ActName = "none", **align) -> None:
        super().__init__(in_channels, out_channels, **align)
        if reduction < 1:
            raise SpecError.bad("reduction", reduction, "allowed: a positive integer (paper: 32)")
        self._build_projection(norm, act)
        c = out_channels
        m = self.mip = max(8, c // reduction)
        self.conv1 = nn.Conv2d(c, m, kernel_size=1)
        self.bn1 = nn.BatchNorm2d(m)
        self.act1 = nn.Hardswish()
        self.conv_h = nn.Conv2d(m, c, kernel_size=1)
        self.conv_w = nn.Conv2d(m, c, kernel_size=1)

    def forward(self, *xs):
        y = self._fuse(xs)
        h, w = y.shape[-2:]
        z = torch.cat([y.mean(3, keepdim=True), y.mean(2, keepdim=True).transpose(2, 3)], dim=2)
        f = self.act1(self.bn1(self.conv1(z)))
        f_h, f_w = torch.split(f, [h, w], dim=2)
        a_h = torch.sigmoid(self.conv_h(f_h))
        a_w = torch.sigmoid(self.conv_w(f_w.transpose(2, 3)))
        return y * a_w * a_h
