"""FPN top-down merge: parameter and MAC formulas (ResNet-50 P4), the mmdetection chain, bad inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fusioncli import create_fusion
from fusioncli.analysis import analyze
from fusioncli.errors import SpecError


def n_params(block):
    return sum(p.numel() for p in block.parameters())


def test_params_resnet50_p4():
    c = 256
    expected = (1024 * c + c) + (2048 * c + c) + (9 * c * c + c)  # two laterals, one 3x3 output conv
    assert expected == 1377024
    assert n_params(create_fusion("fpn", [1024, 2048], 256)) == expected


def test_params_with_norm():
    c = 256
    laterals = 512 * c + 1024 * c + 2048 * c + 3 * 2 * c  # no conv bias, a BN after each
    assert n_params(create_fusion("fpn", [512, 1024, 2048], c, norm="bn")) == laterals + 9 * c * c + 2 * c
    no_lat_norm = 512 * c + 1024 * c + 2048 * c + 3 * c  # laterals keep their bias, no BN
    assert n_params(create_fusion("fpn", [512, 1024, 2048], c, norm="bn", no_norm_on_lateral=True)) == (
        no_lat_norm + 9 * c * c + 2 * c)


def test_macs_resnet50_p4_at_800x1333():
    r = analyze("fpn", inputs=["1024x50x84", "2048x25x42"], out=256, time=False)
    assert r.cost.macs == 1024 * 256 * 50 * 84 + 2048 * 256 * 25 * 42 + 9 * 256 * 256 * 50 * 84
    assert r.outputs == [[1, 256, 50, 84]]
    assert r.unused_params == []


def test_macs_three_levels():
    r = analyze("fpn", inputs=["256x64x64", "512x32x32", "1024x16x16"], out=128, time=False)
    laterals = 256 * 128 * 64 * 64 + 512 * 128 * 32 * 32 + 1024 * 128 * 16 * 16
    assert r.cost.macs == laterals + 9 * 128 * 128 * 64 * 64


def test_chain_matches_mmdet_top_down():
    block = create_fusion("fpn", [8, 16, 32], 12).eval()
    xs = [torch.randn(2, 8, 20, 27), torch.randn(2, 16, 10, 14), torch.randn(2, 32, 5, 7)]  # odd sizes
    with torch.no_grad():
        lat = [F.conv2d(x, m[0].weight, m[0].bias) for x, m in zip(xs, block.lateral)]
        for i in (2, 1):
            lat[i - 1] = lat[i - 1] + F.interpolate(lat[i], size=lat[i - 1].shape[2:], mode="nearest")
        conv = block.fpn_conv[0]
        want = F.conv2d(lat[0], conv.weight, conv.bias, padding=1)
        torch.testing.assert_close(block(*xs), want)


def test_output_at_finest_size():
    block = create_fusion("fpn", [8, 16], 12)
    assert block.output_shape([(8, 20, 27), (16, 10, 14)]) == (12, 20, 27)


def test_coarse_first_order_is_rejected():
    block = create_fusion("fpn", [16, 8], 12)
    with pytest.raises(SpecError, match="fine to coarse"):
        block(torch.randn(1, 16, 8, 8), torch.randn(1, 8, 16, 16))
