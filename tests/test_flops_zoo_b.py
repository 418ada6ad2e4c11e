"""Hand-derived exact FLOP and MAC counts (convention ``fusion-v1``) for bifpn, asff, fpn, pan, gff, ffm,
segformer, crossattn.

Every expected value is written out term by term from the block's forward (eval mode: BatchNorm
uses its running statistics) and the per-op table of ``fusioncli/analysis/cost.py``:

* conv: MACs = Cin/g * k^2 * Cout * Hout * Wout (bias excluded); FLOPs = 2 * MACs, + 1 per output
  element when the conv has a bias; linear / matmul likewise (MACs = M * K * N);
* add / sub / rsub / mul / relu / leaky_relu / relu6 / silu / sigmoid: 1 per output element
  (broadcasts count the broadcast output); addcmul: 2 per output element;
* softmax: 5 per element; sum: 1 per input element;
* BatchNorm (eval, affine): 2 + 2 = 4 per element; LayerNorm (affine): 5 + 2 = 7 per element;
* mean / adaptive avg pool: 1 per input element + 1 per output element;
* max / avg pooling: kernel area per output element;
* bilinear interpolation: 7 per output element; nearest interpolation, cat and views: 0.

Batch is 1 throughout. ``hw`` = H*W of the map an op runs at; ``N`` = C*hw of one C-channel map there.
"""

from __future__ import annotations

from fusioncli.analysis import analyze


def cost(kind, inputs, out, **options):
    r = analyze(kind, inputs=inputs, out=out, options=options, time=False)
    assert r.cost.uncounted_ops == {}
    return r.cost.flops, r.cost.macs


# -------------------------------------------------------------------------------------------- bifpn
# Resample: an input with Ci != C gets conv1x1 Ci->C (+bias) -> BN(C) at its own size; a map an
# integer factor s larger is max-pooled (kernel s+1 = 3 for s = 2: 9 per output element), a smaller
# one nearest-upsampled (free). Then, with n inputs and edge weights e (n elements):
#   fast:    w = relu(e) (n); w.sum() (n); + epsilon (1); w / (...) (n)
#   softmax: softmax(e) (5n)
#   out = y_0 * w[0] (N) + addcmul(out, y_i, w[i]) for i >= 1 (2N each); sum: (n-1) adds of N
# then silu (N) -> depthwise 3x3 C->C groups=C, no bias -> pointwise 1x1 C->C (+bias) -> BN(C) (4N)

def _bifpn_node(C, hw, n, weighting="fast"):
    """(FLOPs, MACs) of the weighted sum + Swish + separable conv + BN over n aligned C x hw maps."""
    N = C * hw
    macs = (9 * C * hw            # depthwise 3x3: Cin/g = 1
            + C * C * hw)         # pointwise 1x1
    if weighting == "fast":
        weights = n + n + 1 + n   # relu, sum, + epsilon, divide
        combine = N + 2 * N * (n - 1)  # y_0 * w_0, then one addcmul per further input
    elif weighting == "softmax":
        weights = 5 * n           # softmax over the n edge weights
        combine = N + 2 * N * (n - 1)
    else:
        weights = 0
        combine = N * (n - 1)     # plain sum
    flops = (2 * macs
             + weights + combine
             + N                  # silu
             + N                  # pointwise bias
             + 4 * N)             # BN(C), eval + affine
    return flops, macs


def test_bifpn_64x32x32_64x16x16():
    # P4_1 = node(P4_0, up(P5_1)): the 16x16 input is nearest-upsampled to 32x32 (free); no projections
    C, hw = 64, 32 * 32
    N = C * hw
    flops, macs = _bifpn_node(C, hw, 2)
    assert macs == 9 * C * hw + C * C * hw == 4_784_128
    assert flops == 2 * macs + 9 * N + 7 == 10_158_087
    assert cost("bifpn", ["64x32x32", "64x16x16"], 64) == (flops, macs)


def test_bifpn_softmax_64x32x32_64x16x16():
    # weighting=softmax: softmax over the 2 edge weights (5 per element) replaces relu/sum/+eps/div (7)
    C, hw = 64, 32 * 32
    N = C * hw
    flops, macs = _bifpn_node(C, hw, 2, "softmax")
    assert flops == 2 * macs + 9 * N + 10 == 10_158_090
    assert cost("bifpn", ["64x32x32", "64x16x16"], 64, weighting="softmax") == (flops, macs)


def test_bifpn_sum_64x32x32_64x16x16():
    # weighting=sum: no edge weights, a single add of the two maps
    C, hw = 64, 32 * 32
    N = C * hw
    flops, macs = _bifpn_node(C, hw, 2, "sum")
    assert flops == 2 * macs + 7 * N == 10_027_008
    assert cost("bifpn", ["64x32x32", "64x16x16"], 64, weighting="sum") == (flops, macs)


def _bifpn_3_inputs_expected():
    # inputs 40x16x24, 64x16x24, 40x32x48, C = 40, reference size 16x24 (the first input's)
    C, hw = 40, 16 * 24
    N = C * hw
    node_flops, node_macs = _bifpn_node(C, hw, 3)
    proj_macs = 64 * C * hw                # input 2: conv1x1 64 -> 40
    macs = node_macs + proj_macs
    flops = (node_flops
             + 2 * proj_macs + N + 4 * N   # projection conv + its bias + BN(40)
             + 9 * N)                      # input 3: 32x48 -> 16x24 pool, kernel 3x3 (s = 2)
    return flops, macs


def test_bifpn_3_inputs_projection_and_pool_40x16x24():
    flops, macs = _bifpn_3_inputs_expected()
    C, hw = 40, 16 * 24
    N = C * hw
    assert macs == 9 * C * hw + C * C * hw + 64 * C * hw == 1_735_680
    assert flops == 2 * macs + 25 * N + 10 == 3_855_370
    assert cost("bifpn", ["40x16x24", "64x16x24", "40x32x48"], 40) == (flops, macs)


def test_bifpn_avg_pool_and_conv_bn_act_same_count():
    # pooling=avg: avg_pool2d also costs its kernel area (9) per output element;
    # conv_bn_act=true only moves the silu after the BN (still one silu over N)
    flops, macs = _bifpn_3_inputs_expected()
    assert cost("bifpn", ["40x16x24", "64x16x24", "40x32x48"], 40, pooling="avg") == (flops, macs)
    assert cost("bifpn", ["40x16x24", "64x16x24", "40x32x48"], 40, conv_bn_act=True) == (flops, macs)


# --------------------------------------------------------------------------------------------- asff
# Inputs coarse -> fine; d = C_level, c = compress_c = 16, n levels, target hw = H_level * W_level.
# add_conv = conv (no bias) -> BN (4/elt) -> LeakyReLU (1/elt): 5 FLOPs per output element + 2 MACs.
# coarser i < level: add_conv 1x1 C_i -> d at its own size (if C_i != d), then nearest upsample (free)
# finer i > level (k = i - level): k-1 max-pools 3x3/2 (9 per output element), add_conv 3x3 s2 C_i -> d
# v_i = add_conv 1x1 d -> c (n of them); lambda = conv1x1 n*c -> n (+bias); softmax over n (5 n hw)
# Y = y_0 * alpha_0 (d hw) + addcmul per further level (2 d hw each); out = add_conv 3x3 d -> C

def _asff_common(d, c, n, C, hw):
    """(FLOPs, MACs) of the weight branch, the weighted sum and the expand conv at the target level."""
    macs = (n * d * c * hw            # n weight_level convs d -> c
            + n * c * n * hw          # weight_levels conv n*c -> n
            + 9 * d * C * hw)         # expand 3x3 d -> C
    flops = (2 * macs
             + n * 5 * c * hw         # BN + LeakyReLU of each weight_level
             + n * hw                 # weight_levels bias
             + 5 * n * hw             # softmax over the n levels
             + d * hw                 # y_0 * alpha_0 (alpha broadcast over d channels)
             + 2 * d * hw * (n - 1)   # addcmul per further level
             + 5 * C * hw)            # expand BN + LeakyReLU
    return flops, macs


def test_asff_level0_64x16x16_32x32x32():
    # d = 64, target 16x16; level 1 (32x32x32, finer by 1): add_conv 3x3 s2 32 -> 64 to 16x16
    d, c, n, C, hw = 64, 16, 2, 64, 16 * 16
    f, m = _asff_common(d, c, n, C, hw)
    macs = m + 32 * 9 * d * hw
    flops = f + 2 * 32 * 9 * d * hw + 5 * d * hw
    assert macs == 2 * 64 * 16 * 256 + 32 * 2 * 256 + 9 * 64 * 64 * 256 + 32 * 9 * 64 * 256 == 14_696_448
    # weight_level BN+act, weight_levels bias, softmax, mul + addcmul, level-1 BN+act, expand BN+act
    assert flops == (2 * macs + 2 * 5 * 16 * 256 + 2 * 256 + 10 * 256
                     + 3 * 16_384 + 5 * 16_384 + 5 * 16_384) == 29_649_920
    assert cost("asff", ["64x16x16", "32x32x32"], 64) == (flops, macs)


def _asff_level1_expected():
    # inputs 128x8x8, 64x16x16, 32x32x32, level 1: d = 64, target 16x16, C = 48
    d, c, n, C, hw = 64, 16, 3, 48, 16 * 16
    f, m = _asff_common(d, c, n, C, hw)
    coarse_macs = 128 * d * 8 * 8        # level 0: add_conv 1x1 128 -> 64 at 8x8, then nearest up (free)
    fine_macs = 32 * 9 * d * hw          # level 2: add_conv 3x3 s2 32 -> 64, 32x32 -> 16x16
    macs = m + coarse_macs + fine_macs
    flops = (f
             + 2 * coarse_macs + 5 * d * 8 * 8   # + BN + LeakyReLU at 64x8x8
             + 2 * fine_macs + 5 * d * hw)       # + BN + LeakyReLU at 64x16x16
    return flops, macs


def test_asff_level1_3_levels_out48():
    flops, macs = _asff_level1_expected()
    assert macs == (3 * 64 * 16 * 256 + 3 * 16 * 3 * 256 + 9 * 64 * 48 * 256
                    + 128 * 64 * 64 + 32 * 9 * 64 * 256) == 13_144_064
    assert flops == 26_599_936
    assert cost("asff", ["128x8x8", "64x16x16", "32x32x32"], 48, level=1) == (flops, macs)


def test_asff_mobile_relu6_same_count():
    # leaky=false: ReLU6 (hardtanh, 1 per element) in place of LeakyReLU
    flops, macs = _asff_level1_expected()
    assert cost("asff", ["128x8x8", "64x16x16", "32x32x32"], 48, level=1, leaky=False) == (flops, macs)


def test_asff_level0_3_levels_pool_path():
    # inputs 128x8x8, 64x16x16, 32x32x32, level 0: d = 128, target 8x8, C = 128
    d, c, n, C, hw = 128, 16, 3, 128, 8 * 8
    f, m = _asff_common(d, c, n, C, hw)
    l1_macs = 64 * 9 * d * hw            # level 1: add_conv 3x3 s2 64 -> 128, 16x16 -> 8x8
    l2_pool = 9 * 32 * 16 * 16           # level 2: max-pool 3x3/2 32x32 -> 16x16 (32 channels)
    l2_macs = 32 * 9 * d * hw            # then add_conv 3x3 s2 32 -> 128, 16x16 -> 8x8
    macs = m + l1_macs + l2_macs
    flops = (f
             + 2 * l1_macs + 5 * d * hw
             + l2_pool + 2 * l2_macs + 5 * d * hw)
    assert macs == 3 * 128 * 16 * 64 + 3 * 16 * 3 * 64 + 9 * 128 * 128 * 64 + 96 * 9 * 128 * 64 == 16_917_504
    assert flops == 34_089_088
    assert cost("asff", ["128x8x8", "64x16x16", "32x32x32"], 128) == (flops, macs)


# ---------------------------------------------------------------------------------------------- fpn
# Inputs fine -> coarse, C_1 .. C_n. L_i = conv1x1 C_i -> C (+bias) at level i's size (every level,
# even when C_i == C); M_n = L_n; M_i = L_i + nearest_up(M_{i+1}) (upsample free, add C hw_i);
# out = conv3x3 C -> C (+bias) at level 1. norm=bn: no conv biases, BN (4/elt) after every conv.

def _fpn_expected(C, levels, norm=False):
    """levels: [(C_i, hw_i)] fine to coarse."""
    hw1 = levels[0][1]
    lat_macs = sum(ci * C * hw for ci, hw in levels)
    out_macs = 9 * C * C * hw1
    macs = lat_macs + out_macs
    per_conv_elt = 4 if norm else 1          # BN(C) 4/elt, or the conv bias 1/elt
    flops = (2 * macs
             + per_conv_elt * sum(C * hw for _, hw in levels)   # lateral biases or BNs
             + sum(C * hw for _, hw in levels[:-1])             # the top-down adds, at levels 1..n-1
             + per_conv_elt * C * hw1)                          # output conv bias or BN
    return flops, macs


def test_fpn_64x32x32_128x16x16():
    flops, macs = _fpn_expected(64, [(64, 1024), (128, 256)])
    assert macs == 64 * 64 * 1024 + 128 * 64 * 256 + 9 * 64 * 64 * 1024 == 44_040_192
    assert flops == 2 * macs + (65_536 + 16_384) + 65_536 + 65_536 == 88_293_376
    assert cost("fpn", ["64x32x32", "128x16x16"], 64) == (flops, macs)


def test_fpn_norm_bn_64x32x32_128x16x16():
    # norm=bn: the 3 convs lose their bias (1/elt) and gain BN (4/elt); same MACs
    flops, macs = _fpn_expected(64, [(64, 1024), (128, 256)], norm=True)
    assert macs == 44_040_192
    assert flops == 2 * macs + 4 * (65_536 + 16_384) + 65_536 + 4 * 65_536 == 88_735_744
    assert cost("fpn", ["64x32x32", "128x16x16"], 64, norm="bn") == (flops, macs)


def test_fpn_3_levels_odd_32x15x15_48x8x8_96x4x4():
    # 4x4 -> 8x8 -> 15x15: nearest to the exact size (free)
    flops, macs = _fpn_expected(32, [(32, 225), (48, 64), (96, 16)])
    assert macs == 32 * 32 * 225 + 48 * 32 * 64 + 96 * 32 * 16 + 9 * 32 * 32 * 225 == 2_451_456
    assert flops == 2 * macs + 32 * (225 + 64 + 16) + 32 * (225 + 64) + 32 * 225 == 4_929_120
    assert cost("fpn", ["32x15x15", "48x8x8", "96x4x4"], 32) == (flops, macs)


# ---------------------------------------------------------------------------------------------- pan
# Inputs fine -> coarse, N_1 = X_1 (width C0), lateral P_2..P_n (width C).
# paper:     N_{i+1} = relu(conv3x3(P_{i+1} + relu(conv3x3_s2(N_i))))      (both convs with bias)
# reference: M_{i+1} = P_{i+1} + conv3x3_s2(M_i); out = conv3x3(M_n)        (no activation)
# conv3x3_s2 C_in -> C maps level i onto level i+1's size (exact factor 2 here: no resize).

def test_pan_paper_64x32x32_64x16x16():
    C, hw2 = 64, 16 * 16
    N = C * hw2
    down_macs = 9 * 64 * C * hw2            # stride-2 conv 64 -> 64, 32x32 -> 16x16
    conv_macs = 9 * C * C * hw2             # 3x3 conv at 16x16
    macs = down_macs + conv_macs
    flops = (2 * down_macs + N + N          # + bias + relu
             + N                            # P_2 + down(N_1)
             + 2 * conv_macs + N + N)       # + bias + relu
    assert macs == 18 * 64 * 64 * 256 == 18_874_368
    assert flops == 2 * macs + 5 * N == 37_830_656
    assert cost("pan", ["64x32x32", "64x16x16"], 64) == (flops, macs)


def _pan_3_levels(variant):
    # inputs 32x32x32, 48x16x16, 48x8x8; C = 48
    C, hw2, hw3 = 48, 16 * 16, 8 * 8
    down1 = 9 * 32 * C * hw2                # stride-2 conv 32 -> 48, 32x32 -> 16x16
    down2 = 9 * C * C * hw3                 # stride-2 conv 48 -> 48, 16x16 -> 8x8
    conv2 = 9 * C * C * hw2                 # paper: 3x3 conv at level 2
    conv3 = 9 * C * C * hw3                 # 3x3 conv at level 3 (the only one in reference)
    if variant == "paper":
        macs = down1 + down2 + conv2 + conv3
        flops = (2 * down1 + 2 * C * hw2    # + bias + relu
                 + C * hw2                  # P_2 + down
                 + 2 * conv2 + 2 * C * hw2  # + bias + relu
                 + 2 * down2 + 2 * C * hw3
                 + C * hw3                  # P_3 + down
                 + 2 * conv3 + 2 * C * hw3)
    else:
        macs = down1 + down2 + conv3
        flops = (2 * down1 + C * hw2        # + bias
                 + C * hw2                  # M_2 = P_2 + down(M_1)
                 + 2 * down2 + C * hw3      # + bias
                 + C * hw3                  # M_3 = P_3 + down(M_2)
                 + 2 * conv3 + C * hw3)     # + bias
    return flops, macs


def test_pan_paper_3_levels_32x32x32_48x16x16_48x8x8():
    flops, macs = _pan_3_levels("paper")
    assert macs == 9 * 32 * 48 * 256 + 9 * 48 * 48 * (256 + 64 + 64) == 11_501_568
    assert flops == 2 * macs + 5 * 48 * 256 + 5 * 48 * 64 == 23_079_936
    assert cost("pan", ["32x32x32", "48x16x16", "48x8x8"], 48) == (flops, macs)


def test_pan_reference_3_levels_32x32x32_48x16x16_48x8x8():
    # mmdetection: chain through the sums, one output conv, no relu
    flops, macs = _pan_3_levels("reference")
    assert macs == 9 * 32 * 48 * 256 + 9 * 48 * 48 * (64 + 64) == 6_193_152
    assert flops == 2 * macs + 2 * 48 * 256 + 3 * 48 * 64 == 12_420_096
    assert cost("pan", ["32x32x32", "48x16x16", "48x8x8"], 48, variant="reference") == (flops, macs)


def test_pan_project_32x30x30_64x15x15_out48():
    # project=true: P_2 (64 wide) gets conv1x1 64 -> 48 (+bias) at 15x15;
    # stride-2 conv 32 -> 48: (30 + 2 - 3) // 2 + 1 = 15, no resize
    C, hw2 = 48, 15 * 15
    N = C * hw2
    proj = 64 * C * hw2
    down = 9 * 32 * C * hw2
    conv = 9 * C * C * hw2
    macs = proj + down + conv
    flops = (2 * proj + N                   # projection + bias
             + 2 * down + 2 * N             # + bias + relu
             + N                            # add
             + 2 * conv + 2 * N)            # + bias + relu
    assert macs == (64 + 288 + 432) * 48 * 225 == 8_467_200
    assert flops == 2 * macs + 6 * N == 16_999_200
    assert cost("pan", ["32x30x30", "64x15x15"], 48, project=True) == (flops, macs)


# ---------------------------------------------------------------------------------------------- gff
# Level i (C_i, hw_i): gate G_i = sigmoid(conv1x1 C_i -> g (+bias)), g = 1 (paper) or C (reference):
#   MACs C_i g hw_i, FLOPs + g hw_i (bias) + g hw_i (sigmoid);
# P_i = relu(BN(conv1x1 C_i -> C, no bias)): + 4 C hw_i (BN) + C hw_i (relu).
# fuse(t) at hw_t: for j != t: G_j * P_j (C hw_j), bilinear resize to hw_t if sizes differ (7 C hw_t),
#   summed ((n-2) adds of C hw_t); then (1 + G_t) (g hw_t), * P_t (C hw_t), (1 - G_t) (g hw_t),
#   * S (C hw_t), + (C hw_t).

def _gff_levels(levels, C, g):
    """(FLOPs, MACs) of all gates and projections; levels: [(C_i, hw_i)]."""
    macs = sum(ci * g * hw + ci * C * hw for ci, hw in levels)
    flops = 2 * macs + sum(2 * g * hw + 5 * C * hw for _, hw in levels)
    return flops, macs


def _gff_fuse(C, g, hw_t, others):
    """FLOPs of fuse at hw_t; others: [(hw_j, resized)] for j != t."""
    flops = 0
    for hw_j, resized in others:
        flops += C * hw_j                   # G_j * P_j
        flops += 7 * C * hw_t if resized else 0
    flops += C * hw_t * (len(others) - 1)   # summing the others
    flops += (g * hw_t                      # 1 + G_t
              + C * hw_t                    # * P_t
              + g * hw_t                    # 1 - G_t
              + C * hw_t                    # * S
              + C * hw_t)                   # +
    return flops


def test_gff_paper_64x32x32_128x16x16():
    C, g = 64, 1
    f, macs = _gff_levels([(64, 1024), (128, 256)], C, g)
    flops = f + _gff_fuse(C, g, 1024, [(256, True)])
    assert macs == 64 * 1024 + 64 * 64 * 1024 + 128 * 256 + 128 * 64 * 256 == 6_389_760
    assert flops == 2 * macs + 2 * 1280 + 5 * 64 * 1280 + 64 * 256 + 7 * 65_536 + 2 * 1024 + 3 * 65_536 == 13_865_472
    assert cost("gff", ["64x32x32", "128x16x16"], 64) == (flops, macs)


def _gff_3_levels(variant):
    # inputs 32x32x32, 64x16x16, 96x8x8, C = 48, target = 1 (16x16)
    C = 48
    g = 1 if variant == "paper" else C
    f, macs = _gff_levels([(32, 1024), (64, 256), (96, 64)], C, g)
    if variant == "paper":
        fuse = _gff_fuse(C, g, 256, [(1024, True), (64, True)])
    else:
        # levels fused in order 0, 1: fuse(0) at 32x32 from levels 1 and 2, then fuse(1) at 16x16
        # from the fused level 0 and level 2 (G_2 * P_2 is computed again)
        fuse = (_gff_fuse(C, g, 1024, [(256, True), (64, True)])
                + _gff_fuse(C, g, 256, [(1024, True), (64, True)]))
    return f + fuse, macs


def test_gff_paper_3_levels_target1():
    flops, macs = _gff_3_levels("paper")
    assert macs == (32 * 1024 + 64 * 256 + 96 * 64) * 49 == 2_709_504
    # 2 MACs + gates/projections (2 + 5*48 per pixel over 1344 pixels) + G_j*P_j (48 * (1024 + 64))
    # + two bilinear resizes to 16x16 + their sum + (1+G) * P + (1-G) * S + add
    assert flops == (2 * macs + 242 * 1344 + 48 * 1088 + 14 * 48 * 256 + 48 * 256
                     + 256 + 48 * 256 + 256 + 48 * 256 + 48 * 256) == 6_018_176
    assert cost("gff", ["32x32x32", "64x16x16", "96x8x8"], 48, target=1) == (flops, macs)


def test_gff_reference_3_levels_target1():
    # C-channel gates (g = 48) and the in-order update
    flops, macs = _gff_3_levels("reference")
    assert macs == (32 * 1024 + 64 * 256 + 96 * 64) * 96 == 5_308_416
    # gates/projections: (2*48 + 5*48) per pixel over 1344 pixels;
    # fuse(0) at 32x32: G_j*P_j (48 * (256 + 64)), two bilinear resizes, sum, then 5 ops over 48x32x32
    # fuse(1) at 16x16: G_j*P_j (48 * (1024 + 64)), two bilinear resizes, sum, then 5 ops over 48x16x16
    assert flops == (2 * macs + 336 * 1344
                     + 48 * 320 + 14 * 48 * 1024 + 48 * 1024 + 5 * 48 * 1024
                     + 48 * 1088 + 14 * 48 * 256 + 48 * 256 + 5 * 48 * 256) == 12_364_800
    assert cost("gff", ["32x32x32", "64x16x16", "96x8x8"], 48, target=1, variant="reference") == (flops, macs)


# ---------------------------------------------------------------------------------------------- ffm
# f = relu(BN(conv1x1 sum(Ci) -> C, no bias)) on the aligned, concatenated inputs (cat free)
# paper:     a = sigmoid(conv1x1 mid -> C (relu(conv1x1 C -> mid (GAP f)))), both convs without bias
# reference: a = sigmoid(relu(BN(conv1x1 C -> C (GAP f)))), conv without bias
# out = f * a + f

def _ffm_expected(S, C, hw, mid=None):
    N = C * hw
    if mid is None:                         # reference attention branch
        att_macs = C * C
        att_flops = 2 * att_macs + 4 * C + C + C  # BN(C) + relu + sigmoid on C x 1 x 1
    else:
        att_macs = C * mid + mid * C
        att_flops = 2 * att_macs + mid + C        # relu on mid + sigmoid on C
    macs = S * C * hw + att_macs
    flops = (2 * S * C * hw + 4 * N + N     # conv + BN + relu
             + N + C                        # adaptive avg pool to 1x1
             + att_flops
             + N                            # f * a
             + N)                           # + f
    return flops, macs


def test_ffm_64x32x32_64x32x32():
    # reduction 1: mid = 64
    flops, macs = _ffm_expected(128, 64, 1024, mid=64)
    assert macs == 128 * 64 * 1024 + 2 * 64 * 64 == 8_396_800
    assert flops == 2 * macs + 8 * 65_536 + 2 * 64 + 64 == 17_318_080
    assert cost("ffm", ["64x32x32", "64x32x32"], 64) == (flops, macs)


def test_ffm_reference_64x32x32_64x32x32():
    flops, macs = _ffm_expected(128, 64, 1024)
    assert macs == 128 * 64 * 1024 + 64 * 64 == 8_392_704
    assert flops == 2 * macs + 8 * 65_536 + 7 * 64 == 17_310_144
    assert cost("ffm", ["64x32x32", "64x32x32"], 64, variant="reference") == (flops, macs)


def test_ffm_reduction4_mismatched_32x16x24_64x8x12_out48():
    # X2 (64x8x12) is bilinear-resized to 16x24 (align=first): 7 per output element (64*16*24);
    # mid = 48 // 4 = 12
    hw = 16 * 24
    flops, macs = _ffm_expected(96, 48, hw, mid=12)
    align = 7 * 64 * hw
    assert macs == 96 * 48 * 384 + 2 * 48 * 12 == 1_770_624
    assert flops + align == 2 * macs + 8 * 48 * 384 + 48 + 12 + 48 + 7 * 64 * 384 == 3_860_844
    assert cost("ffm", ["32x16x24", "64x8x12"], 48, reduction=4) == (flops + align, macs)


# ---------------------------------------------------------------------------------------- segformer
# paper:     F_i = conv1x1 C_i -> C (+bias) at level i's own size; bilinear to H x W (the largest
#            input's) when smaller (7 C hw); F = conv1x1 n*C -> C (+bias) on cat (free)
# reference: every conv without bias, followed by BN (4/elt) and relu (1/elt)

def _segformer_expected(C, levels, reference=False):
    """levels: [(C_i, hw_i)], the first at the largest size hw."""
    hw = levels[0][1]
    n = len(levels)
    per_elt = 5 if reference else 1          # BN + relu, or the bias
    macs = sum(ci * C * h for ci, h in levels) + n * C * C * hw
    flops = (2 * macs
             + per_elt * sum(C * h for _, h in levels)         # per-level layers
             + 7 * C * hw * sum(h != hw for _, h in levels)    # bilinear resizes of the coarser levels
             + per_elt * C * hw)                               # fusion layer
    return flops, macs


def test_segformer_32x32x32_64x16x16_out48():
    flops, macs = _segformer_expected(48, [(32, 1024), (64, 256)])
    assert macs == 32 * 48 * 1024 + 64 * 48 * 256 + 2 * 48 * 48 * 1024 == 7_077_888
    assert flops == 2 * macs + 48 * 1280 + 7 * 48 * 1024 + 48 * 1024 == 14_610_432
    assert cost("segformer", ["32x32x32", "64x16x16"], 48) == (flops, macs)


def test_segformer_reference_32x32x32_64x16x16_out48():
    flops, macs = _segformer_expected(48, [(32, 1024), (64, 256)], reference=True)
    assert macs == 7_077_888
    assert flops == 2 * macs + 5 * 48 * 1280 + 7 * 48 * 1024 + 5 * 48 * 1024 == 15_052_800
    assert cost("segformer", ["32x32x32", "64x16x16"], 48, variant="reference") == (flops, macs)


def test_segformer_mit_b0_4_levels_out64():
    # MiT-B0 widths at a 128x128 image: strides 4, 8, 16, 32
    levels = [(32, 32 * 32), (64, 16 * 16), (160, 8 * 8), (256, 4 * 4)]
    flops, macs = _segformer_expected(64, levels)
    assert macs == (32 * 1024 + 64 * 256 + 160 * 64 + 256 * 16) * 64 + 4 * 64 * 64 * 1024 == 20_840_448
    assert flops == 2 * macs + 64 * 1360 + 3 * 7 * 64 * 1024 + 64 * 1024 == 43_209_728
    assert cost("segformer", ["32x32x32", "64x16x16", "160x8x8", "256x4x4"], 64) == (flops, macs)


# ---------------------------------------------------------------------------------------- crossattn
# T1: N1 tokens, T2: N2 tokens, width C, h heads. Inputs whose width != C: conv1x1 (+bias) first.
#   LN(T1), LN(T2): 7 per element (5 + 2 affine); flatten/transpose/reshape copies: free
#   q = LN(T1) Wq * scale: N1 C^2 MACs + N1 C (scale); k, v = LN(T2) Wk, Wv: 2 N2 C^2 MACs
#   (qkv_bias: + N1 C + 2 N2 C bias adds)
#   Q K^T and A V: N1 N2 C MACs each (h heads of width C/h); softmax: 5 h N1 N2
#   o = proj: N1 C^2 MACs + N1 C bias; out = T1 + o: N1 C

def _crossattn_expected(C, h, N1, N2, norm=True, qkv_bias=True):
    macs = (N1 * C * C                      # wq
            + 2 * N2 * C * C                # wk, wv
            + 2 * N1 * N2 * C               # Q K^T, A V
            + N1 * C * C)                   # proj
    flops = (2 * macs
             + (7 * (N1 + N2) * C if norm else 0)   # the two LayerNorms
             + ((N1 + 2 * N2) * C if qkv_bias else 0)
             + N1 * C                       # q * scale
             + 5 * h * N1 * N2              # softmax
             + N1 * C                       # proj bias
             + N1 * C)                      # residual
    return flops, macs


def test_crossattn_64x16x16_64x8x8():
    # C = 64, 8 heads, N1 = 256, N2 = 64; no projections; qkv biases (the default, as in CrossViT's models)
    flops, macs = _crossattn_expected(64, 8, 256, 64)
    assert macs == 2 * 256 * 64 * 64 + 2 * 64 * 64 * 64 + 2 * 256 * 64 * 64 == 4_718_592
    assert flops == 2 * macs + 7 * 320 * 64 + (256 + 2 * 64) * 64 + 3 * 256 * 64 + 5 * 8 * 256 * 64 == 10_309_632
    assert cost("crossattn", ["64x16x16", "64x8x8"], 64) == (flops, macs)


def test_crossattn_no_qkv_bias_no_norm_64x16x16_64x8x8():
    flops, macs = _crossattn_expected(64, 8, 256, 64, norm=False, qkv_bias=False)
    assert macs == 4_718_592
    assert flops == 10_309_632 - 7 * 320 * 64 - (256 + 128) * 64 == 10_141_696
    assert cost("crossattn", ["64x16x16", "64x8x8"], 64, norm=False, qkv_bias=False) == (flops, macs)


def test_crossattn_projected_32x8x12_96x4x6_out48_4heads():
    # C = 48, 4 heads, N1 = 96, N2 = 24; both inputs projected: conv1x1 32 -> 48 and 96 -> 48 (+bias)
    C, N1, N2 = 48, 96, 24
    a_flops, a_macs = _crossattn_expected(C, 4, N1, N2)
    proj_macs = 32 * C * N1 + 96 * C * N2
    macs = a_macs + proj_macs
    flops = a_flops + 2 * proj_macs + C * N1 + C * N2   # + projection biases
    assert macs == 2 * 96 * 48 * 48 + 2 * 24 * 48 * 48 + 2 * 96 * 24 * 48 + 32 * 48 * 96 + 96 * 48 * 24 == 1_032_192
    # LayerNorms, qkv biases, scale + proj bias + residual, softmax, the projections' biases
    assert flops == 2 * macs + 7 * 120 * 48 + (96 + 2 * 24) * 48 + 3 * 96 * 48 + 5 * 4 * 96 * 24 + 120 * 48 \
        == 2_177_280
    assert cost("crossattn", ["32x8x12", "96x4x6"], 48, num_heads=4) == (flops, macs)
