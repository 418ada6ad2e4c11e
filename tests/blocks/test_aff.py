"""AFF and iAFF: counts by hand, a functional reimplementation, the reference-code variant, bad inputs."""

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


def branch(s, w, name, pooled):
    """conv1x1 -> BN -> ReLU -> conv1x1 -> BN, after GAP when pooled (open-aff layer indices)."""
    o = 1 if pooled else 0

    def bn(t, i):
        p = f"{name}.{i + o}"
        return F.batch_norm(t, w[f"{p}.running_mean"], w[f"{p}.running_var"], w[f"{p}.weight"], w[f"{p}.bias"],
                            False, 0.0, 1e-5)

    if pooled:
        s = s.mean(dim=(2, 3), keepdim=True)
    t = F.relu(bn(F.conv2d(s, w[f"{name}.{o}.weight"], w[f"{name}.{o}.bias"]), 1))
    return bn(F.conv2d(t, w[f"{name}.{3 + o}.weight"], w[f"{name}.{3 + o}.bias"]), 4)


def ms_cam(s, w, local, glob):
    return torch.sigmoid(branch(s, w, local, False) + branch(s, w, glob, True))


def aff_reference(x, y, w):
    m = ms_cam(x + y, w, "local_att", "global_att")
    return m * x + (1 - m) * y


def iaff_reference(x, y, w, second_global="global_att2"):
    m = ms_cam(x + y, w, "local_att", "global_att")
    i = m * x + (1 - m) * y
    m2 = ms_cam(i, w, "local_att2", second_global)
    return m2 * x + (1 - m2) * y


def rand(*shape, seed=1):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def ms_cam_params(C, r):
    Cr = C // r
    # per branch: conv C->Cr (+bias), BN(Cr) weight+bias, conv Cr->C (+bias), BN(C) weight+bias
    return 2 * ((C * Cr + Cr) + 2 * Cr + (Cr * C + C) + 2 * C)


# ----------------------------------------------------------------------------- parameters

def test_params_by_hand():
    assert ms_cam_params(64, 4) == 4576
    assert analyze("aff", inputs=["64x32x32"] * 2, out=64, time=False).params["total"] == 4576
    # ResNet-50 stage 4 width with the ImageNet ratio r = 16: Cr = 128
    expected = 2 * ((2048 * 128 + 128) + 2 * 128 + (128 * 2048 + 2048) + 2 * 2048)
    r = analyze("aff", inputs=["2048x7x7"] * 2, out=2048, options={"r": 16}, time=False)
    assert r.params["total"] == expected == 1_061_632


@pytest.mark.parametrize("variant", ["paper", "reference"])
def test_iaff_params_are_two_ms_cams(variant):
    r = analyze("iaff", inputs=["64x32x32"] * 2, out=64, options={"variant": variant}, time=False)
    assert r.params["total"] == 2 * 4576


def test_params_with_projections():
    # 1x1 projections (with bias) of the 32- and 96-wide inputs to 64, then one MS-CAM
    r = analyze("aff", inputs=["32x16x16", "96x8x8"], out=64, options={"project": True}, time=False)
    assert r.params["total"] == (32 * 64 + 64) + (96 * 64 + 64) + 4576


# ----------------------------------------------------------------------------- MACs

@pytest.mark.parametrize("shape,C,r", [((64, 32, 32), 64, 4), ((256, 56, 56), 256, 16)])
def test_aff_macs(shape, C, r):
    _, H, W = shape
    Cr = C // r
    # local branch: two 1x1 convs at HxW; global branch: the same on the 1x1 pooled map
    expected = 2 * C * Cr * H * W + 2 * C * Cr
    res = analyze("aff", inputs=["x".join(map(str, shape))] * 2, out=C, options={"r": r}, time=False)
    assert res.cost.macs == expected
    iaff = analyze("iaff", inputs=["x".join(map(str, shape))] * 2, out=C, options={"r": r}, time=False)
    assert iaff.cost.macs == 2 * expected


def test_macs_with_projection_at_the_aligned_size():
    C, Cr = 64, 16
    # both inputs aligned to 16x16 first, then projected 32 -> 64 and 96 -> 64
    expected = (32 * C + 96 * C) * 16 * 16 + 2 * C * Cr * 16 * 16 + 2 * C * Cr
    r = analyze("aff", inputs=["32x16x16", "96x8x8"], out=C, options={"project": True}, time=False)
    assert r.cost.macs == expected
    assert r.outputs == [[1, 64, 16, 16]]


# ----------------------------------------------------------------------------- outputs

def test_aff_matches_reimplementation():
    torch.manual_seed(0)
    block = create_fusion("aff", [32, 32], 32).eval()
    randomize_bn(block)
    x, y = rand(2, 32, 7, 6, seed=1), rand(2, 32, 7, 6, seed=2)
    with torch.no_grad():
        z = block(x, y)
    torch.testing.assert_close(z, aff_reference(x, y, weights(block)), rtol=1e-5, atol=1e-5)


def test_aff_aligns_the_smaller_input():
    torch.manual_seed(0)
    block = create_fusion("aff", [16, 16], 16).eval()
    x, y = rand(1, 16, 4, 4, seed=1), rand(1, 16, 8, 8, seed=2)
    with torch.no_grad():
        z = block(x, y)
    xu = F.interpolate(x, size=(8, 8), mode="bilinear", align_corners=False)
    torch.testing.assert_close(z, aff_reference(xu, y, weights(block)), rtol=1e-5, atol=1e-5)
    assert z.shape == (1, *block.output_shape([(16, 4, 4), (16, 8, 8)])) == (1, 16, 8, 8)


def test_iaff_matches_reimplementation():
    torch.manual_seed(0)
    block = create_fusion("iaff", [32, 32], 32, r=8).eval()
    randomize_bn(block)
    x, y = rand(2, 32, 5, 9, seed=1), rand(2, 32, 5, 9, seed=2)
    with torch.no_grad():
        z = block(x, y)
    torch.testing.assert_close(z, iaff_reference(x, y, weights(block)), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- variant=reference

def test_aff_reference_variant_doubles():
    torch.manual_seed(0)
    paper = create_fusion("aff", [32, 32], 32).eval()
    ref = create_fusion("aff", [32, 32], 32, variant="reference").eval()
    ref.load_state_dict(paper.state_dict())
    x, y = rand(2, 32, 6, 6, seed=1), rand(2, 32, 6, 6, seed=2)
    with torch.no_grad():
        expected = 2 * x * (m := ms_cam(x + y, weights(paper), "local_att", "global_att")) + 2 * y * (1 - m)
        torch.testing.assert_close(ref(x, y), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ref(x, y), 2 * paper(x, y), rtol=1e-5, atol=1e-5)


def test_iaff_reference_variant_reuses_global_att():
    torch.manual_seed(0)
    block = create_fusion("iaff", [32, 32], 32, variant="reference").eval()
    randomize_bn(block)
    x, y = rand(2, 32, 6, 6, seed=1), rand(2, 32, 6, 6, seed=2)
    with torch.no_grad():
        z = block(x, y)
        torch.testing.assert_close(z, iaff_reference(x, y, weights(block), "global_att"), rtol=1e-5, atol=1e-5)
        for p in block.global_att2.parameters():
            p.add_(1.0)
        torch.testing.assert_close(block(x, y), z)
        block.variant = "paper"
        assert not torch.allclose(block(x, y), z)


def test_iaff_reference_reports_global_att2_unused():
    ref = analyze("iaff", options={"variant": "reference"}, time=False)
    assert ref.unused_params and all(n.startswith("global_att2.") for n in ref.unused_params)
    assert analyze("iaff", time=False).unused_params == []


def test_state_dict_keys_follow_open_aff():
    keys = set(create_fusion("iaff", [64, 64], 64).state_dict())
    for name in ("local_att", "local_att2"):
        assert {f"{name}.0.weight", f"{name}.1.running_var", f"{name}.3.weight", f"{name}.4.bias"} <= keys
    for name in ("global_att", "global_att2"):
        assert {f"{name}.1.weight", f"{name}.2.running_var", f"{name}.4.weight", f"{name}.5.bias"} <= keys


# ----------------------------------------------------------------------------- bad inputs

@pytest.mark.parametrize("kind", ["aff", "iaff"])
def test_width_mismatch_names_the_fix(kind):
    with pytest.raises(SpecError, match=rf"'{kind}' needs every input width equal to out_channels 64.*got 32, 64.*project=True"):
        create_fusion(kind, [32, 64], 64)
    with pytest.raises(SpecError, match="got 32, 32"):
        create_fusion(kind, [32, 32], 64)


@pytest.mark.parametrize("r", [0, 65])
def test_bad_reduction_ratio(r):
    with pytest.raises(SpecError, match="^r: invalid value"):
        create_fusion("aff", [64, 64], 64, r=r)


def test_exactly_two_inputs():
    with pytest.raises(SpecError, match="exactly 2"):
        create_fusion("aff", [64, 64, 64], 64)
