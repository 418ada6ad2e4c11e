"""Learned upsampling in the FPN top-down merge: CARAFE (content-aware reassembly) and DySample
(learned point sampling) replace FPN's nearest upsampling of the coarse map.

Both blocks are one FPN level with the upsampler swapped, as the papers evaluate them (Faster
R-CNN / Mask R-CNN with FPN): ``P = conv3x3(lateral_f(X_fine) + UP(lateral_c(X_coarse)))``,
laterals 1x1 convs to C with bias, output 3x3 conv with bias, no norm and no activation (mmdet
``FPN_CARAFE`` with ``norm_cfg=None, act_cfg=None``). Inputs fine then coarse; the coarse map
must be exactly ``1/scale`` of the fine one (the upsampler has a fixed factor).

**CARAFE** (``kind=carafe``). Paper: Wang, Chen, Xu, Liu, Loy, Lin, "CARAFE: Content-Aware
ReAssembly of FEatures", ICCV 2019. Canonical code: open-mmlab/mmcv ``mmcv/ops/carafe.py``
(``CARAFEPack``; the reassembly itself is its CUDA op ``carafe``), used by mmdetection
``mmdet/models/necks/fpn_carafe.py``. With scale s, up kernel k (``up_kernel``, 5), encoder
kernel ke (``encoder_kernel``, 3), compressed width Cm (``compressed_channels``, 64)::

    Y  = conv1x1(X)                          C -> Cm (channel compressor, bias)
    M  = conv_ke(Y)                          Cm -> k^2 s^2 (content encoder, bias)
    M  = softmax over the k^2 taps of pixel_shuffle(M, s)     one k x k kernel per output pixel
    out[c, i, j] = sum_{a,b} M[(a,b), i, j] * X[c, i//s + a - k//2, j//s + b - k//2]   (zero padding)

The reassembly is ``F.unfold`` of X (the k x k neighbourhood of every source pixel, data
movement) and one batched matrix product per source pixel: (C x k^2) @ (k^2 x s^2) gives that
pixel's s x s outputs, so it counts as MACs: k^2 C per output pixel, as the paper counts it.
``up_group`` is 1 (mmdet's setting). Parameters of CARAFEPack: ``C*Cm + Cm + Cm*ke^2*k^2*s^2 + k^2 s^2``.

**DySample** (``kind=dysample``). Paper: Liu, Lu, Fu, Cao, "Learning to Upsample by Learning to
Sample", ICCV 2023. Canonical code: tiny-smart/dysample ``dysample.py`` (``DySample``, style
``lp``). With g groups (``groups``, 4) and scale s::

    O   = conv1x1(X) * 0.25 + P0            (static scope; dyscope: conv1x1(X) * 0.5 * sigmoid(conv1x1'(X)))
    P0  = the s x s sub-pixel offsets ((-s+1)/2 .. (s-1)/2) / s, per group
    grid = pixel_shuffle(2 (pixel centres + O) / (W, H) - 1, s)    2g s^2 offset channels -> g maps
    out  = grid_sample(X split into g groups, grid, bilinear, align_corners=False, border)

Parameters of DySample: ``C * 2 g s^2 + 2 g s^2`` (+ the same again with ``dyscope``). The
offset conv is initialised N(0, 0.001), the scope conv to 0, as the reference does.

Block parameters (both): ``Cf*C + C + Cc*C + C + 9*C*C + C`` plus the upsampler's.
Shape contract: exactly two inputs (B, Cf, H, W), (B, Cc, H/s, W/s), fine first; output
(B, C, H, W). ``align`` is not used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SpecError
from .base import FusionBlock


def init_normal(weight: torch.Tensor, std: float) -> None:
    """N(0, std) as the reference initialises it; nothing on meta (no values; torch's meta
    ``normal_`` imports torch._dynamo, 2 s)."""
    if weight.device.type != "meta":
        nn.init.normal_(weight, std=std)


class CARAFE(nn.Module):
    """mmcv ``CARAFEPack``: channel compressor, content encoder, kernel normaliser, reassembly."""

    def __init__(self, channels: int, scale: int, up_kernel: int, encoder_kernel: int, compressed: int) -> None:
        super().__init__()
        self.scale, self.up_kernel = scale, up_kernel
        self.channel_compressor = nn.Conv2d(channels, compressed, 1)
        self.content_encoder = nn.Conv2d(compressed, up_kernel * up_kernel * scale * scale, encoder_kernel,
                                         padding=(encoder_kernel - 1) // 2)
        init_normal(self.content_encoder.weight, 0.001)
        nn.init.zeros_(self.content_encoder.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, k = self.scale, self.up_kernel
        b, c, h, w = x.shape
        mask = F.pixel_shuffle(self.content_encoder(self.channel_compressor(x)), s)  # (B, k^2, sH, sW)
        mask = mask.view(b, 1, k * k, s * h, s * w).softmax(dim=2)
        # the s x s outputs of source pixel (y, x) share its neighbourhood: (B*H*W, k^2, s^2)
        mask = mask.view(b, k * k, h, s, w, s).permute(0, 2, 4, 1, 3, 5).reshape(b * h * w, k * k, s * s)
        cols = F.unfold(x, k, padding=k // 2).view(b, c, k * k, h * w).permute(0, 3, 1, 2).reshape(b * h * w, c, k * k)
        out = torch.bmm(cols, mask)  # (B*H*W, C, s^2)
        return out.view(b, h, w, c, s, s).permute(0, 3, 1, 4, 2, 5).reshape(b, c, s * h, s * w)


class DySample(nn.Module):
    """tiny-smart/dysample ``DySample``, style ``lp`` (linear then pixel shuffle)."""

    def __init__(self, channels: int, scale: int, groups: int, dyscope: bool) -> None:
        super().__init__()
        self.scale, self.groups = scale, groups
        self.offset = nn.Conv2d(channels, 2 * groups * scale * scale, 1)
        init_normal(self.offset.weight, 0.001)
        nn.init.zeros_(self.offset.bias)
        self.scope = nn.Conv2d(channels, 2 * groups * scale * scale, 1) if dyscope else None
        if dyscope:
            nn.init.zeros_(self.scope.weight)
            nn.init.zeros_(self.scope.bias)
        # the reference's torch.stack(torch.meshgrid([h, h])).transpose(1, 2).repeat(1, groups, 1): channel
        # (axis, group, i, j) holds h[j] for x (axis 0) and h[i] for y, h = ((-s+1)/2 .. (s-1)/2) / s
        h = [(i - (scale - 1) / 2) / scale for i in range(scale)]
        pos = [h[j] if axis == 0 else h[i] for axis in range(2) for _ in range(groups) for i in range(scale)
               for j in range(scale)]
        self.register_buffer("init_pos", torch.tensor(pos).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scope = self.scope
        if scope is None:
            offset = self.offset(x) * 0.25 + self.init_pos
        else:
            offset = self.offset(x) * scope(x).sigmoid() * 0.5 + self.init_pos
        b, _, h, w = offset.shape
        s, g = self.scale, self.groups
        offset = offset.view(b, 2, -1, h, w)
        centres = torch.stack(torch.meshgrid([torch.arange(w, device=x.device, dtype=x.dtype) + 0.5,
                                              torch.arange(h, device=x.device, dtype=x.dtype) + 0.5], indexing="ij"))
        centres = centres.transpose(1, 2).view(1, 2, 1, h, w)
        normalizer = torch.tensor([w, h], dtype=x.dtype, device=x.device).view(1, 2, 1, 1, 1)
        grid = 2 * (centres + offset) / normalizer - 1
        grid = F.pixel_shuffle(grid.view(b, -1, h, w), s).view(b, 2, g, s * h, s * w)
        grid = grid.permute(0, 2, 3, 4, 1).reshape(b * g, s * h, s * w, 2)
        out = F.grid_sample(x.reshape(b * g, -1, h, w), grid, mode="bilinear", align_corners=False,
                            padding_mode="border")
        return out.view(b, -1, s * h, s * w)


class _UpsampleMerge(FusionBlock):
    """One FPN level whose coarse path is upsampled by ``self.upsample``."""

    min_inputs = 2
    max_inputs = 2
    not_a_node = "it upsamples its coarse input itself, and a neck hands a merge its inputs at one size"

    def __init__(self, in_channels, out_channels, *, scale: int, **align) -> None:
        super().__init__(in_channels, out_channels, **align)
        if scale < 2:
            raise SpecError.bad("scale", scale, "allowed: integers >= 2")
        self.scale = scale
        self.lateral = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in self.in_channels)
        self.fpn_conv = nn.Conv2d(out_channels, out_channels, 3, padding=1)

    def reference_size(self, sizes):
        return tuple(sizes[0])

    def forward(self, x_fine, x_coarse):
        (hf, wf), (hc, wc) = x_fine.shape[-2:], x_coarse.shape[-2:]
        s = self.scale
        if (hf, wf) != (s * hc, s * wc):
            raise SpecError(f"inputs: '{self.kind}' upsamples the coarse map {s}x; the fine map must be {s * hc}x{s * wc} "
                            f"for a {hc}x{wc} coarse map, got {hf}x{wf}; pass levels fine then coarse with sizes in "
                            f"ratio {s} (or set scale)", field="inputs")
        lateral = self.lateral
        return self.fpn_conv(lateral[0](x_fine) + self.upsample(lateral[1](x_coarse)))


class CARAFEFusion(_UpsampleMerge):
    """FPN level with CARAFE upsampling (mmdet FPN_CARAFE): conv3(lat(X_fine) + CARAFE(lat(X_coarse)))."""

    kind = "carafe"

    def __init__(self, in_channels, out_channels, *, scale: int = 2, up_kernel: int = 5, encoder_kernel: int = 3,
                 compressed_channels: int = 64, **align) -> None:
        super().__init__(in_channels, out_channels, scale=scale, **align)
        for name, v in (("up_kernel", up_kernel), ("encoder_kernel", encoder_kernel)):
            if v < 1 or v % 2 == 0:
                raise SpecError.bad(name, v, "allowed: odd positive integers (1, 3, 5, ...)")
        if compressed_channels < 1:
            raise SpecError.bad("compressed_channels", compressed_channels, "allowed: positive integers")
        self.upsample = CARAFE(out_channels, scale, up_kernel, encoder_kernel, compressed_channels)


class DySampleFusion(_UpsampleMerge):
    """FPN level with DySample upsampling: conv3(lat(X_fine) + DySample(lat(X_coarse)))."""

    kind = "dysample"

    def __init__(self, in_channels, out_channels, *, scale: int = 2, groups: int = 4, dyscope: bool = False,
                 **align) -> None:
        super().__init__(in_channels, out_channels, scale=scale, **align)
        if groups < 1 or out_channels % groups:
            raise SpecError(f"groups: 'dysample' needs out channels divisible by groups, got {out_channels} and {groups}",
                            field="groups")
        self.upsample = DySample(out_channels, scale, groups, dyscope)
