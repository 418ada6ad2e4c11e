"""PAN bottom-up merge: parameter and MAC formulas, paper vs mmdetection chaining, bad inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fusioncli import create_fusion
from fusioncli.analysis import analyze
from fusioncli.errors import SpecError


def n_params(block):
    return sum(p.numel() for p in block.parameters())


def conv3(cin, cout):
    return 9 * cin * cout + cout


def test_params_two_levels():
    c = 256
    expected = conv3(c, c) + conv3(c, c)  # stride-2 conv + 3x3 conv
    assert expected == 1180160
    assert n_params(create_fusion("pan", [256, 256], 256)) == expected
    assert n_params(create_fusion("pan", [256, 256], 256, variant="reference")) == expected


def test_params_three_levels_paper_vs_reference():
    c, c0 = 256, 128  # the finest input may be narrower: its stride-2 conv maps 128 -> 256
    down = conv3(c0, c) + conv3(c, c)
    assert n_params(create_fusion("pan", [c0, c, c], c)) == down + 2 * conv3(c, c)
    assert n_params(create_fusion("pan", [c0, c, c], c, variant="reference")) == down + conv3(c, c)


def test_params_with_projection():
    c = 64
    expected = conv3(c, c) + (128 * c + c) + conv3(c, c)
    assert n_params(create_fusion("pan", [64, 128], c, project=True)) == expected


def test_macs_pafpn_n4_at_800x1344():
    r = analyze("pan", inputs=["256x100x168", "256x50x84"], out=256, time=False)
    hw = 50 * 84
    assert r.cost.macs == 2 * 9 * 256 * 256 * hw
    assert r.outputs == [[1, 256, 50, 84]]


@pytest.mark.parametrize("variant,convs", [("paper", 2), ("reference", 1)])
def test_macs_three_levels(variant, convs):
    r = analyze("pan", inputs=["128x64x64", "256x32x32", "256x16x16"], out=256, options={"variant": variant},
                time=False)
    down = 9 * 128 * 256 * 32 * 32 + 9 * 256 * 256 * 16 * 16
    out_convs = 9 * 256 * 256 * 32 * 32 + 9 * 256 * 256 * 16 * 16 if convs == 2 else 9 * 256 * 256 * 16 * 16
    assert r.cost.macs == down + out_convs
    assert r.unused_params == []


def _conv(m, x, stride=1):
    return F.conv2d(x, m[0].weight, m[0].bias, stride, 1)


def test_paper_chain_goes_through_n():
    block = create_fusion("pan", [8, 8, 8], 8).eval()
    xs = [torch.randn(2, 8, 16, 16), torch.randn(2, 8, 8, 8), torch.randn(2, 8, 4, 4)]
    with torch.no_grad():
        n = xs[0]
        for i in (1, 2):
            n = F.relu(_conv(block.convs[i - 1], xs[i] + F.relu(_conv(block.down[i - 1], n, 2))))
        torch.testing.assert_close(block(*xs), n)


def test_reference_chain_goes_through_sums():
    block = create_fusion("pan", [8, 8, 8], 8, variant="reference").eval()
    xs = [torch.randn(2, 8, 16, 16), torch.randn(2, 8, 8, 8), torch.randn(2, 8, 4, 4)]
    with torch.no_grad():
        m = xs[0]
        for i in (1, 2):
            m = xs[i] + _conv(block.down[i - 1], m, 2)
        torch.testing.assert_close(block(*xs), _conv(block.convs[0], m))


def test_lateral_width_mismatch_needs_project():
    with pytest.raises(SpecError, match="project=True"):
        create_fusion("pan", [256, 512], 256)


def test_coarse_first_order_is_rejected():
    block = create_fusion("pan", [8, 8], 8)
    with pytest.raises(SpecError, match="fine to coarse"):
        block(torch.randn(1, 8, 8, 8), torch.randn(1, 8, 16, 16))
