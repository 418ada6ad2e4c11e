"""DPT / MiDaS fusion block: counts by hand, a functional reimplementation, bad inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fusioncli import create_fusion
from fusioncli.analysis import analyze
from fusioncli.errors import SpecError

from .helpers import randomize_bn


def weights(block):
    return {k: v.detach().clone() for k, v in block.state_dict().items()}


def rcu(x, w, prefix, bn):
    def norm(t, name):
        if not bn:
            return t
        return F.batch_norm(t, w[f"{prefix}.{name}.running_mean"], w[f"{prefix}.{name}.running_var"],
                            w[f"{prefix}.{name}.weight"], w[f"{prefix}.{name}.bias"], False, 0.0, 1e-5)

    out = F.conv2d(F.relu(x), w[f"{prefix}.conv1.weight"], w[f"{prefix}.conv1.bias"], padding=1)
    out = norm(out, "bn1")
    out = F.conv2d(F.relu(out), w[f"{prefix}.conv2.weight"], w[f"{prefix}.conv2.bias"], padding=1)
    return norm(out, "bn2") + x


def dpt_reference(xs, w, *, bn=False, scale=2.0, size=None, project=()):
    """MiDaS FeatureFusionBlock_custom written out: X1 (+ RCU1(X2)) -> RCU2 -> interpolate -> 1x1."""
    h = max(x.shape[-2] for x in xs)
    wd = max(x.shape[-1] for x in xs)
    xs = [x if x.shape[-2:] == (h, wd) else F.interpolate(x, size=(h, wd), mode="bilinear", align_corners=True)
          for x in xs]
    xs = [F.conv2d(x, w[f"proj.{i}.weight"], w[f"proj.{i}.bias"]) if i in project else x for i, x in enumerate(xs)]
    out = xs[0]
    if len(xs) == 2:
        out = out + rcu(xs[1], w, "rcu1", bn)
    out = rcu(out, w, "rcu2", bn)
    if size is None:
        out = F.interpolate(out, scale_factor=scale, mode="bilinear", align_corners=True)
    else:
        out = F.interpolate(out, size=size, mode="bilinear", align_corners=True)
    return F.conv2d(out, w["out_conv.weight"], w["out_conv.bias"])


def rand(*shape, seed=1):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- parameters

def test_params_two_inputs_256_features():
    C = 256
    # two RCUs of two 3x3 convs with bias, then the 1x1 output conv C -> C with bias
    expected = 2 * 2 * (9 * C * C + C) + (C * C + C)
    assert expected == 2_426_112
    r = analyze("dpt", inputs=["256x24x24", "256x24x24"], out=C, time=False)
    assert r.params["total"] == expected


def test_params_one_input_expand_and_bn():
    C = 64
    # one RCU only (no RCU1 without X2); BN weight+bias after each conv (4C); 1x1 out conv C -> C/2
    expected = 2 * (9 * C * C + C) + 4 * C + (C * (C // 2) + C // 2)
    r = analyze("dpt", inputs=["64x16x16"], out=C, options={"expand": True, "bn": True}, time=False)
    assert r.params["total"] == expected == 76_192


def test_reference_variant_builds_midas_unused_rcu1_with_one_input():
    """MiDaS's FeatureFusionBlock_custom always builds resConfUnit1: with one input the reference variant
    builds it too (2 * (9C^2 + C) more parameters, none of them run: listed as unused), with the state
    dict keys of the two-input block; MACs and the output are the paper variant's."""
    C = 64
    paper = analyze("dpt", inputs=["64x16x16"], out=C, time=False)
    ref = analyze("dpt", inputs=["64x16x16"], out=C, options={"variant": "reference"}, time=False)
    assert paper.params["total"] == 2 * (9 * C * C + C) + (C * C + C) == 78_016
    assert ref.params["total"] == 2 * 2 * (9 * C * C + C) + (C * C + C) == 151_872
    assert sorted(ref.unused_params) == ["rcu1.conv1.bias", "rcu1.conv1.weight", "rcu1.conv2.bias",
                                         "rcu1.conv2.weight"] and not paper.unused_params
    assert (ref.cost.macs, ref.cost.flops) == (paper.cost.macs, paper.cost.flops)
    one = create_fusion("dpt", [C], C, variant="reference")
    assert set(one.state_dict()) == set(create_fusion("dpt", [C, C], C).state_dict())
    x = rand(1, C, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(one.eval()(x), dpt_reference([x], weights(one)), rtol=1e-5, atol=1e-5)
    two = [analyze("dpt", inputs=["64x8x8", "64x8x8"], out=C, options=o, time=False) for o in ({}, {"variant": "reference"})]
    assert two[0].params == two[1].params and not two[1].unused_params  # two inputs: the same block


def test_params_with_projections():
    C = 128
    # 1x1 projections (with bias) for the 96- and 256-wide inputs, then the usual block
    expected = (96 * C + C) + (256 * C + C) + 2 * 2 * (9 * C * C + C) + (C * C + C)
    r = analyze("dpt", inputs=["96x16x16", "256x16x16"], out=C, options={"project": True}, time=False)
    assert r.params["total"] == expected


# ----------------------------------------------------------------------------- MACs

def test_macs_vitb_level():
    C, H, W = 256, 24, 24
    # four 3x3 convs C -> C at HxW, then the 1x1 out conv at the upsampled 2H x 2W
    expected = 4 * 9 * C * C * H * W + C * C * (2 * H) * (2 * W)
    r = analyze("dpt", inputs=["256x24x24", "256x24x24"], out=C, time=False)
    assert r.cost.macs == expected == 1_509_949_440
    assert r.outputs == [[1, 256, 48, 48]]


def test_macs_one_input_fractional_scale_expand():
    C, H, W = 64, 10, 15
    oh, ow = 15, 22  # floor(10 * 1.5), floor(15 * 1.5)
    expected = 2 * 9 * C * C * H * W + C * (C // 2) * oh * ow
    r = analyze("dpt", inputs=["64x10x15"], out=C, options={"scale_factor": 1.5, "expand": True}, time=False)
    assert r.cost.macs == expected
    assert r.outputs == [[1, 32, oh, ow]]


def test_macs_fixed_size_depth_anything():
    C = 128
    # Depth-Anything vitb refinenet4: one 128x19x19 input upsampled to 37x37
    expected = 2 * 9 * C * C * 19 * 19 + C * C * 37 * 37
    r = analyze("dpt", inputs=["128x19x19"], out=C, options={"size": "37,37"}, time=False)
    assert r.cost.macs == expected
    assert r.outputs == [[1, 128, 37, 37]]


# ----------------------------------------------------------------------------- outputs

@pytest.mark.parametrize("bn", [False, True])
def test_two_inputs_match_reimplementation(bn):
    torch.manual_seed(0)
    block = create_fusion("dpt", [32, 32], 32, bn=bn).eval()
    randomize_bn(block, mean_scale=1.0)
    xs = [rand(2, 32, 6, 7, seed=1), rand(2, 32, 6, 7, seed=2)]
    with torch.no_grad():
        y = block(*xs)
    ref = dpt_reference(xs, weights(block), bn=bn)
    assert y.shape == (2, 32, 12, 14) == (2, *block.output_shape([(32, 6, 7), (32, 6, 7)]))
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)


def test_one_input_size_and_alignment_match_reimplementation():
    torch.manual_seed(0)
    block = create_fusion("dpt", [16], 16, size=(9, 11), expand=True).eval()
    x = rand(1, 16, 5, 4)
    with torch.no_grad():
        y = block(x)
    torch.testing.assert_close(y, dpt_reference([x], weights(block), size=(9, 11)), rtol=1e-5, atol=1e-5)
    assert y.shape == (1, 8, 9, 11)

    block = create_fusion("dpt", [16, 16], 16).eval()
    xs = [rand(1, 16, 4, 4, seed=4), rand(1, 16, 8, 8, seed=5)]  # the coarse path is upsampled to 8x8
    with torch.no_grad():
        y = block(*xs)
    torch.testing.assert_close(y, dpt_reference(xs, weights(block)), rtol=1e-5, atol=1e-5)
    assert y.shape == (1, 16, 16, 16) == (1, *block.output_shape([(16, 4, 4), (16, 8, 8)]))


def test_projection_matches_reimplementation():
    torch.manual_seed(0)
    block = create_fusion("dpt", [24, 16], 16, project=True).eval()
    xs = [rand(1, 24, 5, 5, seed=6), rand(1, 16, 5, 5, seed=7)]
    with torch.no_grad():
        y = block(*xs)
    torch.testing.assert_close(y, dpt_reference(xs, weights(block), project=(0,)), rtol=1e-5, atol=1e-5)


def test_square_size_from_one_value():
    block = create_fusion("dpt", [8], 8, size="20")
    assert block.output_shape([(8, 7, 9)]) == (8, 20, 20)


# ----------------------------------------------------------------------------- bad inputs

def test_width_mismatch_names_the_fix():
    with pytest.raises(SpecError, match=r"needs every input width equal to out_channels 256.*got 96, 256.*project=True"):
        create_fusion("dpt", [96, 256], 256)


@pytest.mark.parametrize("options,match", [
    ({"scale_factor": 0}, "scale_factor"),
    ({"scale_factor": -2.0}, "scale_factor"),
    ({"size": "1,2,3"}, "size"),
    ({"size": "0,4"}, "size"),
])
def test_bad_resize_options(options, match):
    with pytest.raises(SpecError, match=match):
        create_fusion("dpt", [8, 8], 8, **options)


def test_expand_needs_two_channels():
    with pytest.raises(SpecError, match="expand"):
        create_fusion("dpt", [1], 1, expand=True)


def test_at_most_two_inputs():
    with pytest.raises(SpecError, match="1 to 2"):
        create_fusion("dpt", [8, 8, 8], 8)
