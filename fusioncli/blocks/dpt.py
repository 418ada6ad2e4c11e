"""DPT / MiDaS feature fusion block (RefineNet-style residual fusion with upsampling).

Paper: Ranftl, Bochkovskiy, Koltun, "Vision Transformers for Dense Prediction", ICCV 2021
(the decoder of MiDaS, Ranftl et al., TPAMI 2020, itself after RefineNet, Lin et al., CVPR 2017).
Canonical code: isl-org/MiDaS ``midas/blocks.py`` (``FeatureFusionBlock_custom``,
``ResidualConvUnit_custom``); the same block in isl-org/DPT ``dpt/blocks.py`` and in
Depth-Anything ``depth_anything/blocks.py`` (``FeatureFusionBlock``).

Formula, with F = ``out_channels`` (the reference's ``features``)::

    RCU(x)  = x + BN(conv3x3(act(BN(conv3x3(act(x))))))     (BN only with bn=true)
    y       = X1 + RCU1(X2)        two inputs
    y       = X1                   one input (RCU1 is not built, unless variant=reference)
    out     = conv1x1(resize(RCU2(y)))

``resize`` is ``F.interpolate`` with ``scale_factor`` (default 2, as the reference) or,
when ``size`` is set, to that fixed (H, W) (Depth-Anything passes the next level's
size); mode ``resize_mode`` (bilinear) and ``align_corners`` (default true here, as the
reference). The output conv maps F to F, or to F // 2 with ``expand=true``.

Inputs must be F channels wide, as in the reference; ``project=true`` adds a 1x1
projection (with bias) to F for each input whose width differs. Inputs of different
sizes are first aligned to the ``align`` reference (default ``largest``: the coarser
path is upsampled to the lateral map's size), with the same resize settings.

Shape contract: inputs (B, Ci, Hi, Wi), aligned to (H, W); output
(B, F or F // 2, floor(H * scale_factor), floor(W * scale_factor)), or (B, ., *size).

Parameters, with Fo = F (or F // 2 with expand) and n RCUs (the number of inputs, 1 or 2;
always 2 with ``variant=reference``): ``n * (18 F^2 + 2 F) + F * Fo + Fo``, plus ``4 F`` per
RCU with bn=true (BN weight and bias; running statistics are buffers), plus ``Ci * F + F``
per projected input.

Reference code differences: ``FeatureFusionBlock_custom`` always builds ``resConfUnit1``
and calls it only with two inputs, so with one input (``refinenet4``) its parameters are
in the module's ``sum(p.numel())`` but never run. ``variant=reference`` builds it the same
way (its state dict loads; the report lists it under parameters no op used); the default,
``paper``, builds only what runs. With two inputs the variants are the same. With bn=true, MiDaS and
Depth-Anything keep the conv biases before BN (counted above); isl-org/DPT drops them
(``bias=not bn``, 4 F fewer parameters per RCU).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch.nn.functional as F
from torch import nn

from ..errors import SpecError
from .base import ActName, FusionBlock, create_act, projections, run_chain


class ResidualConvUnit(nn.Module):
    """``x + BN(conv3x3(act(BN(conv3x3(act(x))))))`` at F channels (MiDaS ``ResidualConvUnit_custom``)."""

    def __init__(self, features: int, act: str, bn: bool) -> None:
        super().__init__()
        self.act = create_act(act)
        self.conv1 = nn.Conv2d(features, features, 3, padding=1, bias=True)
        self.bn1 = nn.BatchNorm2d(features) if bn else nn.Identity()
        self.conv2 = nn.Conv2d(features, features, 3, padding=1, bias=True)
        self.bn2 = nn.BatchNorm2d(features) if bn else nn.Identity()

    def forward(self, x):
        # the identities of bn=False are not called (the reference skips them with ``if self.bn``)
        return run_chain(x, self.act, self.conv1, self.bn1, self.act, self.conv2, self.bn2) + x


class Upsample(nn.Module):
    """``F.interpolate`` by a scale factor or to a fixed size, as the reference calls it."""

    def __init__(self, scale_factor: float, size: tuple[int, int] | None, mode: str, align_corners: bool) -> None:
        super().__init__()
        self.scale_factor = scale_factor
        self.size = size
        self.mode = mode
        self.align_corners = align_corners if mode in ("bilinear", "bicubic") else None

    def forward(self, x, size=None):
        size = size if size is not None else self.size
        if size is not None:
            return F.interpolate(x, size=tuple(size), mode=self.mode, align_corners=self.align_corners)
        return F.interpolate(x, scale_factor=self.scale_factor, mode=self.mode, align_corners=self.align_corners)

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        if self.size is not None:
            return self.size
        return math.floor(h * self.scale_factor), math.floor(w * self.scale_factor)

    def extra_repr(self) -> str:
        how = f"size={self.size}" if self.size is not None else f"scale_factor={self.scale_factor}"
        return f"{how}, mode={self.mode!r}, align_corners={self.align_corners}"


class DPTFusion(FusionBlock):
    """DPT/MiDaS fusion block; see the module docstring for the formula and shape contract.

    Args:
        in_channels: widths of X1 (the path) and optionally X2 (the lateral map); each must
            equal ``out_channels`` unless ``project`` is set.
        out_channels: F, the reference's ``features``.
        bn: BatchNorm after each 3x3 conv of the residual units.
        expand: the 1x1 output conv halves the width (F -> F // 2).
        act: activation inside the residual units (reference: ReLU).
        scale_factor: output upsampling factor when ``size`` is empty.
        size: fixed output (H, W) (one value: square); empty uses ``scale_factor``.
        project: 1x1 projections to F for inputs of other widths.
        variant: ``paper`` builds only what runs; ``reference`` also builds RCU1 with one
            input, unused, as MiDaS's module does.
    """

    kind = "dpt"
    min_inputs = 1
    max_inputs = 2
    default_align = "largest"
    default_align_corners = True

    def __init__(self, in_channels, out_channels, *, bn: bool = False, expand: bool = False, act: ActName = "relu",
                 scale_factor: float = 2.0, size: tuple[int, ...] = (), project: bool = False,
                 variant: Literal["paper", "reference"] = "paper", **align) -> None:
        super().__init__(in_channels, out_channels, **align)
        feats = out_channels
        if not project and any(c != feats for c in self.in_channels):
            widths = ", ".join(map(str, self.in_channels))
            raise SpecError(f"in_channels: 'dpt' needs every input width equal to out_channels {feats} (the block's features), "
                            f"got {widths}; set project=True to add 1x1 projections", field="in_channels")
        if not scale_factor > 0:
            raise SpecError.bad("scale_factor", scale_factor, "allowed: a number > 0")
        if len(size) > 2 or any(s <= 0 for s in size):
            raise SpecError.bad("size", ",".join(map(str, size)),
                                "allowed: empty (use scale_factor), H, or H,W with positive integers")
        if expand and feats < 2:
            raise SpecError(f"expand: 'dpt' with expand=True halves out_channels {feats} to {feats // 2} channels; "
                            "allowed: out_channels >= 2", field="expand")
        self.out_features = feats // 2 if expand else feats
        self.proj = projections(self.in_channels, feats) if project else None
        self.rcu1 = ResidualConvUnit(feats, act, bn) if len(self.in_channels) == 2 or variant == "reference" else None
        self.rcu2 = ResidualConvUnit(feats, act, bn)
        fixed = (size[0], size[-1]) if size else None
        self.upsample = Upsample(scale_factor, fixed, self.resize_mode, self.align_corners)
        self.out_conv = nn.Conv2d(feats, self.out_features, kernel_size=1, bias=True)

    def forward(self, *xs, size=None):
        """``size``: upsample to this (H, W) for this call (Depth Anything's ``forward(*xs, size=...)``)."""
        self.check_inputs(xs)
        xs = self.aligned(xs)
        if self.proj is not None:
            xs = [p(x) for p, x in zip(self.proj, xs)]
        # one expression: each intermediate map is freed as soon as the next layer has used it
        return self.out_conv(self.upsample(self.rcu2(xs[0] + self.rcu1(xs[1]) if len(xs) == 2 else xs[0]), size))

    def output_shape(self, shapes: Sequence[Sequence[int]]) -> tuple[int, ...]:
        h, w = self.reference_size([tuple(s[-2:]) for s in shapes])
        return (self.out_features, *self.upsample.output_size(h, w))
