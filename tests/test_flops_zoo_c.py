"""Hand-derived exact FLOP and MAC counts (convention ``fusion-v1``) for the second wave, part A:
c2f, repc3, eca, coordatt.

Written out term by term from each block's forward (eval mode) and the per-op table of
``fusioncli/analysis/cost.py`` (see tests/test_flops_zoo_b.py for the rules used here: conv MACs =
Cin/g * k^2 * Cout * positions, bias excluded, FLOPs 2 per MAC + 1 per output element with a bias;
BatchNorm eval + affine 4, silu / sigmoid / hardswish / add / mul 1 per output element; mean 1 per
input + 1 per output element; nearest resize, cat, chunk, split and transposes 0). Batch 1.
"""

from __future__ import annotations

from fusioncli.analysis import analyze


def cost(kind, inputs, out, **options):
    r = analyze(kind, inputs=inputs, out=out, options=options, time=False)
    assert r.cost.uncounted_ops == {}
    return r.cost.flops, r.cost.macs


def test_c2f_yolov8s_p4():
    # cat(nearest-up(512x20x20) to 40x40, 256x40x40): S = 768; C = 256, c = 128, n = 1; hw = 1600
    S, C, c, hw = 768, 256, 128, 40 * 40
    macs = (S * 2 * c * hw              # cv1 1x1 S -> 2c
            + 2 * 9 * c * c * hw        # bottleneck: two 3x3 c -> c
            + 3 * c * C * hw)           # cv2 1x1 3c -> C
    conv_out = (2 * c + c + c + C) * hw  # elements out of the four convs, each through BN (4) and SiLU (1)
    flops = 2 * macs + 5 * conv_out
    assert (flops, macs) == (1_893_580_800, 943_718_400)
    assert cost("c2f", ["512x20x20", "256x40x40"], 256) == (flops, macs)


def test_c2f_shortcut_n2():
    # 32x8x8 + 32x8x8 -> 32, c = 16, n = 2, shortcut: + one add per bottleneck (c*hw each)
    S, C, c, n, hw = 64, 32, 16, 2, 64
    macs = S * 2 * c * hw + n * 2 * 9 * c * c * hw + (2 + n) * c * C * hw
    flops = 2 * macs + 5 * (2 * c + n * 2 * c + C) * hw + n * c * hw
    assert cost("c2f", ["32x8x8", "32x8x8"], 32, n=2, shortcut=True) == (flops, macs)


def test_repc3_rtdetr_r50():
    # cat(nearest-up(256x20x20), 256x40x40): S = 512, h = C = 256 (no conv3), 3 RepVGG blocks, hw = 1600
    S, h, hw = 512, 256, 40 * 40
    macs = (2 * S * h * hw                   # conv1, conv2
            + 3 * (9 * h * h + h * h) * hw)  # RepVGG: 3x3 and 1x1 branches
    N = h * hw
    flops = (2 * macs
             + 2 * 5 * N                     # conv1, conv2: BN + SiLU
             + 3 * (4 * N + 4 * N + N + N)   # RepVGG: two BNs, the branch sum, SiLU
             + N)                            # bottlenecks(conv1(x)) + conv2(x)
    assert (flops, macs) == (7_147_110_400, 3_565_158_400)
    assert cost("repc3", ["256x20x20", "256x40x40"], 256) == (flops, macs)


def test_repc3_expansion_half_has_conv3():
    # h = 16 < C = 32: conv3 1x1 h -> C + BN + SiLU at the end; 1 RepVGG block
    S, h, C, hw = 64, 16, 32, 64
    macs = 2 * S * h * hw + (9 * h * h + h * h) * hw + h * C * hw
    flops = 2 * macs + 2 * 5 * h * hw + 10 * h * hw + h * hw + 5 * C * hw
    assert cost("repc3", ["32x8x8", "32x8x8"], 32, num_blocks=1, expansion=0.5) == (flops, macs)


def test_eca_64x32x32():
    # proj 1x1 128 -> 64 (+bias); GAP (64 outputs); conv1d 1 -> 1, k = 3, over 64 channels; sigmoid; y * g
    C, hw, k = 64, 32 * 32, 3
    N = C * hw
    macs = 128 * C * hw + k * C
    flops = 2 * macs + N + (N + C) + C + N  # bias, mean (in + out), sigmoid, broadcast mul
    assert (flops, macs) == (16_974_336, 8_388_800)
    assert cost("eca", ["64x32x32", "64x32x32"], 64) == (flops, macs)


def test_eca_256_paper_k5():
    C, hw, k = 256, 16 * 16, 5
    N = C * hw
    macs = 512 * C * hw + k * C
    assert cost("eca", ["256x16x16", "256x16x16"], 256) == (2 * macs + N + (N + C) + C + N, macs)


def test_coordatt_64x32x32():
    # proj 1x1 128 -> 64 (+bias); means over W (-> C x H) and over H (-> C x W); conv1 1x1 C -> m = 8 (+bias)
    # on the H + W = 64 positions, BN, hardswish; conv_h, conv_w 1x1 m -> C (+bias) at H and W positions;
    # two sigmoids; out = y * a_w (broadcast, N) * a_h (N)
    C, H, W, m = 64, 32, 32, 8
    N = C * H * W
    macs = 128 * C * H * W + C * m * (H + W) + m * C * H + m * C * W
    flops = (2 * macs
             + N                         # proj bias
             + (N + C * H) + (N + C * W)  # the two means
             + m * (H + W) * (1 + 4 + 1)  # conv1 bias, BN, hardswish
             + C * H * 2 + C * W * 2      # conv_h, conv_w: bias + sigmoid
             + 2 * N)                     # the two products
    assert (flops, macs) == (17_251_328, 8_454_144)
    assert cost("coordatt", ["64x32x32", "64x32x32"], 64) == (flops, macs)
