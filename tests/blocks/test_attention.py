"""SE and CBAM fusion: hand-derived parameter and MAC counts, the formulas recomputed with
torch.nn.functional, the timm reference variant (reduced widths, CBAM's spatial BN), and the
spec errors.

Front: cat (S = sum Ci) -> 1x1 conv S -> C: S*C + C parameters (bias only without norm;
S*C + 2C with BN), S*C*H*W MACs. SE: fc1 C*d + d, fc2 d*C + C parameters, C*d + d*C MACs.
CBAM: bias-free shared MLP 2*C*d parameters, run twice (avg and max): 2*(C*d + d*C) MACs;
spatial 7x7 conv 2 -> 1: 98 parameters, 98*H*W MACs.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fusioncli import create_fusion
from fusioncli.analysis import analyze
from fusioncli.errors import SpecError


def counts(kind, inputs, out, **options):
    r = analyze(kind, inputs=inputs, out=out, options=options, time=False)
    return r.params["total"], r.cost.macs, r.outputs[0]


def test_se_paper_counts():
    # S = 128, C = 64, d = 64/16 = 4
    params, macs, out = counts("se", ["64x32x32", "64x32x32"], 64)
    assert params == 128 * 64 + 64 + (64 * 4 + 4) + (4 * 64 + 64) == 8_836
    assert macs == 128 * 64 * 32 * 32 + 64 * 4 + 4 * 64 == 8_389_120
    assert out == [1, 64, 32, 32]
    _, macs, out = counts("se", ["32x16x16", "96x8x8"], 64)
    assert macs == 128 * 64 * 16 * 16 + 64 * 4 + 4 * 64 == 2_097_664
    assert out == [1, 64, 16, 16]


def test_se_reference_rounds_width_to_multiple_of_8():
    # timm: make_divisible(4, 8, round_limit=0) = 8
    params, macs, _ = counts("se", ["64x32x32", "64x32x32"], 64, variant="reference")
    assert params == 128 * 64 + 64 + (64 * 8 + 8) + (8 * 64 + 64) == 9_352
    assert macs == 128 * 64 * 32 * 32 + 64 * 8 + 8 * 64
    assert create_fusion("se", [88], 88).rd_channels == 5
    assert create_fusion("se", [88], 88, variant="reference").rd_channels == 8
    assert create_fusion("se", [256], 256, variant="reference").rd_channels == 16


def test_se_resnet50_unet_preset_counts():
    # 2048 + 1024 = 3072 -> 256 with BN (no conv bias); d = 16
    params, macs, out = counts("se", ["2048x16x16", "1024x32x32"], 256, norm="bn", act="relu", align="largest",
                               resize_mode="nearest")
    assert params == 3072 * 256 + 2 * 256 + (256 * 16 + 16) + (16 * 256 + 256) == 795_408
    assert macs == 3072 * 256 * 32 * 32 + 2 * 256 * 16 == 805_314_560
    assert out == [1, 256, 32, 32]


def test_cbam_paper_counts():
    params, macs, out = counts("cbam", ["64x32x32", "64x32x32"], 64)
    assert params == 128 * 64 + 64 + 2 * 64 * 4 + 2 * 49 == 8_866
    assert macs == 128 * 64 * 32 * 32 + 2 * (64 * 4 + 4 * 64) + 98 * 32 * 32 == 8_489_984
    assert out == [1, 64, 32, 32]
    _, macs, _ = counts("cbam", ["32x16x16", "96x8x8"], 64)
    assert macs == 128 * 64 * 16 * 16 + 2 * (64 * 4 + 4 * 64) + 98 * 16 * 16 == 2_123_264


def test_cbam_reference_width_and_spatial_bn():
    # C = 88: paper d = floor(5.5) = 5, timm round(5.5) = 6; reference adds BN(1) after the 7x7 conv
    paper, _, _ = counts("cbam", ["64x16x16", "64x16x16"], 88)
    reference, _, _ = counts("cbam", ["64x16x16", "64x16x16"], 88, variant="reference")
    assert paper == 128 * 88 + 88 + 2 * 88 * 5 + 98 == 12_330
    assert reference == 128 * 88 + 88 + 2 * 88 * 6 + 98 + 2 == 12_508
    assert isinstance(create_fusion("cbam", [64], 64, variant="reference").spatial_norm, torch.nn.BatchNorm2d)


def _w(m):
    return m.weight.detach().clone(), (m.bias.detach().clone() if m.bias is not None else None)


def _front(block, xs):
    return F.conv2d(torch.cat(xs, dim=1), *_w(block.proj))


def test_se_output_equals_formula():
    torch.manual_seed(0)
    block = create_fusion("se", [24, 40], 48).eval()
    xs = [torch.randn(2, 24, 6, 6), torch.randn(2, 40, 6, 6)]
    y = _front(block, xs)
    g = torch.sigmoid(F.conv2d(F.relu(F.conv2d(y.mean((2, 3), keepdim=True), *_w(block.fc1))), *_w(block.fc2)))
    with torch.no_grad():
        assert torch.allclose(block(*xs), y * g, atol=1e-6)


def test_cbam_output_equals_formula():
    torch.manual_seed(0)
    block = create_fusion("cbam", [24, 40], 48).eval()
    xs = [torch.randn(2, 24, 9, 9), torch.randn(2, 40, 9, 9)]
    y = _front(block, xs)
    w0, w1 = block.fc1.weight.detach().clone(), block.fc2.weight.detach().clone()

    def mlp(v):
        return F.conv2d(F.relu(F.conv2d(v, w0)), w1)

    y = y * torch.sigmoid(mlp(y.mean((2, 3), keepdim=True)) + mlp(y.amax((2, 3), keepdim=True)))
    pooled = torch.cat([y.mean(1, keepdim=True), y.amax(1, keepdim=True)], dim=1)
    y = y * torch.sigmoid(F.conv2d(pooled, block.spatial.weight.detach().clone(), padding=3))
    with torch.no_grad():
        assert torch.allclose(block(*xs), y, atol=1e-6)


@pytest.mark.parametrize("kind,options,match", [
    ("se", {"rd_ratio": 0.0}, "rd_ratio"),
    ("se", {"rd_ratio": 1.5}, "rd_ratio"),
    ("cbam", {"rd_ratio": -0.1}, "rd_ratio"),
    ("cbam", {"spatial_kernel": 6}, "spatial_kernel"),
])
def test_spec_errors(kind, options, match):
    with pytest.raises(SpecError, match=match):
        create_fusion(kind, [64, 64], 64, **options)
