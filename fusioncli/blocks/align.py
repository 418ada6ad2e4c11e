"""Aligned top-down merges: the coarse map is warped onto the fine one before the sum, by a learned
flow (SFNet) or by a modulated deformable convolution (FaPN).

**SFNet** (``kind=sfnet``). Paper: Li, You, Yang, Zhao, Cheng, Tong, Yang, Zhang, "Semantic Flow
for Fast and Accurate Scene Parsing", ECCV 2020. Canonical code: lxtGH/SFSegNets
``network/nn/operators.py`` (``AlignedModule``, ``flow_warp``), wired in
``network/sfnet_resnet.py`` (``UperNetAlignHead``: ``f = conv_x + fpn_out_align([conv_x, f])``,
then ``fpn_out`` = conv3x3-BN-ReLU). With C = ``out_channels`` (even)::

    L    = ReLU(BN(conv1x1(X_fine)))                 lateral (fpn_in, conv with bias)
    H    = X_coarse (a 1x1 projection with bias to C where its width is not C)
    F    = conv3x3(cat(up(down_h(H)), down_l(L)))    down_*: 1x1 C -> C/2, no bias; flow: C -> 2, no bias
    W    = grid_sample(H, base grid + F / (W_f, H_f), bilinear, zeros, align_corners=True)
    out  = ReLU(BN(conv3x3(L + W)))                  fpn_out (no bias)

``up`` is bilinear with align_corners=True (``resize_mode``, ``align_corners``); the warp samples
the coarse map itself at the fine resolution (the reference's ``h_feature_orign``).
Parameters: ``Cf*C + C + 2C (BN) [+ Cc*C + C] + 2 * C*C/2 + 9*C*2 + 9*C*C + 2C (BN)``.

**FaPN** (``kind=fapn``). Paper: Huang, Lu, Cheng, He, "FaPN: Feature-aligned Pyramid Network for
Dense Image Prediction", ICCV 2021. Canonical code: ShihuaHuang95/FaPN-full
``detectron2/modeling/backbone/fan.py`` (``FeatureSelectionModule``, ``FeatureAlign_V2``,
``FAN``), with DCNv2's ``DCN`` (``extra_offset_mask=True``, CharlesShang/DCNv2 ``dcn_v2.py``) as
the deformable convolution. With C = ``out_channels`` and G deformable groups (8)::

    U     = up(conv1x1(X_coarse))                       FAN's lateral of the coarser level (bias); bilinear
    A     = conv1x1'(X_fine + X_fine * sigmoid(conv1x1(avgpool(X_fine))))   FSM: Cf -> Cf, Cf -> C, no bias
    O     = conv1x1(cat(A, U))                          2C -> C, no bias (variant=reference: cat(A, 2U))
    o, m  = conv3x3(O) split (2 G 9, G 9)               DCN's conv_offset_mask, bias, initialised to 0
    D     = ReLU(DCNv2(U; offsets o, masks sigmoid(m)))  3x3, C -> C, bias, G offset groups
    out   = conv3x3(D + A)                              FAN's output conv (bias)

The paper's offsets come from the concatenation [A, U] (Sec. 3.2); ``FeatureAlign_V2`` doubles U
before concatenating (``feat_up * 2``, "compute the dif"), which ``variant=reference`` does (one
multiplication per element of U more; the same function up to a rescaling of the offset conv).
The modulated deformable convolution runs in pure PyTorch, as DCNv2's reference: each of the 9
taps of every output pixel is sampled bilinearly at its shifted position (``grid_sample``,
zeros outside, which is DCNv2's ``dmcn_im2col_bilinear``), scaled by its mask, and the 9 C
sampled columns are multiplied with the weight (a 1x1 convolution over C*9 channels: C*9*C MACs
per output pixel, as a 3x3 convolution). DCNv2's debug check of the mean offset is left out.
Parameters: ``Cf*Cf + Cf*C + Cc*C + C + 2C*C + (C*9*27G + 27G) + 9*C*C + C + 9*C*C + C``.

Shape contract (both): exactly two inputs (B, Cf, H, W) fine and (B, Cc, h, w) coarse, any
sizes; output (B, C, H, W). ``align`` is not used.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SpecError
from .base import Chain, FusionBlock, apply_each, projections


def deform_conv2d(x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor,
                  bias: torch.Tensor | None, padding: int, dilation: int) -> torch.Tensor:
    """Modulated deformable convolution (DCNv2), stride 1, in pure PyTorch.

    ``offset``: (B, 2 G K, H, W), per offset group and tap (dy, dx), as DCNv2 lays it out;
    ``mask``: (B, G K, H, W). Output (B, Cout, H + 2 padding - dilation (k - 1), ...).
    """
    b, c, h, w = x.shape
    cout, _, kh, kw = weight.shape
    k = kh * kw
    g = mask.shape[1] // k
    ho, wo = offset.shape[-2:]
    off = offset.view(b, g, k, 2, ho, wo)
    ty, tx = torch.meshgrid(torch.arange(kh, device=x.device, dtype=x.dtype) * dilation - padding,
                            torch.arange(kw, device=x.device, dtype=x.dtype) * dilation - padding, indexing="ij")
    ys = torch.arange(ho, device=x.device, dtype=x.dtype).view(1, ho, 1) + ty.reshape(k, 1, 1)
    xs = torch.arange(wo, device=x.device, dtype=x.dtype).view(1, 1, wo) + tx.reshape(k, 1, 1)
    py = off[:, :, :, 0] + ys  # (B, G, K, Ho, Wo): pixel coordinates of every tap
    px = off[:, :, :, 1] + xs
    grid = torch.stack(((2 * px + 1) / w - 1, (2 * py + 1) / h - 1), dim=-1).view(b * g, k * ho, wo, 2)
    cols = F.grid_sample(x.reshape(b * g, c // g, h, w), grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)  # (B*G, C/G, K*Ho, Wo)
    cols = cols.view(b, g, c // g, k, ho, wo) * mask.view(b, g, 1, k, ho, wo)
    # the weight as a 1x1 kernel over the taps, by views of its own (static) shape: ONNX export needs it known
    return F.conv2d(cols.reshape(b, c * k, ho, wo), weight.flatten(1)[:, :, None, None], bias)


class ModulatedDeformConv2d(nn.Conv2d):
    """DCNv2's ``DCN`` with ``extra_offset_mask``: ``forward(x, feat)``, offsets and masks from
    ``conv_offset_mask(feat)``. The weight and bias are this ``nn.Conv2d``'s (same shapes and
    names as DCNv2's), the convolution over the sampled taps is :func:`deform_conv2d`."""

    def __init__(self, channels: int, out_channels: int, kernel_size: int, padding: int, deformable_groups: int) -> None:
        super().__init__(channels, out_channels, kernel_size, padding=padding)
        self.deformable_groups = deformable_groups
        self.conv_offset_mask = nn.Conv2d(channels, 3 * deformable_groups * kernel_size * kernel_size, kernel_size,
                                          padding=padding)
        nn.init.zeros_(self.conv_offset_mask.weight)
        nn.init.zeros_(self.conv_offset_mask.bias)

    def forward(self, x: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        o1, o2, mask = torch.chunk(self.conv_offset_mask(feat), 3, dim=1)
        return deform_conv2d(x, torch.cat((o1, o2), dim=1), torch.sigmoid(mask), self.weight, self.bias,
                             self.padding[0], self.dilation[0])

    def extra_repr(self) -> str:
        return super().extra_repr() + f", deformable_groups={self.deformable_groups}"


class SFNetFusion(FusionBlock):
    """SFNet flow alignment: the coarse map warped by a learned 2-channel flow, added to the lateral."""

    kind = "sfnet"
    min_inputs = 2
    max_inputs = 2
    default_align_corners = True

    def __init__(self, in_channels, out_channels, **align) -> None:
        super().__init__(in_channels, out_channels, **align)
        c = out_channels
        if c % 2:
            raise SpecError(f"out_channels: 'sfnet' halves the width for the flow branch; needs an even width, got {c}",
                            field="out_channels")
        self.lateral = Chain(nn.Conv2d(self.in_channels[0], c, 1), nn.BatchNorm2d(c), nn.ReLU())
        self.proj = projections(self.in_channels[1:], c)
        self.down_h = nn.Conv2d(c, c // 2, 1, bias=False)
        self.down_l = nn.Conv2d(c, c // 2, 1, bias=False)
        self.flow_make = nn.Conv2d(c, 2, 3, padding=1, bias=False)
        self.fpn_out = Chain(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU())

    def reference_size(self, sizes):
        return tuple(sizes[0])

    def forward(self, x_fine, x_coarse):
        low = self.lateral(x_fine)
        (high,) = apply_each(self.proj, (x_coarse,))
        size = low.shape[-2:]
        h = self.down_h(high)
        if h.shape[-2:] != size:
            h = self.resize[1](h, size)
        flow = self.flow_make(torch.cat([h, self.down_l(low)], 1))
        return self.fpn_out(low + flow_warp(high, flow))


def flow_warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """SFSegNets ``flow_warp``: sample ``x`` at the flow's resolution, at the base grid (corners at
    -1 and 1) shifted by ``flow / (W, H)``; bilinear, zeros outside, align_corners=True."""
    n, _, out_h, out_w = flow.shape
    norm = torch.tensor([[[[out_w, out_h]]]], dtype=x.dtype, device=x.device)
    # .to(dtype), a no-op here: TorchScript's ONNX export of linspace computes in double without it
    gy = torch.linspace(-1.0, 1.0, out_h, dtype=x.dtype, device=x.device).to(x.dtype).view(-1, 1).repeat(1, out_w)
    gx = torch.linspace(-1.0, 1.0, out_w, dtype=x.dtype, device=x.device).to(x.dtype).repeat(out_h, 1)
    grid = torch.cat((gx.unsqueeze(2), gy.unsqueeze(2)), 2).repeat(n, 1, 1, 1)
    return F.grid_sample(x, grid + flow.permute(0, 2, 3, 1) / norm, align_corners=True)


class FeatureSelection(nn.Module):
    """FaPN ``FeatureSelectionModule`` (norm ""): X + X * sigmoid(conv1x1(avgpool(X))), then conv1x1."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv_atten = nn.Conv2d(cin, cin, 1, bias=False)
        self.sigmoid = nn.Sigmoid()
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        atten = self.sigmoid(self.conv_atten(F.avg_pool2d(x, x.shape[2:])))
        return self.conv(x + torch.mul(x, atten))


class FaPNFusion(FusionBlock):
    """FaPN feature alignment (FeatureAlign_V2 with FSM and DCNv2) and FAN's output conv.

    Args:
        deformable_groups: offset groups of the deformable convolution (8, as FeatureAlign_V2).
        variant: ``paper`` (offsets from [A, U]) or ``reference`` (FeatureAlign_V2's [A, 2U]).
    """

    kind = "fapn"
    min_inputs = 2
    max_inputs = 2

    def __init__(self, in_channels, out_channels, *, deformable_groups: int = 8,
                 variant: Literal["paper", "reference"] = "paper", **align) -> None:
        super().__init__(in_channels, out_channels, **align)
        self.variant = variant
        c = out_channels
        if deformable_groups < 1 or c % deformable_groups:
            raise SpecError(f"deformable_groups: 'fapn' needs out channels divisible by deformable_groups, got {c} and "
                            f"{deformable_groups}", field="deformable_groups")
        self.lateral_conv = FeatureSelection(self.in_channels[0], c)
        self.lateral_top = nn.Conv2d(self.in_channels[1], c, 1)
        self.offset = nn.Conv2d(2 * c, c, 1, bias=False)
        self.dcpack_L2 = ModulatedDeformConv2d(c, c, 3, 1, deformable_groups)
        self.relu = nn.ReLU()
        self.output_conv = nn.Conv2d(c, c, 3, padding=1)

    def reference_size(self, sizes):
        return tuple(sizes[0])

    def forward(self, x_fine, x_coarse):
        size = x_fine.shape[-2:]
        up = self.lateral_top(x_coarse)
        if up.shape[-2:] != size:
            up = self.resize[1](up, size)
        arm = self.lateral_conv(x_fine)
        offset = self.offset(torch.cat([arm, up * 2 if self.variant == "reference" else up], dim=1))
        aligned = self.relu(self.dcpack_L2(up, offset))
        return self.output_conv(aligned + arm)
