"""Hand-derived counts for the sampling ops (grid sampling per interpolation and padding mode, unfold,
fold, their backward) and a whole block's FLOPs term by term (dysample), in the ``fusion-v1`` /
``fusion-train-v1`` conventions of ``fusioncli/analysis/cost.py`` and ``training.py``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fusioncli.analysis import analyze
from fusioncli.analysis.cost import CostCounter


def count(fn, *xs):
    with CostCounter() as c:
        fn(*xs)
    r = c.result()
    assert r.uncounted == {}
    return {k: (t.macs, t.flops) for k, t in r.by_op.items()}


# grid_sampler_2d, per grid point: unnormalise 2 per axis (4) + padding per clipped coordinate (zeros 0,
# border 2, reflection 8; bilinear and nearest clip 2 coordinates, bicubic 8 = 4 taps x 2 axes) + weights
# (bilinear: floor 2, fractions 2, complements 2, corner products 4 = 10; nearest: round 2; bicubic: 54);
# per output element: bilinear 4 mul + 3 add = 7, nearest 0, bicubic 5 x 7 = 35.
@pytest.mark.parametrize("mode,padding,per_point,per_out", [
    ("bilinear", "zeros", 4 + 0 + 10, 7), ("bilinear", "border", 4 + 2 * 2 + 10, 7),
    ("bilinear", "reflection", 4 + 2 * 8 + 10, 7), ("nearest", "zeros", 4 + 2, 0),
    ("nearest", "border", 4 + 2 * 2 + 2, 0), ("bicubic", "zeros", 4 + 54, 35), ("bicubic", "border", 4 + 8 * 2 + 54, 35),
])
def test_grid_sample_by_hand(mode, padding, per_point, per_out):
    x, grid = torch.randn(2, 3, 5, 6), torch.rand(2, 4, 7, 2) * 2 - 1  # 2 x 4 x 7 = 56 points, 56 x 3 outputs
    got = count(lambda a, g: F.grid_sample(a, g, mode=mode, padding_mode=padding, align_corners=False), x, grid)
    assert got == {"aten.grid_sampler_2d": (0, per_out * 2 * 3 * 4 * 7 + per_point * 2 * 4 * 7)}


def test_grid_sample_backward_by_hand():
    """bilinear, zeros: per grad_output element grad_input 8 + grad_grid 24; per grid point the forward's 14
    again and 6 more for grad_grid (corner distances 4, the unnormalise factor 2)."""
    x = torch.randn(2, 3, 5, 6, requires_grad=True)
    grid = (torch.rand(2, 4, 7, 2) * 2 - 1).requires_grad_()
    y = F.grid_sample(x, grid, align_corners=False)
    g = torch.ones_like(y)
    with CostCounter() as c:
        torch.autograd.grad(y, (x, grid), g)
    r = c.result()
    n, points = 2 * 3 * 4 * 7, 2 * 4 * 7
    assert r.by_op["aten.grid_sampler_2d_backward"].flops == (8 + 24) * n + (14 + 6) * points
    assert r.uncounted == {}


def test_unfold_is_data_and_fold_adds():
    x = torch.randn(1, 4, 6, 6)
    assert count(lambda a: F.unfold(a, 3, padding=1), x) == {"aten.im2col": (0, 0)}
    cols = torch.randn(1, 4 * 9, 36)  # fold: every column element is added into the image
    assert count(lambda a: F.fold(a, (6, 6), 3, padding=1), cols) == {"aten.col2im": (0, 4 * 9 * 36)}


def test_einsum_counts_as_its_matmul():
    """einsum decomposes to bmm under the dispatcher: nothing of its own to count."""
    a, b = torch.randn(2, 5, 7), torch.randn(2, 7, 3)
    got = count(lambda p, q: torch.einsum("bij,bjk->bik", p, q), a, b)
    assert got.pop("aten.bmm") == (2 * 5 * 7 * 3, 2 * 2 * 5 * 7 * 3)
    assert set(got) <= {"aten.permute", "aten.unsqueeze", "aten.view"} and set(got.values()) == {(0, 0)}


def test_dysample_flops_term_by_term():
    """dysample, fine 16x8x8, coarse 16x4x4, out 16, groups 4, scale 2, batch 1."""
    r = analyze("dysample", inputs=["16x8x8", "16x4x4"], out=16, time=False)
    lat_f = 16 * 16 * 64        # 1x1 16 -> 16 at 8x8 (bias: +1 per output)
    lat_c = 16 * 16 * 16        # 1x1 at 4x4
    off = 16 * 32 * 16          # offset conv 16 -> 2*4*2^2 = 32 at 4x4
    fpn = 9 * 16 * 16 * 64      # 3x3 at 8x8
    assert r.cost.macs == lat_f + lat_c + off + fpn == 176_128
    o = 32 * 16                 # offset elements (B, 32, 4, 4)
    grid = (o                   # * 0.25
            + o                 # + init_pos
            + 4 + 4             # arange(W) + 0.5, arange(H) + 0.5
            + o + o + o + o)    # centres + offset, * 2, / (W, H), - 1
    sample = 7 * (4 * 4 * 8 * 8) + (4 + 2 * 2 + 10) * (4 * 8 * 8)  # 4 groups x 4 channels x 8x8 outputs; border
    flops = (2 * lat_f + 16 * 64 + 2 * lat_c + 16 * 16 + 2 * off + 32 * 16 + grid + sample
             + 16 * 64          # lateral + upsampled
             + 2 * fpn + 16 * 64)
    assert r.cost.flops == flops
    assert r.cost.uncounted_ops == {}


def test_sampling_blocks_have_nothing_uncounted_in_training():
    for kind in ("carafe", "fapn"):
        r = analyze(kind, inputs=["16x8x8", "24x4x4"], out=16, time=False, train=True)
        assert r.training.backward.uncounted_ops == {}
        assert r.training.backward.macs == 2 * r.cost.macs


def test_msdeform_flops_term_by_term():
    """msdeform, levels 8x4x4 and 8x2x2 (N = 16 + 4 = 20 tokens of C = 8), 2 heads of 4, 2 points, batch 1."""
    r = analyze("msdeform", inputs=["8x4x4", "8x2x2"], out=8, time=False, options={"num_heads": 2, "num_points": 2})
    n, c, mlp = 20, 8, 2 * 2 * 2        # heads x levels x points
    value, offsets, weights, out = n * c * c, n * c * 2 * mlp, n * c * mlp, n * c * c
    assert r.cost.macs == value + offsets + weights + out == 6_400
    linears = 2 * (value + offsets + weights + out) + n * (c + 2 * mlp + mlp + c)  # + the bias adds
    ref = 2 * 16 + 2 * 4 + (4 + 4 + 2 + 2)  # reference points: x / W and y / H per pixel of each level, after
    #                                         the pixel centres: + 0.5 on each row and column index of each level
    softmax = 5 * n * mlp               # over the L*P = 4 logits of each head
    locations = 2 * n * 2 * mlp         # offsets / (W_l, H_l), + reference
    grids = 2 * n * 2 * mlp             # 2 * loc - 1
    sampling = 2 * (7 * (2 * 4 * n * 2) + 14 * (2 * n * 2))  # per level: (B*M, d, N, P) outputs, (B*M, N, P) points
    weighted = 2 * (2 * 4 * n * 4)      # product with the weights, then the sum over L*P = 4 (1 per input element)
    residual, norm = n * c, 7 * n * c   # + src; LayerNorm with affine
    total = linears + ref + softmax + locations + grids + sampling + weighted + residual + norm
    assert r.cost.flops == total == 25_012
    assert r.cost.uncounted_ops == {}
