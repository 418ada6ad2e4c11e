"""Selective-kernel fusion: conv branches of several kernel sizes, softmax attention across branches.

Paper: Li, Wang, Hu, Yang, *Selective Kernel Networks*, CVPR 2019.
Canonical code: huggingface/pytorch-image-models ``timm/layers/selective_kernel.py``
(``SelectiveKernel``, ``SelectiveKernelAttn``).

How the inputs enter: the aligned inputs are concatenated, ``X = cat(X1..Xn)`` (S = sum(Ci)
channels), and X is the SK convolution's input; the branch convolutions map S to C channels,
so they do the fusing and no extra layer is needed. ``project=true`` first reduces X with a
1x1 conv + BN + ReLU (S -> C), so the branches see C channels. (Feeding each input to its own
branch would be MIRNet's SKFF, available as ``skff``.)

Computation, K = len(kernels), branch k: ``U_k = ReLU(BN(conv_kxk(X)))`` (S -> C, ``groups``,
no bias; with ``dilate`` a k x k kernel becomes 3x3 with dilation (k-1)/2, as in the paper's
SKNet and timm's ``keep_3x3``). ``U = sum_k U_k``; ``s = GAP(U)``; ``z = ReLU(BN(W s))``
(C -> d, no bias); logits ``A z`` (d -> K*C, no bias, one C-vector per branch);
``a = softmax over the K branches``; ``V = sum_k a_k * U_k``.
d = max(floor(C*rd_ratio), rd_min) (paper: r = 16, L = 32).

Shape contract: inputs (B, Ci, Hi, Wi) aligned to the reference (H, W); output (B, C, H, W).
Parameters, with Sb the width each branch sees (S, or C with ``project``; S/K or C/K in
variant=reference) and g = groups:
``sum_k (Sb/g * k_eff^2 * C + 2C) + C*d + 2d + d*K*C`` (+ S*C + 2C with ``project``),
k_eff = 3 with ``dilate`` (for k >= 3), else k.

Paper vs reference code
-----------------------
The paper feeds the whole input X to every branch and uses d = max(C/r, L).
timm's ``SelectiveKernel`` (``split_input=True``, its default) splits X's channels into K
equal groups and feeds group k to branch k only, cutting the branch parameters by K; and its
attention width is ``make_divisible(C*rd_ratio, 8)`` (nearest multiple of 8, at least 8),
with no floor L. ``variant="reference"`` gives both. timm also defaults to
``keep_3x3=True``; set ``dilate=true`` for that. (timm's ``skresnext50_32x4d``, "equivalent
to SKNet-50", uses ``split_input=False`` and ``rd_divisor=32``, which equals the paper's
d for its widths: use variant=paper, groups=32, dilate=true.)
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from ..errors import SpecError
from .attention import make_divisible
from .base import FusionBlock, run_chain, sum_maps


def _conv_bn_relu(cin: int, cout: int, kernel: int, dilation: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=dilation * (kernel - 1) // 2, dilation=dilation, groups=groups,
                  bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class SKFusion(FusionBlock):
    """Selective-kernel fusion of the concatenated inputs.

    Args:
        kernels: kernel size of each branch (paper: 3, 5); odd, at least two branches.
        dilate: replace each k x k kernel (k >= 3) by a 3x3 one with dilation (k-1)/2.
        groups: groups of every branch conv (SKNet-50: 32).
        rd_ratio: attention reduction 1/r (r = 16).
        rd_min: the paper's L, the smallest attention width d (variant=paper only).
        project: reduce the concatenation to ``out_channels`` with 1x1 conv + BN + ReLU first.
        variant: ``paper`` (every branch sees all channels) or ``reference`` (timm: the input
            channels are split across the branches; d = make_divisible(C*rd_ratio, 8)).
    """

    kind = "sk"
    min_inputs = 1

    def __init__(self, in_channels, out_channels, *, kernels: tuple[int, ...] = (3, 5), dilate: bool = False,
                 groups: int = 1, rd_ratio: float = 1 / 16, rd_min: int = 32, project: bool = False,
                 variant: Literal["paper", "reference"] = "paper", **align) -> None:
        super().__init__(in_channels, out_channels, **align)
        kernels = tuple(kernels)
        if len(kernels) < 2 or any(k <= 0 or k % 2 == 0 for k in kernels):
            raise SpecError.bad("kernels", ",".join(map(str, kernels)),
                                "allowed: two or more odd positive kernel sizes, e.g. 3,5")
        if groups <= 0:
            raise SpecError.bad("groups", groups, "allowed: positive integers")
        if not 0 < rd_ratio <= 1:
            raise SpecError.bad("rd_ratio", rd_ratio, "allowed: a float in (0, 1], e.g. 0.0625 (= 1/16)")
        if rd_min < 1:
            raise SpecError.bad("rd_min", rd_min, "allowed: positive integers (paper: L = 32)")
        c, k_n = out_channels, len(kernels)
        total = sum(self.in_channels)
        cin = c if project else total
        self.split = variant == "reference"
        if self.split and cin % k_n:
            lift = "" if project else f"; set project=True to split the {c} projected channels instead"
            raise SpecError(f"in_channels: 'sk' variant=reference splits the input channels across {k_n} branches, "
                            f"got {cin} channels ({'out' if project else 'sum of in_channels'}), "
                            f"not divisible by {k_n}{lift}", field="in_channels")
        cb = cin // k_n if self.split else cin
        if cb % groups or c % groups:
            lift = "; set project=True so the branches see out_channels channels" if (
                not project and not self.split and c % groups == 0) else ""
            raise SpecError(f"groups: {groups} must divide the branch input width {cb} and out_channels {c}{lift}",
                            field="groups")
        self.variant = variant
        self.kernels = kernels
        self.dilate = dilate
        self.project = _conv_bn_relu(total, c, 1) if project else nn.Identity()
        self.branch_in = cb
        self.paths = nn.ModuleList(
            _conv_bn_relu(cb, c, 3, (k - 1) // 2, groups) if dilate and k >= 3 else _conv_bn_relu(cb, c, k, 1, groups)
            for k in kernels
        )
        d = make_divisible(c * rd_ratio, 8) if self.split else max(int(c * rd_ratio + 1e-9), rd_min)
        self.rd_channels = d
        self.fc_reduce = nn.Conv2d(c, d, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(d)
        self.act = nn.ReLU(inplace=True)
        self.fc_select = nn.Conv2d(d, c * k_n, kernel_size=1, bias=False)

    def _branches(self, xs) -> list:
        x = torch.cat(self.aligned(xs), dim=1) if len(xs) > 1 else xs[0]
        x = run_chain(x, self.project)  # project=false: the identity is not called
        if self.split:
            return [p(xi) for p, xi in zip(self.paths, torch.split(x, self.branch_in, dim=1))]
        return [p(x) for p in self.paths]

    def forward(self, *xs):
        self.check_inputs(xs)
        us = self._branches(xs)
        z = self.act(self.bn(self.fc_reduce(sum_maps(us).mean((2, 3), keepdim=True))))
        logits = self.fc_select(z)
        a = torch.softmax(logits.view(logits.shape[0], len(us), -1, 1, 1), dim=1)
        v = a[:, 0] * us[0]
        for i in range(1, len(us)):
            v = v + a[:, i] * us[i]
        return v
