"""BiFPN node: parameter and MAC formulas, weighting modes, and equality with a plain
functional reimplementation of the EfficientDet node formula."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from necks_reference import maxpool_static_same

from fusioncli import create_fusion
from fusioncli.analysis import analyze
from fusioncli.errors import SpecError


def n_params(block):
    return sum(p.numel() for p in block.parameters())


def test_params_d0_p4_node():
    c = 64
    expected = 2 + 9 * c + (c * c + c) + 2 * c  # edge weights, depthwise, pointwise + bias, BN
    assert expected == 4866
    assert n_params(create_fusion("bifpn", [64, 64], 64)) == expected


def test_params_with_projection_and_three_inputs():
    c, ci = 64, 112
    proj = ci * c + c + 2 * c  # 1x1 conv with bias + BN, only for the 112-wide input
    expected = 3 + proj + 9 * c + (c * c + c) + 2 * c
    assert n_params(create_fusion("bifpn", [112, 64, 64], 64)) == expected


def test_params_sum_weighting_has_no_edge_weights():
    block = create_fusion("bifpn", [64, 64, 64], 64, weighting="sum")
    assert block.edge_weights is None
    assert n_params(block) == 9 * 64 + 64 * 64 + 64 + 2 * 64


def test_macs_d0_p4_node():
    r = analyze("bifpn", inputs=["64x32x32", "64x16x16"], out=64, time=False)
    hw = 32 * 32
    assert r.cost.macs == 9 * 64 * hw + 64 * 64 * hw


def test_macs_projection_runs_before_downsampling():
    # The 40-wide 32x32 map is projected at 32x32, then max-pooled (ResampleFeatureMap order).
    r = analyze("bifpn", inputs=["64x16x16", "40x32x32"], out=64, time=False)
    assert r.cost.macs == 40 * 64 * 32 * 32 + 9 * 64 * 16 * 16 + 64 * 64 * 16 * 16


def test_too_few_inputs():
    with pytest.raises(SpecError, match="bifpn"):
        create_fusion("bifpn", [64], 64)


def _bn(x, bn):
    return F.batch_norm(x, bn.running_mean.clone(), bn.running_var.clone(), bn.weight.detach().clone(),
                        bn.bias.detach().clone(), False, 0.0, 1e-3)


def _randomise(block):
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in block.named_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (0.5 if "edge" not in name else 1.0))
        if block.edge_weights is not None:
            block.edge_weights[0] = -0.3  # exercises the ReLU of the fast weights
        for m in block.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)


def reference_node(block, xs, weighting, conv_bn_act=False, down=lambda x: F.max_pool2d(x, 3, 2, 1)):
    """EfficientDet node from its formula, with the block's weights as plain tensors; ``down``: the
    downsampling of a twice larger input."""
    c = block.out_channels
    th, tw = xs[0].shape[-2:]
    ys = []
    for x, proj in zip(xs, block.proj):
        if x.shape[1] != c:
            conv, bn = proj[0], proj[1]
            x = _bn(F.conv2d(x, conv.weight.detach(), conv.bias.detach()), bn)
        if x.shape[-2] > th:
            x = down(x)
        elif x.shape[-2] < th:
            x = F.interpolate(x, scale_factor=th // x.shape[-2], mode="nearest")
        ys.append(x)
    if weighting == "fast":
        w = block.edge_weights.detach().clamp(min=0)
        fused = sum(w[i] * ys[i] for i in range(len(ys))) / (1e-4 + w.sum())
    elif weighting == "softmax":
        e = block.edge_weights.detach().exp()
        fused = sum(e[i] * ys[i] for i in range(len(ys))) / e.sum()
    else:
        fused = sum(ys)

    def sep(z):
        z = F.conv2d(z, block.depthwise.weight.detach(), None, padding=1, groups=c)
        return _bn(F.conv2d(z, block.pointwise.weight.detach(), block.pointwise.bias.detach()), block.bn)

    if conv_bn_act:
        return F.silu(sep(fused))
    return sep(fused * torch.sigmoid(fused))


@pytest.mark.parametrize("weighting", ["fast", "softmax", "sum"])
@pytest.mark.parametrize("shapes", [
    [(64, 16, 16), (64, 8, 8)],  # P4_1 = node(P4_0, up(P5_1))
    [(112, 16, 16), (64, 16, 16), (64, 32, 32)],  # P4_2 = node(proj(C4), P4_1, down(P3_2))
])
def test_outputs_equal_reimplementation(weighting, shapes):
    block = create_fusion("bifpn", [s[0] for s in shapes], 64, weighting=weighting).eval()
    _randomise(block)
    gen = torch.Generator().manual_seed(5)
    xs = [torch.randn((2, *s), generator=gen) for s in shapes]
    with torch.no_grad():
        got = block(*xs)
        want = reference_node(block, xs, weighting)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_conv_bn_act_order_equals_reimplementation():
    shapes = [(64, 16, 16), (64, 8, 8)]
    block = create_fusion("bifpn", [64, 64], 64, conv_bn_act=True).eval()
    _randomise(block)
    xs = [torch.randn((1, *s), generator=torch.Generator().manual_seed(6)) for s in shapes]
    with torch.no_grad():
        torch.testing.assert_close(block(*xs), reference_node(block, xs, "fast", conv_bn_act=True),
                                   rtol=1e-4, atol=1e-5)


def test_fast_weights_start_equal():
    block = create_fusion("bifpn", [8, 8], 8).eval()
    a, b = torch.randn(1, 8, 4, 4), torch.randn(1, 8, 4, 4)
    with torch.no_grad():
        fused_ab = block.bn(block.pointwise(block.depthwise(F.silu((a + b) / (2 + 1e-4)))))
        torch.testing.assert_close(block(a, b), fused_ab)


def test_pooling_none_interpolates():
    block = create_fusion("bifpn", [8, 8], 8, pooling="none", resize_mode="bilinear").eval()
    x = torch.randn(1, 8, 8, 8)
    with torch.no_grad():
        down = F.interpolate(x, size=(4, 4), mode="bilinear", align_corners=False)
        torch.testing.assert_close(block.resize[1](x, (4, 4)), down)
        assert block(torch.randn(1, 8, 4, 4), x).shape == (1, 8, 4, 4)


def _avgpool2d_same(x, k=3, s=2):
    """rwightman effdet/timm ``AvgPool2dSame``: ``pad_same`` (zeros, the odd pixel right/bottom), then
    ``F.avg_pool2d`` with count_include_pad=True (its default)."""
    ih, iw = x.shape[-2:]
    pad_h = max((math.ceil(ih / s) - 1) * s + k - ih, 0)
    pad_w = max((math.ceil(iw / s) - 1) * s + k - iw, 0)
    x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2], value=0)
    return F.avg_pool2d(x, k, s, 0, False, True)


@pytest.mark.parametrize("pooling,pad,down", [
    ("max", "same", maxpool_static_same),                                  # zylo117 / TF
    ("avg", "symmetric", lambda x: F.avg_pool2d(x, 3, 2, 1)),              # rwightman nn.AvgPool2d: padding counted
    ("avg", "same", _avgpool2d_same),                                      # rwightman AvgPool2dSame
])
@pytest.mark.parametrize("sizes", [(16, 32), (9, 17)])
def test_pooling_and_padding_equal_the_references(pooling, pad, down, sizes):
    """P4_2-like node: the larger input is pooled 3x3/2 as each reference pools it (odd 17 -> 9 too)."""
    shapes = [(32, sizes[0], sizes[0]), (32, sizes[1], sizes[1])]
    block = create_fusion("bifpn", [32, 32], 32, pooling=pooling, pad=pad).eval()
    _randomise(block)
    gen = torch.Generator().manual_seed(8)
    xs = [torch.randn((2, *s), generator=gen) - 1.0 for s in shapes]  # mostly negative: a zero pad would win a max
    with torch.no_grad():
        torch.testing.assert_close(block(*xs), reference_node(block, xs, "fast", down=down), rtol=1e-4, atol=1e-5)
        if pad == "same" and sizes[1] % 2 == 0:  # the windows moved one pixel: not the symmetric pool
            sym = reference_node(block, xs, "fast")
            assert not torch.allclose(block(*xs), sym, atol=1e-3)


def test_pad_same_counts_as_the_symmetric_pool():
    """Same output size (ceil(17/2) = (17 + 2 - 3)//2 + 1 = 9) and the same FLOPs: the pool's kernel area (9)
    per output element either way; the pad is data movement (0 FLOPs)."""
    a = analyze("bifpn", inputs=["32x9x9", "32x17x17"], out=32, options={"pad": "same"}, time=False)
    b = analyze("bifpn", inputs=["32x9x9", "32x17x17"], out=32, time=False)
    assert a.outputs == b.outputs == [[1, 32, 9, 9]]
    assert (a.cost.macs, a.cost.flops, a.params) == (b.cost.macs, b.cost.flops, b.params)
    assert a.cost.by_op["aten.max_pool2d_with_indices"]["flops"] == 9 * 32 * 9 * 9
    assert not a.cost.uncounted_ops
