"""Multi-scale deformable attention over a feature pyramid (the Deformable DETR encoder's attention).

Paper: Zhu, Su, Lu, Li, Wang, Dai, "Deformable DETR: Deformable Transformers for End-to-End
Object Detection", ICLR 2021 (Eq. 3); the same layer is Mask2Former's pixel decoder
(``MSDeformAttnPixelDecoder``). Canonical code: fundamentalvision/Deformable-DETR
``models/ops/modules/ms_deform_attn.py`` (``MSDeformAttn``) and
``models/ops/functions/ms_deform_attn_func.py`` (``ms_deform_attn_core_pytorch``, the pure-PyTorch
sampling core transcribed here), ``models/deformable_transformer.py``
(``DeformableTransformerEncoder.get_reference_points``, ``DeformableTransformerEncoderLayer``).

The L input levels (after a 1x1 projection with bias to C for any level whose width is not C)
are flattened and concatenated into the tokens X (N = sum_l H_l W_l). Every token is a query
whose reference point is its pixel centre, normalised to [0, 1] (the encoder's reference
points with valid ratios 1). With M heads of width d = C/M and P points per head and level::

    V          = X Wv + bv                                    value_proj, split into M heads
    dp         = X Wo + bo        (N, M, L, P, 2)             sampling_offsets
    a          = softmax over L*P of (X Wa + ba)               attention_weights, per head
    loc        = ref + dp / (W_l, H_l)                         normalised sampling locations
    S_l        = grid_sample(V_l, 2 loc - 1, bilinear, zeros, align_corners=False)
    MSDA(X)    = (sum_{l,p} a * S_l) Wout + bout               output_proj
    out        = LayerNorm(X + MSDA(X))                        the encoder layer's norm1 (``norm``)

The weighted sum is written as the reference core writes it (a product and a sum over L*P,
counted as FLOPs, not MACs). Initialisation as ``_reset_parameters``: offsets' weight 0 and bias
the per-head directions scaled by the point index, attention weights 0, value and output
projections Xavier-uniform with zero bias. Difference from the encoder layer: no positional or
level embedding is added to the queries (add them upstream), no dropout and no FFN.

Shape contract: L >= 1 inputs (B, Ci, Hi, Wi); output the encoder's memory, tokens
(B, N, C) with N = sum_i Hi*Wi, level after level, row-major. ``align`` is not used.
Parameters: ``[Ci*C + C per projected level] + 2 (C*C + C) + C*2MLP + 2MLP + C*MLP + MLP + 2C``
(the last 2C with ``norm``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SpecError
from .base import FusionBlock, apply_each, projections


def ms_deform_attn_core(value: torch.Tensor, shapes: list[tuple[int, int]], sampling_locations: torch.Tensor,
                        attention_weights: torch.Tensor) -> torch.Tensor:
    """``ms_deform_attn_core_pytorch``: value (B, S, M, D), locations (B, Lq, M, L, P, 2) in [0, 1],
    weights (B, Lq, M, L, P) -> (B, Lq, M*D)."""
    n, _, m, d = value.shape
    _, lq, _, nl, p, _ = sampling_locations.shape
    value_list = value.split([h * w for h, w in shapes], dim=1)
    grids = 2 * sampling_locations - 1
    sampled = []
    for lid, (h, w) in enumerate(shapes):
        value_l = value_list[lid].flatten(2).transpose(1, 2).reshape(n * m, d, h, w)
        grid_l = grids[:, :, :, lid].transpose(1, 2).flatten(0, 1)
        sampled.append(F.grid_sample(value_l, grid_l, mode="bilinear", padding_mode="zeros", align_corners=False))
    weights = attention_weights.transpose(1, 2).reshape(n * m, 1, lq, nl * p)
    out = (torch.stack(sampled, dim=-2).flatten(-2) * weights).sum(-1).view(n, m * d, lq)
    return out.transpose(1, 2).contiguous()


class MSDeformAttnFusion(FusionBlock):
    """Deformable DETR encoder attention over the pyramid: every pixel of every level attends to
    P sampled points per head and level around its own position."""

    kind = "msdeform"
    min_inputs = 1
    not_a_node = "its output is tokens (N, C), not a map"

    def __init__(self, in_channels, out_channels, *, num_heads: int = 8, num_points: int = 4, norm: bool = True,
                 **align) -> None:
        super().__init__(in_channels, out_channels, **align)
        c, levels = out_channels, len(self.in_channels)
        for name, v in (("num_heads", num_heads), ("num_points", num_points)):
            if v < 1:
                raise SpecError.bad(name, v, "allowed: positive integers")
        if c % num_heads:
            raise SpecError(f"out_channels: 'msdeform' needs out channels divisible by num_heads, got {c} and "
                            f"{num_heads}; set num_heads to a divisor of {c} or change out_channels", field="out_channels")
        self.num_heads, self.num_points = num_heads, num_points
        self.proj_in = projections(self.in_channels, c)
        self.sampling_offsets = nn.Linear(c, num_heads * levels * num_points * 2)
        self.attention_weights = nn.Linear(c, num_heads * levels * num_points)
        self.value_proj = nn.Linear(c, c)
        self.output_proj = nn.Linear(c, c)
        self.norm = nn.LayerNorm(c) if norm else nn.Identity()
        self._reset_parameters(levels)

    def _reset_parameters(self, levels: int) -> None:
        m, p = self.num_heads, self.num_points
        nn.init.zeros_(self.sampling_offsets.weight)
        # head k points along angle 2 pi k / M, scaled so the larger coordinate is 1; point i at (i + 1) times that
        dirs = [(math.cos(2 * math.pi * k / m), math.sin(2 * math.pi * k / m)) for k in range(m)]
        dirs = [(cx / max(abs(cx), abs(cy)), cy / max(abs(cx), abs(cy))) for cx, cy in dirs]
        bias = [v * (i + 1) for d in dirs for _ in range(levels) for i in range(p) for v in d]
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(torch.tensor(bias))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for lin in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def output_shape(self, shapes):
        return (sum(s[-2] * s[-1] for s in shapes), self.out_channels)

    def forward(self, *xs):
        self.check_inputs(xs)
        xs = apply_each(self.proj_in, xs)
        shapes = [tuple(x.shape[-2:]) for x in xs]
        src = torch.cat([x.flatten(2).transpose(1, 2) for x in xs], 1)  # (B, N, C)
        b, n, c = src.shape
        m, p, nl = self.num_heads, self.num_points, len(shapes)
        ref = reference_points(shapes, src)  # (N, 2), (x, y) in [0, 1]
        value = self.value_proj(src).view(b, n, m, c // m)
        offsets = self.sampling_offsets(src).view(b, n, m, nl, p, 2)
        weights = self.attention_weights(src).view(b, n, m, nl * p).softmax(-1).view(b, n, m, nl, p)
        normalizer = torch.tensor([[w, h] for h, w in shapes], dtype=src.dtype, device=src.device)
        locations = ref[None, :, None, None, None, :] + offsets / normalizer[None, None, None, :, None, :]
        out = src + self.output_proj(ms_deform_attn_core(value, shapes, locations, weights))
        norm = self.norm
        return out if type(norm) is nn.Identity else norm(out)


def reference_points(shapes: list[tuple[int, int]], like: torch.Tensor) -> torch.Tensor:
    """Deformable DETR's encoder reference points (valid ratios 1): the pixel centres of every
    level, ((x + 0.5) / W, (y + 0.5) / H), level after level, row-major; (N, 2)."""
    points = []
    for h, w in shapes:
        # linspace(0.5, n - 0.5, n) as the reference writes it, computed as arange + 0.5 (the same values):
        # TorchScript's ONNX export of linspace divides by n - 1 (NaN on a 1-pixel level) in double
        ys, xs = torch.meshgrid(torch.arange(h, dtype=like.dtype, device=like.device) + 0.5,
                                torch.arange(w, dtype=like.dtype, device=like.device) + 0.5, indexing="ij")
        points.append(torch.stack((xs.reshape(-1) / w, ys.reshape(-1) / h), -1))
    return torch.cat(points, 0)
