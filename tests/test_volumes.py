"""Volumes (CxDxHxW): concat, add, gated and se take them (Conv3d, BatchNorm3d, 3-D resizes); the 3-D
pooling and resizing formulas, forward and backward, by hand; BEVFusion's ConvFuser (concat, kernel=3)
against a transcription of the reference; bad ranks and options refused in one line."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fusioncli import create_fusion
from fusioncli.analysis import analyze
from fusioncli.analysis.cost import CostCounter
from fusioncli.analysis.training import count_training
from fusioncli.errors import SpecError

from blocks.helpers import randomize_bn
from cli_helpers import run_main


def test_inspect_3d_concat_from_the_issue():
    code, out, err = run_main("inspect", "concat", "--in", "32x16x64x64", "--in", "64x8x32x32", "--no-time",
                              "--format", "json")
    assert code == 0, err
    r = json.loads(out)["reports"][0]
    assert r["outputs"] == [[1, 64, 16, 64, 64]]
    # by hand: the 64x8x32x32 input resized trilinearly to 16x64x64 (15 per output element), then
    # cat (free) and a 1x1x1 Conv3d 96 -> 64 with bias at 16*64*64 positions
    P = 16 * 64 * 64
    macs = 96 * 64 * P
    flops = 2 * macs + 64 * P + 15 * 64 * P
    assert (r["cost"]["macs"], r["cost"]["flops"]) == (macs, flops) == (402_653_184, 872_415_232)
    assert r["cost"]["uncounted_ops"] == {}
    assert r["params"]["total"] == 96 * 64 + 64


@pytest.mark.parametrize("kind,options", [("concat", {}), ("concat", {"kernel": 3, "norm": "bn", "act": "relu"}),
                                          ("add", {}), ("gated", {}), ("gated", {"granularity": "channel"}),
                                          ("se", {"norm": "bn", "act": "relu"})])
def test_volume_blocks_equal_functional_3d(kind, options):
    torch.manual_seed(0)
    block = create_fusion(kind, [8, 12], 16, dims=3, **options).eval()
    randomize_bn(block)
    w = {k: v.detach().clone() for k, v in block.state_dict().items()}
    gen = torch.Generator().manual_seed(1)
    x1, x2 = torch.randn(2, 8, 4, 6, 6, generator=gen), torch.randn(2, 12, 2, 3, 3, generator=gen)
    x2u = F.interpolate(x2, size=(4, 6, 6), mode="trilinear", align_corners=False)

    def bn(t, p):
        return F.batch_norm(t, w[f"{p}.running_mean"], w[f"{p}.running_var"], w[f"{p}.weight"], w[f"{p}.bias"],
                            False, 0.0, 1e-5)

    if kind == "concat":
        k = options.get("kernel", 1)
        y = F.conv3d(torch.cat([x1, x2u], 1), w["conv.weight"], w.get("conv.bias"), padding=k // 2)
        expected = F.relu(bn(y, "norm")) if options else y
    elif kind == "add":
        expected = F.conv3d(x1, w["proj.0.weight"], w["proj.0.bias"]) + F.conv3d(x2u, w["proj.1.weight"], w["proj.1.bias"])
    elif kind == "gated":
        p1 = F.conv3d(x1, w["proj.0.weight"], w["proj.0.bias"])
        p2 = F.conv3d(x2u, w["proj.1.weight"], w["proj.1.bias"])
        z = torch.cat([p1, p2], 1)
        if options:
            z = z.mean((2, 3, 4), keepdim=True)
        g = torch.sigmoid(F.conv3d(z, w["gate.weight"], w["gate.bias"]))
        expected = g * p1 + (1 - g) * p2
    else:
        y = F.relu(bn(F.conv3d(torch.cat([x1, x2u], 1), w["proj.weight"]), "norm"))
        s = F.conv3d(F.relu(F.conv3d(y.mean((2, 3, 4), keepdim=True), w["fc1.weight"], w["fc1.bias"])),
                     w["fc2.weight"], w["fc2.bias"])
        expected = y * torch.sigmoid(s)
    with torch.no_grad():
        out = block(x1, x2)
    assert out.shape == (2, 16, 4, 6, 6) and tuple(out.shape[1:]) == block.output_shape([(8, 4, 6, 6), (12, 2, 3, 3)])
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def bevfusion_conv_fuser(inputs, conv, bn):
    """mit-han-lab/bevfusion mmdet3d/models/fusers/conv.py ConvFuser: nn.Sequential(Conv2d(sum(in), out, 3,
    padding=1, bias=False), BatchNorm2d(out), ReLU(True)) on torch.cat(inputs, dim=1)."""
    return nn.Sequential(conv, bn, nn.ReLU(True))(torch.cat(inputs, dim=1))


def test_concat_kernel3_is_bevfusion_conv_fuser():
    torch.manual_seed(0)
    block = create_fusion("concat", [8, 24], 16, kernel=3, norm="bn", act="relu").eval()
    randomize_bn(block)
    conv = nn.Conv2d(32, 16, 3, padding=1, bias=False)
    bn = nn.BatchNorm2d(16)
    conv.load_state_dict({"weight": block.conv.weight.detach()})
    bn.load_state_dict(block.norm.state_dict())
    bn.eval()
    gen = torch.Generator().manual_seed(1)
    xs = [torch.randn(2, 8, 9, 9, generator=gen), torch.randn(2, 24, 9, 9, generator=gen)]
    with torch.no_grad():
        torch.testing.assert_close(block(*xs), bevfusion_conv_fuser(xs, conv, bn), rtol=1e-5, atol=1e-5)


def test_bevfusion_preset_counts_by_hand():
    # camera BEV 80x180x180 + LiDAR BEV 256x180x180 -> 256: 3x3 conv 336 -> 256 (no bias), BN, ReLU
    r = analyze("bevfusion-convfuser", time=False)
    P = 180 * 180
    macs = 336 * 256 * 9 * P
    assert r.cost.macs == macs == 25_082_265_600
    assert r.cost.flops == 2 * macs + 4 * 256 * P + 256 * P
    assert r.params["total"] == 336 * 256 * 9 + 2 * 256 == 774_656


def test_unet3d_preset_counts_by_hand():
    # skip 256x16x32x32 + deeper 512x8x16x16 nearest-upsampled (free) -> cat 768 -> 3x3x3 conv to 256 (no bias),
    # BatchNorm3d (4), ReLU (1) at 16*32*32 positions
    r = analyze("unet3d-skip-concat", time=False)
    P = 16 * 32 * 32
    macs = 768 * 256 * 27 * P
    assert r.cost.macs == macs
    assert r.cost.flops == 2 * macs + 5 * 256 * P
    assert r.params["total"] == 768 * 256 * 27 + 2 * 256
    assert r.cost.uncounted_ops == {}


def test_3d_training_backward_by_hand():
    # concat of 8x4x8x8 and 8x2x4x4 -> 16 (1x1x1 conv with bias), trilinear resize of the second input
    r = analyze("concat", inputs=["8x4x8x8", "8x2x4x4"], out=16, time=False, train=True)
    P = 4 * 8 * 8
    fwd = 16 * 16 * P
    assert r.cost.macs == fwd
    b = r.training.backward
    assert b.uncounted_ops == {}
    assert b.grad_weight_macs == fwd and b.grad_input_macs == fwd
    # grad_bias (16*P) and the trilinear backward: 16 per grad_output element (8 channels at the resized size)
    assert b.flops == 4 * fwd + 16 * P + 16 * 8 * P
    assert b.by_op["aten.upsample_trilinear3d_backward"]["flops"] == 16 * 8 * P


class Pools3d(nn.Module):
    def forward(self, x):
        return (F.avg_pool3d(x, 2).sum() + F.max_pool3d(x, (1, 2, 2)).sum() + F.adaptive_max_pool3d(x, 1).sum()
                + F.adaptive_avg_pool3d(x, 2).sum() + F.interpolate(x, scale_factor=2, mode="nearest-exact").sum())


def test_3d_pooling_formulas_forward_and_backward():
    # x: 1x2x4x4x4 (128 elements); outputs: avg_pool3d k=2 -> 2x2x2x2 (16), max_pool3d (1,2,2) -> 2x4x2x2 (32),
    # adaptive max -> 2 (of 128 inputs), adaptive avg 2 -> 16, nearest-exact x2 -> 1024 (free)
    model = Pools3d().eval()
    with torch.no_grad(), CostCounter() as c:
        model(torch.empty(1, 2, 4, 4, 4, device="meta"))
    f = c.result()
    assert f.uncounted == {}
    fwd = {k: v.flops for k, v in f.by_op.items()}
    assert fwd["aten.avg_pool3d"] == 8 * 16
    assert fwd["aten.max_pool3d_with_indices"] == 4 * 32
    assert fwd["aten.adaptive_max_pool3d"] == 128
    assert fwd["aten._adaptive_avg_pool3d"] == 128 + 16
    assert fwd["aten._upsample_nearest_exact3d"] == 0
    b = count_training(model, (torch.empty(1, 2, 4, 4, 4, device="meta", requires_grad=True),), {}).backward
    assert b.uncounted_ops == {}
    assert b.by_op["aten.avg_pool3d_backward"]["flops"] == 8 * 16
    assert b.by_op["aten.max_pool3d_with_indices_backward"]["flops"] == 32
    assert b.by_op["aten.adaptive_max_pool3d_backward"]["flops"] == 2
    assert b.by_op["aten._adaptive_avg_pool3d_backward"]["flops"] == 16 + 128
    assert b.by_op["aten._upsample_nearest_exact3d_backward"]["flops"] == 1024


@pytest.mark.parametrize("args,words", [
    (["aff", "--in", "64x8x32x32", "--in", "64x8x32x32"], ["--in", "'aff' takes CxHxW maps"]),
    (["concat", "--in", "64x8x32x32", "--in", "64x32x32"], ["--in", "CxDxHxW volumes"]),
    (["concat", "--in", "64x8x32x32", "--in", "64x8x32x32", "--set", "dims=2"], ["dims", "dims = 3"]),
    (["concat", "--in", "64x32x32", "--in", "64x32x32", "--set", "dims=3"], ["dims", "dims = 2"]),
    (["gated", "--in", "64x8x32x32", "--in", "64x4x16x16", "--set", "resize_mode=bicubic"], ["resize_mode", "volumes"]),
    (["fpn", "--set", "resize_mode=trilinear"], ["resize_mode", "trilinear"]),
    (["concat", "--set", "kernel=2"], ["kernel", "odd"]),
])
def test_bad_volume_inputs_are_one_line(args, words):
    code, out, err = run_main("inspect", *args, "--no-time")
    assert code == 2 and "Traceback" not in err
    line = err.strip().splitlines()
    assert len(line) == 1, err
    for w in words:
        assert w in line[0], line[0]


def test_dims_option_refused_in_python_for_bad_values():
    with pytest.raises(SpecError, match="dims"):
        create_fusion("concat", [8, 8], 8, dims=4)
