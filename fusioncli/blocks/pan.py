"""PANet bottom-up path augmentation: ``N_{i+1} = conv3x3(P_{i+1} + conv3x3_stride2(N_i))``.

Paper: Liu, Qi, Qin, Shi, Jia, Path Aggregation Network for Instance Segmentation,
CVPR 2018. Canonical code: open-mmlab/mmdetection ``mmdet/models/necks/pafpn.py``
(``PAFPN``).

Input order: fine to coarse, as mmdetection's pyramid (and :mod:`.fpn`): the first input
is the finest map ``N_1`` (the paper's ``N2 = P2``), the others are the FPN outputs
``P_2 .. P_n`` of the coarser levels, each no larger than the one before. The chain runs
bottom-up and returns the coarsest ``N_n``:
``N_{i+1} = conv3(P_{i+1} + down_i(N_i))``, ``down_i`` a 3x3 stride-2 conv. If a
downsampled map misses the size of ``P_{i+1}`` (levels not a factor 2 apart), it is
interpolated to it with ``resize_mode``.

Paper vs reference code:
``variant=paper``: the chain carries the new maps ``N_i`` (the paper: "each feature map
N_i first goes through a 3x3 convolutional layer with stride 2"), and every conv is
followed by a ReLU ("all convolutional layers are followed by a ReLU"); n-1 stride-2 convs
and n-1 3x3 convs.
``variant=reference``: mmdetection carries the sums before the 3x3 conv,
``M_{i+1} = P_{i+1} + down_i(M_i)``, ``M_1 = N_1``, applies the 3x3 ``pafpn_conv`` only to
produce each output (here the coarsest, so one 3x3 conv) and has no activation
(``act_cfg=None``). The two agree for two inputs apart from the ReLUs.

Widths: the finest input may have any width (its stride-2 conv maps it to C); the lateral
inputs ``P`` must have C channels (as in the paper, 256), or ``project=true`` adds a 1x1
conv (with bias) to each that differs. ``norm`` adds mmdetection's ``norm_cfg`` (bn/gn)
after every conv, which then has no bias.

Shape contract: inputs (B, Ci, Hi, Wi) fine to coarse; output (B, C, Hn, Wn), the last
(coarsest) input's size (``align`` is not used).
Parameters (no norm; C0 = width of the first input, n inputs):
9*C0*C + C + (n-2)*(9*C*C + C) for the stride-2 convs, plus (n-1)*(9*C*C + C) (paper) or
9*C*C + C (reference) for the 3x3 convs, plus Ci*C + C per projected input.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

from ..errors import SpecError
from .base import FusionBlock, NormName, children, projections
from .fpn import check_fine_to_coarse, conv_module


class PANFusion(FusionBlock):
    """PANet bottom-up merge of n >= 2 levels ordered fine to coarse; returns the coarsest output.

    Args:
        variant: ``paper`` (chain through N, ReLU after every conv) or ``reference``
            (mmdetection: chain through the sums, one output conv, no activation).
        norm: normalisation after every conv (mmdetection ``norm_cfg``), ``none`` by default.
        project: add 1x1 projections to inputs 2..n whose width differs from C.
    """

    kind = "pan"
    min_inputs = 2
    default_resize_mode = "nearest"

    def __init__(self, in_channels, out_channels, *, variant: Literal["paper", "reference"] = "paper",
                 norm: NormName = "none", project: bool = False, **align) -> None:
        super().__init__(in_channels, out_channels, **align)
        c = out_channels
        lateral = self.in_channels[1:]
        if not project and any(ci != c for ci in lateral):
            which = "input 2 (the lateral P map)" if len(lateral) == 1 else \
                f"inputs 2..{len(self.in_channels)} (the lateral P maps)"
            raise SpecError(f"in_channels: 'pan' needs {which} to have out_channels {c} channels, "
                            f"got {', '.join(map(str, lateral))}; "
                            "set project=True to add 1x1 projections", field="in_channels")
        self.variant = variant
        act = (lambda: nn.ReLU()) if variant == "paper" else (lambda: None)
        self.proj = projections((c, *lateral), c)
        self.down = nn.ModuleList(conv_module(self.in_channels[0] if i == 0 else c, c, 3, norm, 2, act())
                                  for i in range(len(lateral)))
        n_convs = len(lateral) if variant == "paper" else 1
        self.convs = nn.ModuleList(conv_module(c, c, 3, norm, 1, act()) for _ in range(n_convs))

    def reference_size(self, sizes):
        return tuple(sizes[-1])

    def forward(self, *xs):
        self.check_inputs(xs)
        check_fine_to_coarse(self.kind, xs)
        paper = self.variant == "paper"
        # the live modules as tuples (indexing a ModuleList costs ~1 us); an identity projection
        # is not called
        proj, down, convs, resize = (tuple(children(m)) for m in (self.proj, self.down, self.convs, self.resize))
        n = xs[0] if type(proj[0]) is nn.Identity else proj[0](xs[0])  # an identity (input 1 is out wide)
        for i in range(1, len(xs)):
            p = xs[i] if type(proj[i]) is nn.Identity else proj[i](xs[i])
            d = down[i - 1](n)
            size = p.shape[-2:]
            n = p + (d if d.shape[-2:] == size else resize[i](d, size))
            if paper:
                n = convs[i - 1](n)
        return n if paper else convs[0](n)
