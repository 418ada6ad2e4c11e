"""CSP fusions of the real-time detectors: concatenate, then YOLOv8's C2f (``c2f``) or RT-DETR's
CSPRepLayer (``repc3``, the fusion block of its CCFM).

Papers and code: Ultralytics YOLOv8 (Jocher, Chaurasia, Qiu, 2023), ultralytics/ultralytics
``ultralytics/nn/modules/block.py`` (``C2f``, ``Bottleneck``) and ``ultralytics/nn/modules/conv.py``
(``Conv``: conv without bias, BatchNorm, SiLU); neck wiring in ``ultralytics/cfg/models/v8/yolov8.yaml``
(``nn.Upsample(2, nearest)``, ``Concat``, ``C2f(shortcut=False)``). Zhao et al., *DETRs Beat YOLOs on
Real-time Object Detection* (RT-DETR), CVPR 2024, lyuwenyu/RT-DETR
``rtdetr_pytorch/src/zoo/rtdetr/hybrid_encoder.py`` (``CSPRepLayer``, ``RepVggBlock``,
``ConvNormLayer``; CCFM: ``fpn_blocks``/``pan_blocks`` on ``concat([upsampled, lateral])``).

Both first align the inputs (default: to the largest, nearest resize, as the necks' x2 nearest
upsample) and concatenate them: X = cat(X1..Xn), S = sum(Ci) channels. CBS(k) is conv kxk (no bias),
BatchNorm, SiLU; CB(k) the same without the activation.

* ``c2f``: c = int(C*expansion); [y0, y1] = split(CBS1(X), 2) (S -> 2c); y_{i+1} = Bottleneck_i(y_i)
  for i = 1..n, Bottleneck(y) = CBS3(CBS3(y)) (+ y with ``shortcut``); out = CBS1(cat(y0..y_{n+1}))
  ((2+n)c -> C).
* ``repc3``: h = int(C*expansion); a = CBS1(X), b = CBS1'(X) (S -> h each);
  RepVgg(y) = SiLU(CB3(y) + CB1(y)); out = CBS1''(RepVgg^n(a) + b) (h -> C; absent when h = C).

Shape contract: inputs (B, Ci, Hi, Wi) aligned to the reference (H, W); output (B, C, H, W).

Parameters (a conv k x k from a to b with its BN: a*b*k^2 + 2b):

* c2f:   S*2c + 4c  +  n*2*(9c^2 + 2c)  +  (2+n)*c*C + 2C
* repc3: 2*(S*h + 2h)  +  n*(9h^2 + 2h + h^2 + 2h)  +  (h*C + 2C when h != C)

Code vs paper: C2f has no paper; the Ultralytics code is the definition. RT-DETR's paper draws
the fusion block as the code has it; Ultralytics' ``RepC3`` (its RT-DETR port) is the same computation
at ``expansion = 1.0`` (its cv1/cv2 output C, not h, so other expansions fail there), with
``RepConv``'s optional identity-BN branch off, as the port builds it.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import SpecError
from .base import FusionBlock, run_chain


class ConvNormAct(nn.Module):
    """conv k x k (stride 1, same padding, no bias) -> BatchNorm -> SiLU (or no activation):
    Ultralytics' ``Conv``, RT-DETR's ``ConvNormLayer``."""

    def __init__(self, cin: int, cout: int, k: int = 1, act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=k // 2, bias=False)
        self.norm = nn.BatchNorm2d(cout)
        self.act = nn.SiLU() if act else nn.Identity()

    def forward(self, x):
        return run_chain(x, self.conv, self.norm, self.act)


class Bottleneck(nn.Module):
    """Ultralytics ``Bottleneck(c, c, shortcut, k=(3, 3), e=1.0)``: CBS3(CBS3(y)) (+ y)."""

    def __init__(self, c: int, shortcut: bool) -> None:
        super().__init__()
        self.cv1 = ConvNormAct(c, c, 3)
        self.cv2 = ConvNormAct(c, c, 3)
        self.add = shortcut

    def forward(self, x):
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class RepVggBlock(nn.Module):
    """RT-DETR ``RepVggBlock`` (training form): SiLU(CB3(y) + CB1(y))."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(c, c, 3, act=False)
        self.conv2 = ConvNormAct(c, c, 1, act=False)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.conv1(x) + self.conv2(x))


def _hidden(out_channels: int, expansion: float, kind: str) -> int:
    h = int(out_channels * expansion)
    if not 0 < expansion or h < 1:
        raise SpecError.bad("expansion", expansion, f"allowed: a positive float with int(C*expansion) >= 1 ({kind})")
    return h


def _check_n(n: int, field: str) -> None:
    if n < 1:
        raise SpecError.bad(field, n, "allowed: a positive integer")


class _CSPFusion(FusionBlock):
    min_inputs = 1
    default_align = "largest"
    default_resize_mode = "nearest"

    def _cat(self, xs):
        self.check_inputs(xs)
        xs = self.aligned(xs)
        return torch.cat(xs, dim=1) if len(xs) > 1 else xs[0]


class C2fFusion(_CSPFusion):
    """Concat, then YOLOv8's C2f (``c2f``).

    Args:
        n: number of bottlenecks (YOLOv8 neck: 3 x depth multiple, 1 for n/s, 2 for m, 3 for l/x).
        shortcut: residual in each bottleneck (False in the neck, True in the backbone).
        expansion: hidden width c = int(C*expansion) (0.5).
    """

    kind = "c2f"

    def __init__(self, in_channels, out_channels, *, n: int = 1, shortcut: bool = False, expansion: float = 0.5,
                 **align) -> None:
        super().__init__(in_channels, out_channels, **align)
        _check_n(n, "n")
        c = self.hidden = _hidden(out_channels, expansion, self.kind)
        self.cv1 = ConvNormAct(sum(self.in_channels), 2 * c, 1)
        self.m = nn.ModuleList(Bottleneck(c, shortcut) for _ in range(n))
        self.cv2 = ConvNormAct((2 + n) * c, out_channels, 1)

    def forward(self, *xs):
        y = list(self.cv1(self._cat(xs)).chunk(2, 1))
        for m in self.m._modules.values():
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class RepC3Fusion(_CSPFusion):
    """Concat, then RT-DETR's CSPRepLayer (``repc3``, CCFM's fusion block).

    Args:
        num_blocks: RepVGG blocks (3 x depth_mult; 3 in RT-DETR-R18/R34/R50/R101).
        expansion: hidden width h = int(C*expansion) (1.0 for R50/R101, 0.5 for R18/R34).
    """

    kind = "repc3"

    def __init__(self, in_channels, out_channels, *, num_blocks: int = 3, expansion: float = 1.0, **align) -> None:
        super().__init__(in_channels, out_channels, **align)
        _check_n(num_blocks, "num_blocks")
        h = self.hidden = _hidden(out_channels, expansion, self.kind)
        s = sum(self.in_channels)
        self.conv1 = ConvNormAct(s, h, 1)
        self.conv2 = ConvNormAct(s, h, 1)
        self.bottlenecks = nn.Sequential(*(RepVggBlock(h) for _ in range(num_blocks)))
        self.conv3 = ConvNormAct(h, out_channels, 1) if h != out_channels else nn.Identity()

    def forward(self, *xs):
        x = self._cat(xs)
        return run_chain(self.bottlenecks(self.conv1(x)) + self.conv2(x), self.conv3)
