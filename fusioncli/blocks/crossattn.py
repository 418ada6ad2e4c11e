"""Cross-attention fusion: the pixels of X1 query the pixels of X2 (multi-head attention, residual).

Reference design: Chun-Fu (Richard) Chen, Quanfu Fan, Rameswar Panda, "CrossViT:
Cross-Attention Multi-Scale Vision Transformer for Image Classification", ICCV 2021
(Sec. 3.3, Eqs. 6-8). Canonical code: IBM/CrossViT ``models/crossvit.py``
(``CrossAttention``, ``CrossAttentionBlock``).

Both maps are flattened to tokens, T1 (N1 = H1*W1 tokens) and T2 (N2 = H2*W2 tokens),
after a 1x1 projection to C for any input whose width is not C. With h heads of width
d = C/h:

    Q = LN(T1) Wq,  K = LN(T2) Wk,  V = LN(T2) Wv          (Linear C -> C + bias, ``qkv_bias``)
    A = softmax(Q K^T * d^-0.5)                             per head, N1 x N2
    out = T1 + (A V) Wo + bo                                reshaped back to (C, H1, W1)

Wq, Wk and Wv carry a bias by default (``qkv_bias=True``, as in every released CrossViT
model; the ``CrossAttention`` class's own default is False). LN is one LayerNorm (eps
1e-6, as in the released CrossViT models), shared by both
token sets as CrossViT's ``norm1`` normalises its joint sequence; ``norm=False`` drops
it. The residual adds the un-normalised T1, as ``CrossAttentionBlock`` does. The
scale is applied to Q before the product (the same result as scaling Q K^T,
N1*C instead of h*N1*N2 multiplications). Attention is written as explicit matmul and
softmax so that every device counts the same ops.

Generalisation of CrossViT: there a single CLS token queries [its own CLS; the other
branch's patch tokens]; here every token of X1 queries the tokens of X2 only. CrossViT
maps between branch widths with f(.) = Linear(GELU(LN(.))); here a plain 1x1
projection (with bias) is used, only where widths differ. The MLP of a full
transformer block is not part of the fusion.

Cost: the two products Q K^T and A V take N1*N2*C MACs each: the only block whose
cost grows with the square of the resolution.

Shape contract: exactly two inputs (B, C1, H1, W1), (B, C2, H2, W2), any widths and
sizes; output (B, C, H1, W1). ``align`` is not used: attention needs no alignment.
Parameters: [C1*C + C if C1 != C] + [C2*C + C if C2 != C] + 2C (LayerNorm, if
``norm``) + 3*C*C + 3C (the qkv biases; 0 with ``qkv_bias=False``) + C*C + C.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..errors import SpecError
from .base import FusionBlock, apply_each, projections


class CrossAttentionFusion(FusionBlock):
    """Multi-head cross-attention from X1 (queries) to X2 (keys and values), with residual."""

    kind = "crossattn"
    min_inputs = 2
    max_inputs = 2

    def __init__(self, in_channels, out_channels, *, num_heads: int = 8, qkv_bias: bool = True,
                 norm: bool = True, **align) -> None:
        super().__init__(in_channels, out_channels, **align)
        c = out_channels
        if num_heads < 1:
            raise SpecError.bad("num_heads", num_heads, "allowed: positive integers")
        if c % num_heads:
            raise SpecError(f"out_channels: 'crossattn' needs out channels divisible by num_heads, got {c} and {num_heads}; "
                            f"set num_heads to a divisor of {c} or change out_channels", field="out_channels")
        self.num_heads = num_heads
        self.scale = (c // num_heads) ** -0.5
        self.proj_in = projections(self.in_channels, c)
        self.norm = nn.LayerNorm(c, eps=1e-6) if norm else nn.Identity()
        self.wq = nn.Linear(c, c, bias=qkv_bias)
        self.wk = nn.Linear(c, c, bias=qkv_bias)
        self.wv = nn.Linear(c, c, bias=qkv_bias)
        self.proj = nn.Linear(c, c)

    def reference_size(self, sizes: Sequence[tuple[int, int]]) -> tuple[int, int]:
        return tuple(sizes[0])

    def forward(self, *xs):
        self.check_inputs(xs)
        x1, x2 = apply_each(self.proj_in, xs)
        b, c, h, w = x1.shape
        t1 = x1.flatten(2).transpose(1, 2)
        t2 = x2.flatten(2).transpose(1, 2)
        n1, n2 = t1.shape[1], t2.shape[1]
        heads = self.num_heads
        q1, kv = self.norm(t1), self.norm(t2)
        q = self.wq(q1).view(b, n1, heads, -1).transpose(1, 2) * self.scale
        k = self.wk(kv).view(b, n2, heads, -1).transpose(1, 2)
        v = self.wv(kv).view(b, n2, heads, -1).transpose(1, 2)
        attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        o = self.proj((attn @ v).transpose(1, 2).reshape(b, n1, c))
        return (t1 + o).transpose(1, 2).reshape(b, c, h, w)
