"""Multimodal fusion over tokens: Flamingo's gated cross-attention block and one BLIP-2 Q-Former layer.

Token inputs are ``NxC`` (N tokens of width C, as user blocks take them): inputs ``64x1024`` and
``256x1024`` are 64 text tokens and 256 visual tokens, each 1024 wide. ``forward`` takes (B, N, C).

**Gated cross-attention** (``kind=gatedxattn``). Paper: Alayrac et al., "Flamingo: a Visual Language
Model for Few-Shot Learning", NeurIPS 2022 (Sec. 2.2, Fig. 4). Canonical code:
mlfoundations/open_flamingo ``open_flamingo/src/helpers.py`` (``GatedCrossAttentionBlock``,
``MaskedCrossAttention``, ``FeedForward``; taken from lucidrains/flamingo-pytorch). Text tokens X
(N1 x D) attend to visual tokens Y (N2 x Dv); h heads of width dh, inner width E = h * dh::

    Q = LN(X) Wq,  K, V = Y Wkv           (Linear D -> E, Dv -> 2E; no biases)
    S = (Q dh^-0.5) K^T;  A = softmax(S - max(S))            per head, N1 x N2 (max detached)
    X = X + tanh(alpha) * (A V) Wout                          (E -> D, no bias)
    X = X + tanh(beta) * W2 GELU(W1 LN(X))                    (D -> mult D -> D, no biases)

alpha and beta are scalars initialised at 0 (the block starts as the identity, the paper's point).
Without ``media_locations`` every text token attends to every visual token (the code's
``only_attend_immediate_media`` masking needs the interleaving, which a block does not have).
Parameters: ``2D + D E + 2 Dv E + E D + 1 + 2D + 2 mult D^2 + 1``; output (B, N1, D): ``out``
must be the text width D (the residual).

**Q-Former layer** (``kind=qformer``). Paper: Li, Li, Savarese, Hoi, "BLIP-2: Bootstrapping
Language-Image Pre-training with Frozen Image Encoders and Large Language Models", ICML 2023.
Canonical code: salesforce/LAVIS ``lavis/models/blip2_models/Qformer.py`` (``BertLayer`` with
``crossattention``, ``BertSelfAttention``, ``BertSelfOutput``, ``BertIntermediate``, ``BertOutput``;
``BertEmbeddings`` for the queries), ``blip2.py`` (``init_Qformer``: 32 query tokens, cross-attention
width = the image encoder's). Learned queries Q0 (n x C, N(0, 0.02)) read the image tokens Y
(N x Ci); heads h, head width d = C/h, LayerNorms with eps 1e-12::

    H  = LN(Q0)                                              BertEmbeddings (query_embeds only)
    H  = LN(H + Wo softmax(Wq H (Wk H)^T / sqrt(d)) Wv H)     self-attention (Linear C -> C, biases)
    H  = LN(H + Wo' softmax(Wq' H (Wk' Y)^T / sqrt(d)) Wv' Y) cross-attention (Wk', Wv': Ci -> C)
    out = LN(H + W2 GELU(W1 H))                               intermediate_query, output_query (C -> I -> C)

The all-ones attention masks add zeros and are left out; so is the text FFN (``intermediate``,
``output``), which the query tokens never run. The queries' LayerNorm runs once and is broadcast
over the batch (the reference normalises the batch-expanded copy: the same values, B times the
work). Parameters: ``n C + 2C + 4 (C^2 + C) + 2C +
(C^2 + C) + 2 (Ci C + C) + (C^2 + C) + 2C + (C I + I) + (I C + C) + 2C``, I = ``mlp_ratio`` x C;
output (B, n, C).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import SpecError
from .base import FusionBlock


def check_tokens(kind: str, xs) -> None:
    for i, x in enumerate(xs):
        if x.dim() != 3:
            raise SpecError(f"inputs: '{kind}' takes tokens (B, N, C); input {i} has shape {tuple(x.shape)}",
                            field="inputs")


class GatedXAttnFusion(FusionBlock):
    """Flamingo gated cross-attention block: tanh-gated cross-attention, then a tanh-gated FFN."""

    kind = "gatedxattn"
    min_inputs = 2
    max_inputs = 2
    not_a_node = "it takes tokens (N, C), not maps"

    def __init__(self, in_channels, out_channels, *, num_heads: int = 8, dim_head: int = 64, ff_mult: int = 4,
                 **align) -> None:
        super().__init__(in_channels, out_channels, **align)
        dim, dim_visual = self.in_channels
        for name, v in (("num_heads", num_heads), ("dim_head", dim_head), ("ff_mult", ff_mult)):
            if v < 1:
                raise SpecError.bad(name, v, "allowed: positive integers")
        if out_channels != dim:
            raise SpecError(f"out_channels: 'gatedxattn' keeps the text width (a residual block): out channels must be "
                            f"the text tokens' width {dim}, got {out_channels}", field="out_channels")
        inner = num_heads * dim_head
        self.num_heads, self.scale = num_heads, dim_head ** -0.5
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim_visual, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)
        self.attn_gate = nn.Parameter(torch.zeros(1))
        self.ff = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim * ff_mult, bias=False), nn.GELU(),
                                nn.Linear(dim * ff_mult, dim, bias=False))
        self.ff_gate = nn.Parameter(torch.zeros(1))

    def output_shape(self, shapes):
        return (shapes[0][0], self.out_channels)

    def forward(self, x, media):
        check_tokens(self.kind, (x, media))
        b, n1, _ = x.shape
        n2, h = media.shape[1], self.num_heads
        q = self.to_q(self.norm(x)).view(b, n1, h, -1).transpose(1, 2) * self.scale
        k, v = self.to_kv(media).chunk(2, dim=-1)
        k = k.reshape(b, n2, h, -1).transpose(1, 2)
        v = v.reshape(b, n2, h, -1).transpose(1, 2)
        sim = q @ k.transpose(-2, -1)
        attn = (sim - sim.amax(dim=-1, keepdim=True).detach()).softmax(dim=-1)
        out = self.to_out((attn @ v).transpose(1, 2).reshape(b, n1, -1))
        x = out * self.attn_gate.tanh() + x
        return self.ff(x) * self.ff_gate.tanh() + x


class BertAttention(nn.Module):
    """LAVIS ``BertAttention``: ``BertSelfAttention`` (keys and values from ``context``) and
    ``BertSelfOutput`` (dense, then LayerNorm of the sum with the input)."""

    def __init__(self, dim: int, context_dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(context_dim, dim)
        self.value = nn.Linear(context_dim, dim)
        self.dense = nn.Linear(dim, dim)
        self.LayerNorm = nn.LayerNorm(dim, eps=1e-12)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        h = self.heads
        q = self.query(x).view(b, n, h, -1).permute(0, 2, 1, 3)
        k = self.key(context).view(b, context.shape[1], h, -1).permute(0, 2, 1, 3)
        v = self.value(context).view(b, context.shape[1], h, -1).permute(0, 2, 1, 3)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(c // h)
        ctx = (scores.softmax(dim=-1) @ v).permute(0, 2, 1, 3).reshape(b, n, c)
        return self.LayerNorm(self.dense(ctx) + x)


class QFormerFusion(FusionBlock):
    """One BLIP-2 Q-Former layer: learned queries, self-attention, cross-attention to the image tokens, FFN."""

    kind = "qformer"
    min_inputs = 1
    max_inputs = 1
    not_a_node = "it takes tokens (N, C), not maps"

    def __init__(self, in_channels, out_channels, *, num_queries: int = 32, num_heads: int = 12, mlp_ratio: int = 4,
                 **align) -> None:
        super().__init__(in_channels, out_channels, **align)
        c = out_channels
        for name, v in (("num_queries", num_queries), ("num_heads", num_heads), ("mlp_ratio", mlp_ratio)):
            if v < 1:
                raise SpecError.bad(name, v, "allowed: positive integers")
        if c % num_heads:
            raise SpecError(f"out_channels: 'qformer' needs out channels divisible by num_heads, got {c} and {num_heads}; "
                            f"set num_heads to a divisor of {c} or change out_channels", field="out_channels")
        self.query_tokens = nn.Parameter(torch.zeros(1, num_queries, c))
        if self.query_tokens.device.type != "meta":
            nn.init.normal_(self.query_tokens, std=0.02)
        self.embed_norm = nn.LayerNorm(c, eps=1e-12)
        self.attention = BertAttention(c, c, num_heads)
        self.crossattention = BertAttention(c, self.in_channels[0], num_heads)
        self.intermediate_query = nn.Sequential(nn.Linear(c, c * mlp_ratio), nn.GELU())
        self.output_query = nn.Linear(c * mlp_ratio, c)
        self.output_norm = nn.LayerNorm(c, eps=1e-12)

    def output_shape(self, shapes):
        return (self.query_tokens.shape[1], self.out_channels)

    def forward(self, image):
        check_tokens(self.kind, (image,))
        h = self.embed_norm(self.query_tokens).expand(image.shape[0], -1, -1)
        h = self.attention(h, h)
        h = self.crossattention(h, image)
        return self.output_norm(self.output_query(self.intermediate_query(h)) + h)
