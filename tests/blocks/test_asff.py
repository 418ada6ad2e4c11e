"""ASFF: parameter and MAC formulas for the YOLOv3 levels, the resizing paths of the
reference (GOATmessi8/ASFF ``models/network_blocks.py``), and bad inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fusioncli import create_fusion
from fusioncli.analysis import analyze
from fusioncli.errors import SpecError

YOLO = [512, 256, 256]  # level widths of YOLOv3-ASFF, coarse to fine (13, 26, 52 at 416)
YOLO_SHAPES = ["512x13x13", "256x26x26", "256x52x52"]


def n_params(block):
    return sum(p.numel() for p in block.parameters())


def add_conv(cin, cout, k):
    return cin * cout * k * k + 2 * cout  # conv without bias + BN


def weights(d, c=16, n=3):
    return n * add_conv(d, c, 1) + (n * c * n + n)  # weight_level_i + weight_levels (with bias)


def test_params_yolov3_level0():
    d = 512
    expected = add_conv(256, d, 3) + add_conv(256, d, 3) + weights(d) + add_conv(d, 1024, 3)
    assert expected == 7106803
    assert n_params(create_fusion("asff", YOLO, 1024, level=0)) == expected


def test_params_yolov3_level1_and_level2():
    d = 256
    level1 = add_conv(512, d, 1) + add_conv(256, d, 3) + weights(d) + add_conv(d, 512, 3)
    assert n_params(create_fusion("asff", YOLO, 512, level=1)) == level1 == 1915123
    level2 = add_conv(512, d, 1) + weights(d) + add_conv(d, 256, 3)  # level 1 is 256 wide: no compress
    assert n_params(create_fusion("asff", YOLO, 256, level=2)) == level2 == 734451


def test_macs_yolov3_level0():
    r = analyze("asff", inputs=YOLO_SHAPES, out=1024, options={"level": 0}, time=False)
    hw = 13 * 13
    stride_convs = 2 * 9 * 256 * 512 * hw  # level 1 and (after max-pool) level 2, both land on 13x13
    weight = 3 * 512 * 16 * hw + 48 * 3 * hw
    expand = 9 * 512 * 1024 * hw
    assert r.cost.macs == stride_convs + weight + expand


def test_macs_level2_compress_before_upsampling():
    r = analyze("asff", inputs=["128x8x8", "64x16x16", "32x32x32"], out=64, options={"level": 2}, time=False)
    d, hw = 32, 32 * 32
    compress = 128 * d * 8 * 8 + 64 * d * 16 * 16
    weight = 3 * d * 16 * hw + 48 * 3 * hw
    expand = 9 * d * 64 * hw
    assert r.cost.macs == compress + weight + expand


def test_output_at_target_level():
    block = create_fusion("asff", YOLO, 512, level=1).eval()
    shapes = [(512, 13, 13), (256, 26, 26), (256, 52, 52)]
    assert block.output_shape(shapes) == (512, 26, 26)
    with torch.no_grad():
        y = block(*[torch.randn(1, *s) for s in shapes])
    assert y.shape == (1, 512, 26, 26)


def test_level0_matches_reference_steps():
    block = create_fusion("asff", [32, 16, 16], 24, level=0).eval()
    xs = [torch.randn(2, 32, 4, 4), torch.randn(2, 16, 8, 8), torch.randn(2, 16, 16, 16)]

    def add_conv_f(seq, x, stride):
        conv, bn = seq[0], seq[1]
        x = F.conv2d(x, conv.weight, None, stride, conv.padding)
        return F.leaky_relu(F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0, bn.eps), 0.1)

    with torch.no_grad():
        r0 = xs[0]
        r1 = add_conv_f(block.resample[1][0], xs[1], 2)
        r2 = add_conv_f(block.resample[2][1], F.max_pool2d(xs[2], 3, stride=2, padding=1), 2)
        v = torch.cat([add_conv_f(w, r, 1) for w, r in zip(block.weight_level, (r0, r1, r2))], 1)
        a = F.softmax(F.conv2d(v, block.weight_levels.weight, block.weight_levels.bias), dim=1)
        fused = r0 * a[:, 0:1] + r1 * a[:, 1:2] + r2 * a[:, 2:]
        want = add_conv_f(block.expand, fused, 1)
        torch.testing.assert_close(block(*xs), want, rtol=1e-4, atol=1e-5)


def test_leaky_false_uses_relu6():
    block = create_fusion("asff", YOLO, 1024, leaky=False)
    acts = {type(m).__name__ for m in block.modules() if type(m).__name__ in ("LeakyReLU", "ReLU6")}
    assert acts == {"ReLU6"}


def test_bad_level():
    with pytest.raises(SpecError, match=r"level.*allowed: 0 to 2"):
        create_fusion("asff", YOLO, 1024, level=3)


def test_bad_compress_c():
    with pytest.raises(SpecError, match="compress_c"):
        create_fusion("asff", YOLO, 1024, compress_c=0)


def test_fine_first_order_is_rejected():
    block = create_fusion("asff", [256, 256, 512], 1024)
    xs = [torch.empty(1, 256, 52, 52, device="meta"), torch.empty(1, 256, 26, 26, device="meta"),
          torch.empty(1, 512, 13, 13, device="meta")]
    with pytest.raises(SpecError, match="coarse to fine"):
        block.to("meta")(*xs)
