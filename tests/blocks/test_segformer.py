"""SegFormer MLP-decoder fusion: counts by hand, the paper's Linear form, the mmseg variant."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fusioncli import create_fusion

from .helpers import randomize_bn
from fusioncli.analysis import analyze

B0 = ["32x128x128", "64x64x64", "160x32x32", "256x16x16"]


def inputs(shapes, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn((2, *s), generator=gen) for s in shapes]


def linear(x, weight, bias):
    """SegFormer's MLP: Linear on the (B, H*W, C) tokens, back to (B, C', H, W)."""
    b, _, h, w = x.shape
    t = F.linear(x.flatten(2).transpose(1, 2), weight.flatten(1), bias)
    return t.transpose(1, 2).reshape(b, -1, h, w)


def test_paper_forward_equals_linear_layers():
    shapes = [(8, 16, 16), (16, 8, 8), (24, 4, 4)]
    torch.manual_seed(0)
    block = create_fusion("segformer", [s[0] for s in shapes], 12).eval()
    w = {k: v.detach().clone() for k, v in block.state_dict().items()}
    xs = inputs(shapes)
    with torch.no_grad():
        y = block(*xs)
    ups = [F.interpolate(linear(x, w[f"linear.{i}.weight"], w[f"linear.{i}.bias"]), size=(16, 16), mode="bilinear",
                         align_corners=False) for i, x in enumerate(xs)]
    expected = linear(torch.cat(ups, 1), w["fuse.weight"], w["fuse.bias"])
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)


def test_reference_forward_equals_mmseg_head():
    shapes = [(8, 16, 16), (16, 8, 8)]
    torch.manual_seed(0)
    block = create_fusion("segformer", [s[0] for s in shapes], 12, variant="reference").eval()
    randomize_bn(block)
    w = {k: v.detach().clone() for k, v in block.state_dict().items()}

    def conv_module(x, p):  # mmcv ConvModule: conv (no bias) -> BN -> ReLU
        x = F.conv2d(x, w[f"{p}.0.weight"])
        return F.relu(F.batch_norm(x, w[f"{p}.1.running_mean"], w[f"{p}.1.running_var"], w[f"{p}.1.weight"],
                                   w[f"{p}.1.bias"], False, 0.0, 1e-5))

    xs = inputs(shapes)
    with torch.no_grad():
        y = block(*xs)
    outs = [F.interpolate(conv_module(x, f"linear.{i}"), size=(16, 16), mode="bilinear", align_corners=False)
            for i, x in enumerate(xs)]
    torch.testing.assert_close(y, conv_module(torch.cat(outs, 1), "fuse"), rtol=1e-5, atol=1e-5)
    assert all(m.bias is None for m in block.modules() if isinstance(m, torch.nn.Conv2d))


def test_parameter_count_by_hand():
    c_in = [32, 64, 160, 256]
    # paper: sum_i (Ci*C + C) + n*C*C + C
    paper = (32 + 64 + 160 + 256) * 256 + 4 * 256 + 4 * 256 * 256 + 256
    assert paper == 394_496
    assert sum(p.numel() for p in create_fusion("segformer", c_in, 256).parameters()) == paper
    # mmseg: sum_i (Ci*C + 2C) + n*C*C + 2C
    ref = (32 + 64 + 160 + 256) * 256 + 4 * 2 * 256 + 4 * 256 * 256 + 2 * 256
    assert ref == 395_776
    assert sum(p.numel() for p in create_fusion("segformer", c_in, 256, variant="reference").parameters()) == ref


@pytest.mark.parametrize("variant", ["paper", "reference"])
def test_macs_by_hand(variant):
    # per level Ci*C*Hi*Wi at the level's own size, then n*C*C*H*W for the fusion at the finest size
    r = analyze("segformer", inputs=B0, out=256, options={"variant": variant}, time=False)
    per_level = 256 * (32 * 128 * 128 + 64 * 64 * 64 + 160 * 32 * 32 + 256 * 16 * 16)
    assert r.cost.macs == per_level + 4 * 256 * 256 * 128 * 128 == 4_555_014_144
    # coarse level first: the output still takes the largest (finest) size
    r = analyze("segformer", inputs=["48x8x8", "24x16x16", "16x32x32"], out=32, options={"variant": variant},
                time=False)
    assert r.cost.macs == 32 * (48 * 64 + 24 * 256 + 16 * 1024) + 3 * 32 * 32 * 32 * 32 == 3_964_928
    assert r.outputs == [[1, 32, 32, 32]]
    assert r.unused_params == []
