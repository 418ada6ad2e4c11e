"""Hand-derived exact FLOP and MAC counts (convention ``fusion-v1``) for dpt, aff, iaff, sk, skff, se, cbam.

Every expected value is written out term by term from the block's forward (eval mode: BatchNorm
uses its running statistics) and the per-op table of ``fusioncli/analysis/cost.py``:

* conv: MACs = Cin/g * k^2 * Cout * Hout * Wout (bias excluded); FLOPs = 2 * MACs, + 1 per output
  element when the conv has a bias;
* add / mul / relu / prelu / sigmoid: 1 per output element (broadcasts count the broadcast output);
* lerp: 3 per output element; softmax: 5 per element;
* BatchNorm (eval, affine): 2 + 2 = 4 per element;
* mean / adaptive avg pool: 1 per input element + 1 per output element; amax over dims: 1 per input;
* bilinear interpolation: 7 per output element; cat and views: 0.

Batch is 1 throughout. ``n`` is the element count C*H*W of one full-resolution C-channel map,
``hw`` = H*W.
"""

from __future__ import annotations

from fusioncli.analysis import analyze


def cost(kind, inputs, out, **options):
    r = analyze(kind, inputs=inputs, out=out, options=options, time=False)
    assert r.cost.uncounted_ops == {}
    return r.cost.flops, r.cost.macs


# ---------------------------------------------------------------------------------------------- dpt
# RCU(x) = x + conv3x3(relu(conv3x3(relu(x))))  (bn=false: both convs with bias)
#   MACs  = 2 * 9 F^2 hw
#   FLOPs = 2 MACs + 2n (two conv biases) + 2n (two relus) + n (residual add)
# y = X1 + RCU1(X2); out = conv1x1(bilinear x2(RCU2(y))), conv F -> F with bias at (2H, 2W)

def _dpt_expected(F, H, W):
    hw, n = H * W, F * H * W
    rcu_macs = 2 * 9 * F * F * hw                       # two 3x3 convs F -> F
    rcu_flops = 2 * rcu_macs + 2 * n + 2 * n + n        # + biases, relus, residual add
    up = F * (2 * H) * (2 * W)                          # elements after the x2 upsampling
    out_macs = F * F * (2 * H) * (2 * W)                # 1x1 conv F -> F over 2H x 2W
    macs = 2 * rcu_macs + out_macs
    flops = (2 * rcu_flops          # RCU1 and RCU2
             + n                    # X1 + RCU1(X2)
             + 7 * up               # bilinear upsampling, 7 per output element
             + 2 * out_macs + up)   # output conv + its bias
    return flops, macs


def test_dpt_64x32x32():
    F, H, W = 64, 32, 32
    flops, macs = _dpt_expected(F, H, W)
    assert macs == 40 * F * F * H * W == 167_772_160
    assert flops == 80 * F * F * H * W + 43 * F * H * W == 338_362_368
    assert cost("dpt", ["64x32x32", "64x32x32"], 64) == (flops, macs)


def test_dpt_mismatched_32x16x24_32x8x12():
    # X2 (32x8x12) is aligned to X1's 16x24 first: bilinear, 7 per output element (32*16*24)
    F, H, W = 32, 16, 24
    flops, macs = _dpt_expected(F, H, W)
    align = 7 * F * H * W
    assert macs == 40 * F * F * H * W == 15_728_640
    assert flops + align == 80 * F * F * H * W + 43 * F * H * W + 7 * F * H * W == 32_071_680
    assert cost("dpt", ["32x16x24", "32x8x12"], 32) == (flops + align, macs)


# ---------------------------------------------------------------------------------------- aff / iaff
# MS-CAM on a C x H x W map S, Cr = C // r (r = 4):
#   local:  conv1x1 C->Cr (+bias) -> BN(Cr) -> ReLU -> conv1x1 Cr->C (+bias) -> BN(C)   at H x W
#   global: GAP -> the same layers at 1 x 1
#   M = sigmoid(local + global)

def _mscam(C, Cr, hw):
    """(FLOPs, MACs) of local + global + add + sigmoid."""
    n = C * hw
    local_macs = C * Cr * hw + Cr * C * hw
    local_flops = (2 * local_macs
                   + Cr * hw          # bias of conv C->Cr
                   + 4 * Cr * hw      # BN(Cr), eval + affine
                   + Cr * hw          # ReLU
                   + n                # bias of conv Cr->C
                   + 4 * n)           # BN(C)
    global_macs = C * Cr + Cr * C
    global_flops = (n + C             # adaptive avg pool: 1 per input + 1 per output
                    + 2 * global_macs
                    + Cr + 4 * Cr + Cr  # bias, BN, ReLU on Cr x 1 x 1
                    + C + 4 * C)      # bias, BN on C x 1 x 1
    flops = local_flops + global_flops + n + n  # + broadcast add local + global, + sigmoid
    return flops, local_macs + global_macs


def test_aff_64x32x32():
    C, H, W = 64, 32, 32
    Cr, hw, n = C // 4, H * W, C * H * W
    m_flops, m_macs = _mscam(C, Cr, hw)
    macs = m_macs
    flops = n + m_flops + 3 * n  # s = X + Y; M(s); lerp(Y, X, M): 3 per element
    assert macs == 2 * C * Cr * (hw + 1) == 2_099_200
    assert flops == 4 * C * Cr * (hw + 1) + 6 * Cr * (hw + 1) + 12 * n + 6 * C == 5_083_616
    assert cost("aff", ["64x32x32", "64x32x32"], 64) == (flops, macs)


def test_aff_reference_64x32x32():
    # variant=reference returns 2 * lerp(...): one extra mul over n elements
    C, H, W = 64, 32, 32
    Cr, hw, n = C // 4, H * W, C * H * W
    flops = 4 * C * Cr * (hw + 1) + 6 * Cr * (hw + 1) + 12 * n + 6 * C + n
    assert flops == 5_083_616 + 65_536
    assert cost("aff", ["64x32x32", "64x32x32"], 64, variant="reference") == (flops, 2 * C * Cr * (hw + 1))


def test_aff_mismatched_48x16x24_48x8x12():
    # Y (48x8x12) is aligned to 16x24 (align=largest): bilinear, 7 per output element
    C, H, W = 48, 16, 24
    Cr, hw, n = C // 4, H * W, C * H * W
    macs = 2 * C * Cr * (hw + 1)
    flops = (7 * n  # alignment resize of Y
             + n    # s = X + Y
             + 4 * C * Cr * (hw + 1) + 6 * Cr * (hw + 1) + 8 * n + 6 * C  # M(s): local 5n, GAP n, add n, sigmoid n
             + 3 * n)  # lerp
    assert macs == 443_520
    assert flops == 1_265_256
    assert cost("aff", ["48x16x24", "48x8x12"], 48) == (flops, macs)


def _iaff_expected(C, H, W):
    Cr, hw, n = C // 4, H * W, C * H * W
    m_flops, m_macs = _mscam(C, Cr, hw)
    # s = X + Y; I = lerp(Y, X, M1(s)); Z = lerp(Y, X, M2(I)); M2 has the same shapes as M1
    return n + (m_flops + 3 * n) + (m_flops + 3 * n), 2 * m_macs


def test_iaff_64x32x32():
    C, H, W = 64, 32, 32
    Cr, hw, n = C // 4, H * W, C * H * W
    flops, macs = _iaff_expected(C, H, W)
    assert macs == 4 * C * Cr * (hw + 1) == 4_198_400
    assert flops == n + 2 * (4 * C * Cr * (hw + 1) + 6 * Cr * (hw + 1) + 6 * C + 11 * n) == 10_101_696
    assert cost("iaff", ["64x32x32", "64x32x32"], 64) == (flops, macs)


def test_iaff_reference_64x32x32_same_count():
    # variant=reference reuses global_att for M2 instead of global_att2: same shapes, same count
    assert cost("iaff", ["64x32x32", "64x32x32"], 64, variant="reference") == (10_101_696, 4_198_400)


def test_iaff_mismatched_48x16x24_48x8x12():
    C, H, W = 48, 16, 24
    flops, macs = _iaff_expected(C, H, W)
    align = 7 * C * H * W  # Y bilinear-resized to 16x24
    assert macs == 887_040
    assert flops + align == 2_383_056
    assert cost("iaff", ["48x16x24", "48x8x12"], 48) == (flops + align, macs)


# ------------------------------------------------------------------------------------------------ sk
# X = cat(inputs) (S channels, free); branch k: conv kxk S->C (no bias) -> BN(C) -> ReLU, k = 3, 5
# U = U3 + U5; s = mean_hw(U); z = ReLU(BN(W s)) (C->d, no bias); logits = A z (d -> 2C, no bias)
# a = softmax over the 2 branches (2C elements); V = a0*U3 + a1*U5

def _sk_expected(S_branch, C, d, H, W):
    hw, n, K = H * W, C * H * W, 2
    macs = (S_branch * 9 * C * hw      # 3x3 branch
            + S_branch * 25 * C * hw   # 5x5 branch
            + C * d                    # fc_reduce
            + d * K * C)               # fc_select
    flops = (2 * macs
             + K * (4 * n + n)         # per branch: BN(C) 4/elt + ReLU
             + n                       # U = U3 + U5
             + n + C                   # mean over H, W
             + 4 * d + d               # BN(d) + ReLU
             + 5 * K * C               # softmax over the branches
             + K * n                   # a_k * U_k
             + n)                      # the sum of the two weighted maps
    return flops, macs


def test_sk_64x32x32():
    # S = 128, C = 64, d = max(int(64/16), 32) = 32
    flops, macs = _sk_expected(128, 64, 32, 32, 32)
    assert macs == 128 * 64 * 34 * 1024 + 64 * 32 + 32 * 128 == 285_218_816
    assert flops == 2 * macs + 15 * 64 * 1024 + 11 * 64 + 5 * 32 == 571_421_536
    assert cost("sk", ["64x32x32", "64x32x32"], 64) == (flops, macs)


def test_sk_reference_64x32x32():
    # timm split: each branch sees S/2 = 64 channels; d = make_divisible(64/16, 8) = 8
    flops, macs = _sk_expected(64, 64, 8, 32, 32)
    assert macs == 64 * 64 * 34 * 1024 + 64 * 8 + 8 * 128 == 142_607_872
    assert flops == 2 * macs + 15 * 64 * 1024 + 11 * 64 + 5 * 8 == 286_199_528
    assert cost("sk", ["64x32x32", "64x32x32"], 64, variant="reference") == (flops, macs)


def test_sk_32x16x24_16x16x24_out48():
    # S = 48, C = 48, d = max(int(48/16), 32) = 32; no resize (equal sizes)
    flops, macs = _sk_expected(48, 48, 32, 16, 24)
    assert macs == 48 * 48 * 34 * 384 + 48 * 32 + 32 * 96 == 30_085_632
    assert flops == 2 * macs + 15 * 48 * 384 + 11 * 48 + 5 * 32 == 60_448_432
    assert cost("sk", ["32x16x24", "16x16x24"], 48) == (flops, macs)


# ---------------------------------------------------------------------------------------------- skff
# m streams of C x H x W: L = sum X_i; s = mean_hw(L); z = PReLU(W_d s) (C->d, no bias);
# v_i = W_i z (d->C, no bias, one per stream; cat is free); a = softmax over the m streams (m*C);
# out = sum_i a_i * X_i.  d = max(int(C/8), 4)

def _skff_expected(m, C, d, H, W):
    n = C * H * W
    macs = C * d + m * d * C
    flops = (2 * macs
             + (m - 1) * n            # L = X_1 + ... + X_m
             + n + C                  # mean over H, W
             + d                      # PReLU on d x 1 x 1
             + 5 * m * C              # softmax
             + m * n                  # a_i * X_i
             + (m - 1) * n)           # summing the weighted streams
    return flops, macs


def test_skff_2x64x32x32():
    flops, macs = _skff_expected(2, 64, 8, 32, 32)
    assert macs == 3 * 64 * 8 == 1_536
    assert flops == 6 * 64 * 8 + 5 * 65_536 + 11 * 64 + 8 == 331_464
    assert cost("skff", ["64x32x32", "64x32x32"], 64) == (flops, macs)


def test_skff_3_streams_40x16x24_one_mismatched():
    # d = max(int(40/8), 4) = 5; stream 2 (40x8x12) is aligned to 16x24 (align=first): bilinear 7/elt
    C, H, W = 40, 16, 24
    flops, macs = _skff_expected(3, C, 5, H, W)
    align = 7 * C * H * W
    assert macs == 40 * 5 + 3 * 5 * 40 == 800
    assert flops + align == 2 * 800 + 8 * 15_360 + 40 + 5 + 15 * 40 + 7 * 15_360 == 232_645
    assert cost("skff", ["40x16x24", "40x8x12", "40x16x24"], 40) == (flops + align, macs)


# ------------------------------------------------------------------------------------------------ se
# Y = conv1x1(cat) S->C with bias (norm=none, act=none); s = mean_hw(Y);
# g = sigmoid(fc2(relu(fc1(s)))) (fc1 C->d, fc2 d->C, both with bias); out = Y * g

def _se_expected(S, C, d, H, W):
    hw, n = H * W, C * H * W
    macs = S * C * hw + C * d + d * C
    flops = (2 * macs
             + n                      # projection bias
             + n + C                  # mean over H, W
             + d + d                  # fc1 bias + ReLU
             + C                      # fc2 bias
             + C                      # sigmoid
             + n)                     # Y * g
    return flops, macs


def test_se_64x32x32():
    # S = 128, C = 64, d = int(64/16) = 4
    flops, macs = _se_expected(128, 64, 4, 32, 32)
    assert macs == 128 * 64 * 1024 + 2 * 64 * 4 == 8_389_120
    assert flops == 2 * macs + 3 * 65_536 + 3 * 64 + 2 * 4 == 16_975_048
    assert cost("se", ["64x32x32", "64x32x32"], 64) == (flops, macs)


def test_se_reference_64x32x32():
    # timm: d = make_divisible(64/16, 8) = 8
    flops, macs = _se_expected(128, 64, 8, 32, 32)
    assert macs == 128 * 64 * 1024 + 2 * 64 * 8 == 8_389_632
    assert flops == 2 * macs + 3 * 65_536 + 3 * 64 + 2 * 8 == 16_976_080
    assert cost("se", ["64x32x32", "64x32x32"], 64, variant="reference") == (flops, macs)


def test_se_24x16x24_40x16x24_out48():
    # S = 64, C = 48, d = int(48/16) = 3
    flops, macs = _se_expected(64, 48, 3, 16, 24)
    assert macs == 64 * 48 * 384 + 2 * 48 * 3 == 1_179_936
    assert flops == 2 * macs + 3 * 18_432 + 3 * 48 + 2 * 3 == 2_415_318
    assert cost("se", ["24x16x24", "40x16x24"], 48) == (flops, macs)


# ---------------------------------------------------------------------------------------------- cbam
# Y = conv1x1(cat) S->C with bias; shared MLP fc2(relu(fc1(.))) (C->d->C, no bias)
# Mc = sigmoid(MLP(mean_hw Y) + MLP(amax_hw Y)); Y' = Y * Mc
# Ms = sigmoid([BN](conv7x7([mean_c Y'; amax_c Y']))) (2->1, no bias); out = Y' * Ms

def _cbam_expected(S, C, d, H, W, spatial_bn=False):
    hw, n = H * W, C * H * W
    macs = (S * C * hw                # projection
            + 2 * (C * d + d * C)     # the shared MLP, run twice
            + 2 * 49 * hw)            # spatial 7x7 conv, 2 -> 1 channels
    flops = (2 * macs
             + n                      # projection bias
             + n + C                  # mean over H, W
             + n                      # amax over H, W (1 per input element)
             + 2 * d                  # ReLU in each MLP pass
             + C                      # avg + max
             + C                      # sigmoid (channel)
             + n                      # Y * Mc
             + n + hw                 # mean over channels
             + n                      # amax over channels
             + (4 * hw if spatial_bn else 0)  # BN(1), eval + affine (variant=reference)
             + hw                     # sigmoid (spatial)
             + n)                     # Y' * Ms
    return flops, macs


def test_cbam_64x32x32():
    # S = 128, C = 64, d = int(64/16) = 4
    flops, macs = _cbam_expected(128, 64, 4, 32, 32)
    assert macs == 128 * 64 * 1024 + 4 * 64 * 4 + 98 * 1024 == 8_489_984
    assert flops == 2 * macs + 7 * 65_536 + 3 * 64 + 2 * 4 + 2 * 1024 == 17_440_968
    assert cost("cbam", ["64x32x32", "64x32x32"], 64) == (flops, macs)


def test_cbam_24x16x24_40x16x24_out88():
    # S = 64, C = 88, d = int(88/16) = 5
    flops, macs = _cbam_expected(64, 88, 5, 16, 24)
    assert macs == 64 * 88 * 384 + 4 * 88 * 5 + 98 * 384 == 2_202_080
    assert flops == 2 * macs + 7 * 33_792 + 3 * 88 + 2 * 5 + 2 * 384 == 4_641_746
    assert cost("cbam", ["24x16x24", "40x16x24"], 88) == (flops, macs)


def test_cbam_reference_24x16x24_40x16x24_out88():
    # timm: d = make_divisible(88/16, 1, round_limit=0) = round(5.5) = 6, plus BatchNorm(1) after the 7x7 conv
    flops, macs = _cbam_expected(64, 88, 6, 16, 24, spatial_bn=True)
    assert macs == 64 * 88 * 384 + 4 * 88 * 6 + 98 * 384 == 2_202_432
    assert flops == 2 * macs + 7 * 33_792 + 3 * 88 + 2 * 6 + 2 * 384 + 4 * 384 == 4_643_988
    assert cost("cbam", ["24x16x24", "40x16x24"], 88, variant="reference") == (flops, macs)
