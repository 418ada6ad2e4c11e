"""GFF: counts by hand, a functional reimplementation of both variants, bad inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fusioncli import create_fusion
from fusioncli.analysis import analyze
from fusioncli.errors import SpecError

from .helpers import randomize_bn


def rand(shapes, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn((2, *s), generator=gen) for s in shapes]


def gff_by_hand(xs, w, target, sequential, align_corners):
    """X~_i = (1 + G_i) P_i + (1 - G_i) sum_{j != i} up(G_j P_j); sequential: the reference's in-place order."""
    n = len(xs)
    g = [torch.sigmoid(F.conv2d(x, w[f"gate.{i}.0.weight"], w[f"gate.{i}.0.bias"])) for i, x in enumerate(xs)]
    p = [F.relu(F.batch_norm(F.conv2d(x, w[f"proj.{i}.0.weight"]), w[f"proj.{i}.1.running_mean"],
                             w[f"proj.{i}.1.running_var"], w[f"proj.{i}.1.weight"], w[f"proj.{i}.1.bias"],
                             False, 0.0, 1e-5)) for i, x in enumerate(xs)]

    def up(t, size):
        return t if t.shape[-2:] == size else F.interpolate(t, size=size, mode="bilinear", align_corners=align_corners)

    def fuse(i, feats):
        size = feats[i].shape[-2:]
        s = sum(up(g[j] * feats[j], size) for j in range(n) if j != i)
        return feats[i] + g[i] * feats[i] + (1 - g[i]) * s

    if not sequential:
        return fuse(target, p)
    for i in range(target + 1):
        p[i] = fuse(i, p)
    return p[target]


SHAPES = [(24, 16, 16), (40, 8, 8), (56, 4, 4)]


@pytest.mark.parametrize("target", [0, 1, 2, -1])
@pytest.mark.parametrize("variant", ["paper", "reference"])
def test_forward_equals_formula(variant, target):
    torch.manual_seed(0)
    ref = variant == "reference"
    block = create_fusion("gff", [s[0] for s in SHAPES], 16, variant=variant, target=target).eval()
    assert block.align_corners is ref  # the reference variant implies the code's align_corners=True
    randomize_bn(block)
    w = {k: v.detach().clone() for k, v in block.state_dict().items()}
    xs = rand(SHAPES)
    with torch.no_grad():
        y = block(*xs)
    t = target % 3
    expected = gff_by_hand(xs, w, t, sequential=ref, align_corners=ref)
    assert y.shape == (2, 16, *SHAPES[t][1:])
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)


def test_reference_variant_differs_in_gate_width_and_update_order():
    paper = create_fusion("gff", [24, 40, 56], 16)
    ref = create_fusion("gff", [24, 40, 56], 16, variant="reference")
    assert [g[0].out_channels for g in paper.gate] == [1, 1, 1]
    assert [g[0].out_channels for g in ref.gate] == [16, 16, 16]
    # With the same (C-channel) gates, the sequential update changes every level after the first.
    torch.manual_seed(0)
    blk = create_fusion("gff", [s[0] for s in SHAPES], 16, variant="reference", target=2).eval()
    randomize_bn(blk)
    w = {k: v.detach().clone() for k, v in blk.state_dict().items()}
    xs = rand(SHAPES)
    seq = gff_by_hand(xs, w, 2, sequential=True, align_corners=True)
    par = gff_by_hand(xs, w, 2, sequential=False, align_corners=True)
    assert not torch.allclose(seq, par)


def test_align_corners_set_overrides_the_variant():
    torch.manual_seed(0)
    block = create_fusion("gff", [s[0] for s in SHAPES], 16, variant="reference", align_corners=False).eval()
    randomize_bn(block)
    w = {k: v.detach().clone() for k, v in block.state_dict().items()}
    xs = rand(SHAPES)
    with torch.no_grad():
        torch.testing.assert_close(block(*xs), gff_by_hand(xs, w, 0, sequential=True, align_corners=False),
                                   rtol=1e-5, atol=1e-5)
    assert create_fusion("gff", [8, 8], 8, align_corners=True).align_corners is True


def test_parameter_count_by_hand():
    # paper: sum_i (Ci*C + 2C) + sum_i (Ci + 1)
    c_in, c = [256, 512, 1024], 128
    paper = (256 * 128 + 2 * 128) + (512 * 128 + 2 * 128) + (1024 * 128 + 2 * 128) + (257 + 513 + 1025)
    assert paper == 231_939
    assert sum(p.numel() for p in create_fusion("gff", c_in, c).parameters()) == paper
    # reference: sum_i (Ci*C + 2C) + sum_i (Ci*C + C)
    ref = (32 * 16 + 32) + (64 * 16 + 32) + (32 * 16 + 16) + (64 * 16 + 16)
    assert ref == 3168
    assert sum(p.numel() for p in create_fusion("gff", [32, 64], 16, variant="reference").parameters()) == ref


def test_macs_by_hand():
    # projections sum_i Ci*C*Hi*Wi, gates sum_i Ci*1*Hi*Wi (paper); every level is projected whatever the target
    r = analyze("gff", inputs=["256x64x64", "512x32x32", "1024x16x16"], out=128, time=False)
    proj = 256 * 128 * 64 * 64 + 512 * 128 * 32 * 32 + 1024 * 128 * 16 * 16
    gate = 256 * 64 * 64 + 512 * 32 * 32 + 1024 * 16 * 16
    assert r.cost.macs == proj + gate == 236_716_032
    assert r.outputs == [[1, 128, 64, 64]]
    # reference gates are C wide: twice the projection MACs
    r = analyze("gff", inputs=["32x16x16", "64x8x8"], out=16, options={"variant": "reference", "target": 1},
                time=False)
    assert r.cost.macs == 2 * (32 * 16 * 16 * 16 + 64 * 16 * 8 * 8) == 393_216
    assert r.outputs == [[1, 16, 8, 8]]
    assert r.unused_params == []


@pytest.mark.parametrize("target", [3, -4])
def test_bad_target(target):
    with pytest.raises(SpecError, match="target"):
        create_fusion("gff", [32, 64, 128], 16, target=target)


def test_one_input_is_refused():
    with pytest.raises(SpecError, match="at least 2"):
        create_fusion("gff", [32], 16)
