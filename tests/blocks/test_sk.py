"""SK fusion: hand-derived parameter and MAC counts, the paper formula recomputed with
torch.nn.functional, timm's split-input reference variant, and the spec errors.

Notation: S = sum of input widths, C = out, K = number of branches, d = attention width.
Branch k (conv k x k, no bias, groups g, + BN): (S/g)*k^2*C + 2C parameters and
(S/g)*k^2*C*H*W MACs. Attention: fc_reduce C*d, BN 2d, fc_select d*K*C parameters; the
same C*d + d*K*C MACs (they act on 1x1 maps).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fusioncli import create_fusion
from fusioncli.analysis import analyze
from fusioncli.errors import SpecError

from .helpers import randomize_bn


def counts(inputs, out, **options):
    r = analyze("sk", inputs=inputs, out=out, options=options, time=False)
    return r.params["total"], r.cost.macs, r.outputs[0]


def test_paper_default_counts():
    # S = 128, C = 64, kernels 3 and 5, d = max(64/16, 32) = 32
    params, macs, out = counts(["64x32x32", "64x32x32"], 64)
    assert params == (128 * 9 * 64 + 2 * 64) + (128 * 25 * 64 + 2 * 64) + 64 * 32 + 2 * 32 + 32 * 2 * 64 == 284_992
    assert macs == 128 * 64 * (9 + 25) * 32 * 32 + 64 * 32 + 32 * 128 == 285_218_816
    assert out == [1, 64, 32, 32]


def test_paper_default_counts_mismatched_inputs():
    # 96x8x8 is resized to 16x16; same parameters, MACs at 16x16
    params, macs, out = counts(["32x16x16", "96x8x8"], 64)
    assert params == 284_992
    assert macs == 128 * 64 * 34 * 16 * 16 + 64 * 32 + 32 * 128 == 71_309_312
    assert out == [1, 64, 16, 16]


def test_project_dilate_groups_counts():
    # project: 1x1 128 -> 64 (no bias) + BN; three branches 3x3 (dilations 1, 2, 3), groups 32 on 64
    # channels: (64/32)*9*64 + 2*64 each; d = 32, K = 3
    params, macs, out = counts(["32x16x16", "96x8x8"], 64, project=True, dilate=True, groups=32, kernels=(3, 5, 7))
    assert params == (128 * 64 + 2 * 64) + 3 * (2 * 9 * 64 + 2 * 64) + 64 * 32 + 2 * 32 + 32 * 3 * 64 == 20_416
    assert macs == 128 * 64 * 256 + 3 * 2 * 9 * 64 * 256 + 64 * 32 + 32 * 192 == 2_990_080
    assert out == [1, 64, 16, 16]


def test_sknet50_conv2_unit():
    # SKNet-50 conv2: 128 -> 128, G = 32, M = 2 (3x3, dilated 3x3), fc [32, 128]
    params, macs, _ = counts(["128x56x56"], 128, dilate=True, groups=32)
    assert params == 2 * (4 * 9 * 128 + 2 * 128) + 128 * 32 + 2 * 32 + 32 * 256 == 22_080
    assert macs == 2 * 4 * 9 * 128 * 56 * 56 + 128 * 32 + 32 * 256 == 28_913_664


def test_reference_variant_splits_input_and_rounds_width():
    # timm: branch k sees S/K = 64 channels; d = make_divisible(64/16 = 4, 8) = 8
    params, macs, _ = counts(["64x32x32", "64x32x32"], 64, variant="reference")
    assert params == (64 * 9 * 64 + 128) + (64 * 25 * 64 + 128) + 64 * 8 + 2 * 8 + 8 * 128 == 141_072
    assert macs == 64 * 64 * 34 * 32 * 32 + 64 * 8 + 8 * 128 == 142_607_872


@pytest.mark.parametrize("c,paper,reference", [(64, 32, 8), (200, 32, 16), (1024, 64, 64)])
def test_attention_width(c, paper, reference):
    assert create_fusion("sk", [c], c).rd_channels == paper
    assert create_fusion("sk", [c], c, variant="reference").rd_channels == reference


def _bn(x, bn):
    return F.batch_norm(x, bn.running_mean.clone(), bn.running_var.clone(), bn.weight.detach().clone(),
                        bn.bias.detach().clone(), False, 0.0, bn.eps)


def _formula(block, xs, kernels, dilations, split):
    """V = sum_k softmax_k(A z) * U_k, z = ReLU(BN(W GAP(sum U_k))), U_k = ReLU(BN(conv_k(X)))."""
    x = torch.cat(xs, dim=1)
    parts = torch.chunk(x, len(kernels), dim=1) if split else [x] * len(kernels)
    us = []
    for xk, path, k, dil in zip(parts, block.paths, kernels, dilations):
        w = path[0].weight.detach().clone()
        us.append(F.relu(_bn(F.conv2d(xk, w, padding=dil * (k - 1) // 2, dilation=dil, groups=path[0].groups), path[1])))
    s = sum(us).mean((2, 3), keepdim=True)
    z = F.relu(_bn(F.conv2d(s, block.fc_reduce.weight.detach().clone()), block.bn))
    logits = F.conv2d(z, block.fc_select.weight.detach().clone())
    b, c = x.shape[0], block.out_channels
    a = torch.exp(logits.view(b, len(kernels), c, 1, 1))
    a = a / a.sum(1, keepdim=True)
    return sum(a[:, i] * u for i, u in enumerate(us))


@pytest.mark.parametrize("variant,dilate", [("paper", False), ("paper", True), ("reference", True)])
def test_output_equals_formula(variant, dilate):
    torch.manual_seed(0)
    block = create_fusion("sk", [24, 40], 32, variant=variant, dilate=dilate).eval()
    randomize_bn(block, mean_scale=1.0)
    gen = torch.Generator().manual_seed(1)
    xs = [torch.randn(2, 24, 9, 9, generator=gen), torch.randn(2, 40, 9, 9, generator=gen)]
    kernels, dilations = ((3, 3), (1, 2)) if dilate else ((3, 5), (1, 1))
    with torch.no_grad():
        y = block(*xs)
    assert torch.allclose(y, _formula(block, xs, kernels, dilations, variant == "reference"), atol=1e-5)
    if variant == "reference":
        assert [p[0].in_channels for p in block.paths] == [32, 32]


def test_reference_branch_sees_only_its_split():
    # S = 64 + 64 split in two: path 0 reads X1 only, so with path 1 constant the output ignores X2's values
    block = create_fusion("sk", [64, 64], 64, variant="reference").eval()
    torch.nn.init.zeros_(block.paths[1][0].weight)
    x1, x2 = torch.randn(1, 64, 8, 8), torch.randn(1, 64, 8, 8)
    with torch.no_grad():
        assert torch.equal(block(x1, x2), block(x1, 5 * x2))


@pytest.mark.parametrize("widths,out,options,match", [
    ([64, 64], 64, {"kernels": (3,)}, "two or more odd"),
    ([64, 64], 64, {"kernels": (3, 4)}, "two or more odd"),
    ([64, 64], 64, {"groups": 3}, "groups: 3 must divide"),
    ([32, 40], 64, {"groups": 32}, "width 72 and out_channels 64; set project=True"),
    ([32, 33], 64, {"variant": "reference"}, "got 65 channels .* not divisible by 2; set project=True"),
    ([64, 64], 64, {"variant": "reference", "kernels": (3, 5, 7)}, "not divisible by 3"),
    ([64, 64], 64, {"rd_ratio": 0.0}, "rd_ratio"),
    ([64, 64], 64, {"rd_min": 0}, "rd_min"),
    ([64, 64], 64, {"groups": 0}, "groups"),
])
def test_spec_errors(widths, out, options, match):
    with pytest.raises(SpecError, match=match):
        create_fusion("sk", widths, out, **options)


def test_project_lifts_split_constraint():
    block = create_fusion("sk", [32, 33], 64, variant="reference", project=True).eval()
    assert block(torch.randn(1, 32, 8, 8), torch.randn(1, 33, 8, 8)).shape == (1, 64, 8, 8)
