"""Multi-scale fusion: parallel conv branches with different kernel sizes and strides
over the aligned, concatenated inputs, merged and refined (Inception-style;
Szegedy et al., Going Deeper with Convolutions, CVPR 2015).

``X = cat(X1..Xn)`` (sum(Ci) channels, size H x W). Branch k: conv k_k x k_k, stride
s_k (``strides``: one for all, 1 by default, or one per kernel), padding k_k//2, to
``branch_channels`` (default C), then ``act``; branches whose stride shrank the map
are resized back to H x W (``resize_mode``). Merge: ``concat`` (K*Cb channels) or
``sum`` (Cb channels). Refine: ``refine_layers`` convs of kernel
``refine_kernel`` to C, each followed by ``act``.

Shape contract: output (B, C, H, W).
Parameters: sum_k (sum(Ci)*k_k^2*Cb + Cb) + refine convs (Cm*r^2*C + C, then
C*r^2*C + C for each further layer), Cm = K*Cb (concat) or Cb (sum).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from ..errors import SpecError
from .base import ActName, Chain, FusionBlock, NormName, Resize, create_act, create_norm, sum_maps


class MultiScaleFusion(FusionBlock):
    kind = "multiscale"
    min_inputs = 1

    def __init__(self, in_channels, out_channels, *, kernels: tuple[int, ...] = (1, 3, 5),
                 strides: tuple[int, ...] = (1,), merge: Literal["concat", "sum"] = "concat",
                 branch_channels: int = 0, refine_kernel: int = 1, refine_layers: int = 1,
                 act: ActName = "relu", norm: NormName = "none", **align) -> None:
        super().__init__(in_channels, out_channels, **align)
        if len(strides) == 1:
            strides = strides * len(kernels)
        if len(strides) != len(kernels):
            raise SpecError(f"strides: {len(strides)} values ({','.join(map(str, strides))}) for {len(kernels)} "
                            f"kernel{'s' * (len(kernels) != 1)} ({','.join(map(str, kernels))}); allowed: one "
                            "stride, or one per kernel",
                            field="strides")
        for name, values in (("kernels", kernels), ("strides", strides)):
            if any(v <= 0 for v in values):
                raise SpecError.bad(name, ",".join(map(str, values)), "allowed: positive integers")
        if refine_kernel <= 0 or refine_kernel % 2 == 0:
            raise SpecError.bad("refine_kernel", refine_kernel, "allowed: odd positive integers")
        if refine_layers < 1:
            raise SpecError.bad("refine_layers", refine_layers, "allowed: integers >= 1")
        if branch_channels < 0:
            raise SpecError.bad("branch_channels", branch_channels, "allowed: 0 (= out) or a positive integer")
        cb = branch_channels or out_channels
        cin = sum(self.in_channels)
        self.merge = merge
        self.branches = nn.ModuleList(
            Chain(nn.Conv2d(cin, cb, k, stride=s, padding=k // 2, bias=norm == "none"),
                  create_norm(norm, cb), create_act(act))
            for k, s in zip(kernels, strides)
        )
        self.branch_resize = nn.ModuleList(Resize(self.resize_mode, self.align_corners) for _ in kernels)
        cm = cb * len(kernels) if merge == "concat" else cb
        layers: list[nn.Module] = []
        for i in range(refine_layers):
            layers += [nn.Conv2d(cm if i == 0 else out_channels, out_channels, refine_kernel,
                                 padding=refine_kernel // 2, bias=norm == "none"),
                       create_norm(norm, out_channels), create_act(act)]
        self.refine = Chain(*layers)

    def _merged_branches(self, xs) -> torch.Tensor:
        x = torch.cat(self.aligned(xs), dim=1) if len(xs) > 1 else xs[0]
        size = x.shape[-2:]
        ys = []
        for branch, resize in zip(self.branches, self.branch_resize):
            y = branch(x)
            ys.append(y if y.shape[-2:] == size else resize(y, size))
        return torch.cat(ys, dim=1) if self.merge == "concat" else sum_maps(ys)

    def forward(self, *xs):
        self.check_inputs(xs)
        return self.refine(self._merged_branches(xs))
