"""hrnet (HRNet exchange unit): the reference forward of seg_hrnet.py (and pose_hrnet.py's nearest upsampling)
transcribed and compared output for output; parameters, MACs and FLOPs by hand; every output in the reports."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from fusioncli import create_fusion
from fusioncli.analysis import analyze

from .helpers import randomize_bn


def conv_bn(x, w, p, stride, relu):
    k = w[f"{p}.0.weight"].shape[-1]
    y = F.conv2d(x, w[f"{p}.0.weight"], None, stride, k // 2)
    y = F.batch_norm(y, w[f"{p}.1.running_mean"], w[f"{p}.1.running_var"], w[f"{p}.1.weight"], w[f"{p}.1.bias"],
                     False, 0.0, 1e-5)
    return F.relu(y) if relu else y


def hrnet_fuse_reference(x, w, upsample):
    """HRNet-Semantic-Segmentation lib/models/seg_hrnet.py HighResolutionModule.forward (fuse part):
    y = x[0] if i == 0 else fuse_layers[i][0](x[0]); for j in 1..n-1: i == j: y + x[j]; j > i: y +
    F.interpolate(fuse_layers[i][j](x[j]), size=x[i]'s, mode='bilinear', align_corners=None); else
    y + fuse_layers[i][j](x[j]); x_fuse.append(relu(y)). fuse_layers[i][j]: j > i: Conv1x1 + BN; j < i: i-j
    (Conv3x3 s2 + BN [+ ReLU but the last]). ``upsample``: 'bilinear', or pose_hrnet's nn.Upsample(nearest)."""
    n = len(x)

    def f(i, j, t):
        if j > i:
            return conv_bn(t, w, f"fuse_layers.{i}.{j}", 1, False)
        for k in range(i - j):
            t = conv_bn(t, w, f"fuse_layers.{i}.{j}.{k}", 2, k < i - j - 1)
        return t

    outs = []
    for i in range(n):
        y = x[0] if i == 0 else f(i, 0, x[0])
        for j in range(1, n):
            if i == j:
                y = y + x[j]
            elif j > i:
                t = f(i, j, x[j])
                if upsample == "bilinear":
                    t = F.interpolate(t, size=list(x[i].shape[-2:]), mode="bilinear", align_corners=None)
                else:
                    t = F.interpolate(t, scale_factor=2 ** (j - i), mode="nearest")
                y = y + t
            else:
                y = y + f(i, j, x[j])
        outs.append(F.relu(y))
    return outs


@pytest.mark.parametrize("widths,sizes,mode", [((8, 16, 32, 64), (16, 8, 4, 2), "bilinear"),
                                               ((6, 10), (12, 6), "bilinear"),
                                               ((8, 12, 20), (16, 8, 4), "nearest")])
def test_hrnet_equals_reference(widths, sizes, mode):
    torch.manual_seed(0)
    block = create_fusion("hrnet", list(widths), widths[0], resize_mode=mode).eval()
    randomize_bn(block)
    w = {k: v.detach().clone() for k, v in block.state_dict().items()}
    gen = torch.Generator().manual_seed(1)
    xs = [torch.randn(2, c, s, s + 2 * (s // 2), generator=gen) for c, s in zip(widths, sizes)]
    with torch.no_grad():
        ys = block(*xs)
        expected = hrnet_fuse_reference(list(xs), w, mode)
    assert len(ys) == len(widths)
    for y, e in zip(ys, expected):
        torch.testing.assert_close(y, e, rtol=1e-5, atol=1e-5)


def test_hrnet_w18_by_hand():
    # HRNetV2-W18 stage-4 exchange at 512x512: C = 18, 36, 72, 144 at 128^2, 64^2, 32^2, 16^2
    C, hw = (18, 36, 72, 144), (128 * 128, 64 * 64, 32 * 32, 16 * 16)
    up = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]          # (output i, coarser input j): 1x1 Cj -> Ci + BN
    params_up = sum(C[j] * C[i] + 2 * C[i] for i, j in up)
    params_down = (9 * 18 * 36 + 2 * 36                                  # (1, 0): 3x3 s2 18 -> 36
                   + (9 * 18 * 18 + 2 * 18) + (9 * 18 * 72 + 2 * 72)     # (2, 0): 18 -> 18, 18 -> 72
                   + 9 * 36 * 72 + 2 * 72                                # (2, 1)
                   + 2 * (9 * 18 * 18 + 2 * 18) + (9 * 18 * 144 + 2 * 144)  # (3, 0)
                   + (9 * 36 * 36 + 2 * 36) + (9 * 36 * 144 + 2 * 144)   # (3, 1)
                   + 9 * 72 * 144 + 2 * 144)                             # (3, 2)
    macs_up = (36 * 18 * hw[1] + 72 * 18 * hw[2] + 144 * 18 * hw[3]     # at the coarse input's size
               + 72 * 36 * hw[2] + 144 * 36 * hw[3] + 144 * 72 * hw[3])
    macs_down = (9 * 18 * 36 * hw[1]
                 + 9 * 18 * 18 * hw[1] + 9 * 18 * 72 * hw[2]
                 + 9 * 36 * 72 * hw[2]
                 + 9 * 18 * 18 * hw[1] + 9 * 18 * 18 * hw[2] + 9 * 18 * 144 * hw[3]
                 + 9 * 36 * 36 * hw[2] + 9 * 36 * 144 * hw[3]
                 + 9 * 72 * 144 * hw[3])
    macs = macs_up + macs_down
    N = [c * a for c, a in zip(C, hw)]  # elements of each branch
    bn_up = sum(4 * C[i] * hw[j] for i, j in up)                          # BN after each 1x1, at the coarse size
    resize = sum(7 * N[i] for i, j in up)                                 # bilinear to the finer size
    down_out = (N[1]                                                      # elements out of every stride-2 conv
                + 18 * hw[1] + N[2] + N[2]
                + 18 * hw[1] + 18 * hw[2] + N[3] + 36 * hw[2] + N[3] + N[3])
    relu_mid = 18 * hw[1] + 18 * hw[1] + 18 * hw[2] + 36 * hw[2]         # ReLU after all but the last conv of a chain
    sums = sum(3 * n for n in N)                                          # 4 terms per output: 3 adds
    relu_out = sum(N)
    flops = 2 * macs + bn_up + resize + 4 * down_out + relu_mid + sums + relu_out
    r = analyze("hrnet", time=False)
    assert r.params["total"] == params_up + params_down
    assert (r.cost.macs, r.cost.flops) == (macs, flops)
    assert r.cost.uncounted_ops == {}
    assert r.outputs == [[1, 18, 128, 128], [1, 36, 64, 64], [1, 72, 32, 32], [1, 144, 16, 16]]


def test_every_output_is_shown():
    from cli_helpers import run_main

    code, out, err = run_main("inspect", "hrnet", "--no-time")
    assert code == 0, err
    head = " ".join(out.split())
    for i, s in enumerate(["1x18x128x128", "1x36x64x64", "1x72x32x32", "1x144x16x16"]):
        assert f"out[{i}]={s}" in head
    code, out, err = run_main("compare", "hrnet", "concat", "--no-time", "--format", "json")
    r = json.loads(out)["reports"][0]
    assert r["outputs"] == [[1, 18, 128, 128], [1, 36, 64, 64], [1, 72, 32, 32], [1, 144, 16, 16]]
    assert r["output_paths"] == ["out[0]", "out[1]", "out[2]", "out[3]"]
    code, out, err = run_main("compare", "hrnet", "concat", "--no-time", "--format", "csv")
    assert "1x18x128x128 1x36x64x64 1x72x32x32 1x144x16x16" in out.splitlines()[1]
    code, out, err = run_main("compare", "hrnet", "concat", "--no-time")
    assert "18x128x128 36x64x64 72x32x32 144x16x16 -> 18x128x128 36x64x64 72x32x32 144x16x16" in " ".join(out.split())


@pytest.mark.parametrize("args,word", [(["--in", "8x16x16", "--in", "16x4x4", "--out", "8"], "halved"),
                                       (["--in", "8x16x16", "--in", "16x8x8", "--out", "16"], "allowed: 8")])
def test_bad_inputs_are_one_line(args, word):
    from cli_helpers import run_main

    code, out, err = run_main("inspect", "hrnet", *args, "--no-time")
    assert code == 2 and len(err.strip().splitlines()) == 1 and word in err, err
