"""A token fusion: queries from one stream attend to the tokens of another (N x C tokens).

    fusion inspect examples/token_fusion.py:TokenCrossAttention --in 196x256 --in 49x256 --set heads=8
"""

import torch
from torch import nn


class TokenCrossAttention(nn.Module):
    """Pre-norm multi-head cross-attention with a residual, then an MLP with a residual.

    x: B x N x C (queries), context: B x M x C (keys and values) -> B x N x C.
    """

    def __init__(self, in_channels: int, heads: int = 4, mlp_ratio: float = 2.0):
        super().__init__()
        c = in_channels
        self.heads = heads
        self.norm_q = nn.LayerNorm(c)
        self.norm_kv = nn.LayerNorm(c)
        self.q = nn.Linear(c, c)
        self.kv = nn.Linear(c, 2 * c)
        self.proj = nn.Linear(c, c)
        self.norm_mlp = nn.LayerNorm(c)
        hidden = int(c * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(c, hidden), nn.GELU(), nn.Linear(hidden, c))

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        m = context.shape[1]
        h = self.heads
        q = self.q(self.norm_q(x)).reshape(b, n, h, c // h).transpose(1, 2)
        k, v = self.kv(self.norm_kv(context)).reshape(b, m, 2, h, c // h).permute(2, 0, 3, 1, 4)
        attn = torch.softmax(q @ k.transpose(-2, -1) * (c // h) ** -0.5, dim=-1)
        x = x + self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))
        return x + self.mlp(self.norm_mlp(x))
