"""MIRNet SKFF: hand-derived parameter and MAC counts, the formula recomputed with
torch.nn.functional, and the spec errors.

n streams of width C, d = max(floor(C/8), 4): conv_du C*d, PReLU 1, fcs n*d*C parameters
(+ d + n*C with bias). All of them act on 1x1 maps, so MACs = C*d + n*d*C whatever H, W;
only the optional 1x1 projections (Ci*C*H*W MACs each) depend on the resolution.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fusioncli import create_fusion
from fusioncli.analysis import analyze
from fusioncli.errors import SpecError


def counts(inputs, out, **options):
    r = analyze("skff", inputs=inputs, out=out, options=options, time=False)
    return r.params["total"], r.cost.macs, r.outputs[0]


def test_mirnet_three_streams_of_64():
    # d = max(64/8, 4) = 8
    for size in (32, 128):
        params, macs, out = counts([f"64x{size}x{size}"] * 3, 64)
        assert params == 64 * 8 + 1 + 3 * 8 * 64 == 2_049
        assert macs == 64 * 8 + 3 * 8 * 64 == 2_048
        assert out == [1, 64, size, size]


def test_mirnet_v2_two_streams_of_80_with_bias():
    # d = 10; bias adds d + n*C
    params, macs, _ = counts(["80x64x64", "80x64x64"], 80, bias=True)
    assert params == 80 * 10 + 10 + 1 + 2 * (10 * 80 + 80) == 2_571
    assert macs == 80 * 10 + 2 * 10 * 80 == 2_400


def test_small_width_floors_at_four():
    params, _, _ = counts(["16x8x8", "16x8x8"], 16)
    assert params == 16 * 4 + 1 + 2 * 4 * 16


def test_project_mismatched_widths_and_sizes():
    # X1 32 -> 64 by a 1x1 (no bias) at 16x16; X2 64x8x8 is resized to 16x16; d = 8
    params, macs, out = counts(["32x16x16", "64x8x8"], 64, project=True)
    assert params == 32 * 64 + 64 * 8 + 1 + 2 * 8 * 64 == 3_585
    assert macs == 32 * 64 * 16 * 16 + 64 * 8 + 2 * 8 * 64 == 525_824
    assert out == [1, 64, 16, 16]


@pytest.mark.parametrize("n,bias", [(2, False), (3, True), (4, False)])
def test_output_equals_formula(n, bias):
    torch.manual_seed(0)
    block = create_fusion("skff", [24] * n, 24, bias=bias).eval()
    torch.nn.init.constant_(block.conv_du[1].weight, 0.3)
    gen = torch.Generator().manual_seed(1)
    xs = [torch.randn(2, 24, 7, 5, generator=gen) for _ in range(n)]
    w_du = block.conv_du[0].weight.detach().clone()
    b_du = block.conv_du[0].bias.detach().clone() if bias else None
    s = sum(xs).mean((2, 3), keepdim=True)
    z = F.prelu(F.conv2d(s, w_du, b_du), torch.tensor([0.3]))
    logits = torch.stack([F.conv2d(z, fc.weight.detach().clone(), fc.bias.detach().clone() if bias else None)
                          for fc in block.fcs])
    a = torch.exp(logits) / torch.exp(logits).sum(0)
    with torch.no_grad():
        y = block(*xs)
    assert torch.allclose(y, sum(a[i] * xs[i] for i in range(n)), atol=1e-6)


@pytest.mark.parametrize("widths,out,options,match", [
    ([32, 64], 64, {}, r"needs equal input widths, got 32, 64; set project=True"),
    ([32, 32], 64, {}, r"outputs its streams' width 32, got out_channels 64"),
    ([64, 64], 64, {"reduction": 0}, "reduction"),
    ([64], 64, {}, "got 1 input"),
])
def test_spec_errors(widths, out, options, match):
    with pytest.raises(SpecError, match=match):
        create_fusion("skff", widths, out, **options)
