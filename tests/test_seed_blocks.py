"""Hand-derived parameter, MAC and FLOP counts for the seed blocks at two shapes each.

Notation: an HxW map has H*W pixels; a 1x1 conv Cin->Cout has Cin*Cout + Cout (bias)
parameters and Cin*Cout*H*W MACs; fusion-v1 counts 2 FLOPs per MAC, 1 per output element
for each bias add / add / mul / sub / activation, 7 per output element for bilinear resizing.
"""

from __future__ import annotations

import pytest
import torch

from fusioncli import create_fusion
from fusioncli.analysis import analyze


def counts(kind, inputs, out, **options):
    r = analyze(kind, inputs=inputs, out=out, options=options, time=False)
    return r.params["total"], r.cost.macs, r.cost.flops, r.outputs[0]


def test_concat_worked_example():
    # cat 2x64 -> 128 channels, 1x1 conv 128 -> 64 at 32x32
    params, macs, flops, out = counts("concat", ["64x32x32", "64x32x32"], 64)
    assert params == 128 * 64 + 64 == 8_256
    assert macs == 128 * 64 * 32 * 32 == 8_388_608
    assert flops == 2 * macs + 64 * 32 * 32 == 16_842_752
    assert out == [1, 64, 32, 32]


def test_concat_mismatched_inputs_resized_to_first():
    # 96x8x8 is resized (bilinear) to 16x16 before the concat of 32+96+16 = 144 channels
    params, macs, flops, out = counts("concat", ["32x16x16", "96x8x8", "16x16x16"], 48)
    assert params == 144 * 48 + 48
    assert macs == 144 * 48 * 16 * 16
    assert flops == 2 * macs + 48 * 256 + 7 * 96 * 256
    assert out == [1, 48, 16, 16]


def test_add_worked_example_is_parameter_free():
    params, macs, flops, out = counts("add", ["64x32x32", "64x32x32"], 64)
    assert (params, macs) == (0, 0)
    assert flops == 64 * 32 * 32 == 65_536
    assert out == [1, 64, 32, 32]


def test_add_projects_only_mismatched_widths():
    # X1 (32 ch) gets a 1x1 projection 32 -> 64; X2 (64 ch, 8x8) is resized to 16x16
    params, macs, flops, out = counts("add", ["32x16x16", "64x8x8"], 64)
    assert params == 32 * 64 + 64
    assert macs == 32 * 64 * 256
    assert flops == 2 * macs + 64 * 256 + 7 * 64 * 256 + 64 * 256
    assert out == [1, 64, 16, 16]


def test_gated_two_inputs():
    # gate: 1x1 conv 128 -> 64, sigmoid; out = g*a + (1-g)*b: mul, rsub, mul, add
    params, macs, flops, out = counts("gated", ["64x32x32", "64x32x32"], 64)
    n = 64 * 32 * 32
    assert params == 128 * 64 + 64
    assert macs == 128 * 64 * 32 * 32
    assert flops == 2 * macs + n + n + 4 * n
    assert out == [1, 64, 32, 32]


def test_gated_three_inputs_softmax():
    # X3 projected 32 -> 64 (after resize to 32x32); gate 1x1 192 -> 3*64; softmax over 3
    params, macs, flops, out = counts("gated", ["64x32x32", "64x32x32", "32x16x16"], 64)
    hw = 32 * 32
    assert params == (32 * 64 + 64) + (192 * 192 + 192)
    assert macs == 32 * 64 * hw + 192 * 192 * hw
    n = 64 * hw
    expected = (2 * macs + n + 192 * hw  # bias adds of projection and gate
                + 7 * 32 * hw  # bilinear resize of X3
                + 5 * 192 * hw  # softmax over the gate logits
                + 3 * n + 2 * n)  # three weighted products, two adds
    assert flops == expected
    assert out == [1, 64, 32, 32]


def test_gated_spatial_gate_has_one_map():
    params, *_ = counts("gated", ["64x8x8", "64x8x8"], 64, granularity="spatial")
    assert params == 128 * 1 + 1


def test_multiscale_default():
    # cat -> 128 ch; branches 1x1, 3x3, 5x5 to 64 (bias); concat 192; refine 1x1 -> 64
    params, macs, flops, out = counts("multiscale", ["64x32x32", "64x32x32"], 64)
    hw = 32 * 32
    assert params == sum(128 * 64 * k * k + 64 for k in (1, 3, 5)) + 192 * 64 + 64 == 299_264
    assert macs == 128 * 64 * hw * (1 + 9 + 25) + 192 * 64 * hw
    n = 64 * hw
    assert flops == 2 * macs + 4 * n + 4 * n  # 4 bias adds, 4 ReLUs
    assert out == [1, 64, 32, 32]


def test_multiscale_strided_sum_branch():
    # kernels 1 (stride 1) and 3 (stride 2 -> 8x8, resized back to 16x16), merged by sum
    params, macs, flops, out = counts("multiscale", ["32x16x16"], 16, kernels="1,3", strides="1,2", merge="sum")
    assert params == (32 * 16 + 16) + (32 * 16 * 9 + 16) + (16 * 16 + 16)
    assert macs == 32 * 16 * 256 + 32 * 16 * 9 * 64 + 16 * 16 * 256
    assert out == [1, 16, 16, 16]


def test_multiscale_rejects_mismatched_strides():
    from fusioncli.errors import SpecError

    with pytest.raises(SpecError, match=r"strides: 2 values \(1,2\) for 3 kernels \(1,3,5\)"):
        create_fusion("multiscale", [8], 8, kernels=(1, 3, 5), strides=(1, 2))


@pytest.mark.parametrize("kernels", ["3,5", "1,3,5,7"])
def test_multiscale_kernels_alone_need_no_strides(kernels):
    """Setting only kernels (2 or 4 of them) is no error about strides, an option the user never set: the
    default is one stride, 1, for every branch; concat of K branches of width 16, 1x1 refine to 16."""
    ks = [int(k) for k in kernels.split(",")]
    params, macs, flops, out = counts("multiscale", ["8x8x8"], 16, kernels=kernels)
    assert params == sum(8 * 16 * k * k + 16 for k in ks) + (16 * len(ks) * 16 + 16)
    assert macs == sum(8 * 16 * k * k * 64 for k in ks) + 16 * len(ks) * 16 * 64
    assert out == [1, 16, 8, 8]


def test_alignment_to_largest_and_resize_mode():
    block = create_fusion("concat", [4, 4], 4, align="largest", resize_mode="nearest")
    y = block(torch.randn(1, 4, 4, 4), torch.randn(1, 4, 8, 8))
    assert y.shape == (1, 4, 8, 8)
    block = create_fusion("concat", [4, 4], 4, align="smallest")
    assert block(torch.randn(1, 4, 4, 4), torch.randn(1, 4, 8, 8)).shape == (1, 4, 4, 4)


def test_resize_is_a_visible_layer():
    r = analyze("add", inputs=["16x8x8", "16x4x4"], out=16, time=False)
    assert [(l.name, l.type, l.output_shape) for l in r.layers if l.type == "Resize"] == [
        ("resize.1", "Resize", [1, 16, 8, 8])]


def test_concat_output_equals_reference():
    torch.manual_seed(0)
    block = create_fusion("concat", [3, 5], 4).eval()
    a, b = torch.randn(2, 3, 6, 6), torch.randn(2, 5, 6, 6)
    w, bias = block.conv.weight, block.conv.bias
    expected = torch.einsum("oc,bchw->bohw", w[:, :, 0, 0], torch.cat([a, b], 1)) + bias[None, :, None, None]
    torch.testing.assert_close(block(a, b), expected)


def test_gated_output_equals_reference():
    torch.manual_seed(0)
    block = create_fusion("gated", [4, 4], 4).eval()
    a, b = torch.randn(2, 4, 5, 5), torch.randn(2, 4, 5, 5)
    g = torch.sigmoid(torch.nn.functional.conv2d(torch.cat([a, b], 1), block.gate.weight, block.gate.bias))
    torch.testing.assert_close(block(a, b), g * a + (1 - g) * b)


def test_counts_agree_with_their_nouns():
    """One kernel, one input, one grid point: singular nouns in the errors and titles that count them."""
    from fusioncli.comparing import output_sizes_note
    from fusioncli.errors import SpecError
    from fusioncli.render.formats import counted

    assert (counted(1, "thread"), counted(2, "thread"), counted(0, "point")) == ("1 thread", "2 threads", "0 points")
    with pytest.raises(SpecError, match=r"2 values \(1,2\) for 1 kernel \(3\);"):
        create_fusion("multiscale", [8], 8, kernels=(3,), strides=(1, 2))
    block = create_fusion("concat", [8], 8)
    with pytest.raises(SpecError, match="expected 1 input, got 2"):
        block(torch.zeros(1, 8, 2, 2), torch.zeros(1, 8, 2, 2))
    a = analyze("aff", inputs=["8x4x4", "8x8x8"], out=8, time=False)
    c = analyze("concat", inputs=["8x4x4", "8x8x8"], out=8, time=False)
    from dataclasses import replace

    a, c = (replace(r, sweep={"spec": r.block, "index": 0, "values": {"size": 4}}) for r in (a, c))
    assert "at 1 of 1 grid point, e.g. at size=4 (8x8: aff; 4x4: concat)" in output_sizes_note([a, c])
