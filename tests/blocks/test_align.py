"""SFNet and FaPN merges: parameters and MACs by hand; SFNet's ``AlignedModule``/``flow_warp`` as
lxtGH/SFSegNets writes them; FaPN's ``FeatureAlign_V2`` with DCNv2 computed by an explicit bilinear
gather (DCNv2's ``dmcn_im2col_bilinear``), independent of ``grid_sample``; bad inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fusioncli import create_fusion
from fusioncli.analysis import analyze
from fusioncli.errors import SpecError

from .helpers import randomize_bn


def randomize(block, seed=5, scale=0.3):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in block.named_parameters():
            if "bn" not in name:
                p.copy_(torch.randn(p.shape, generator=gen) * scale)
    randomize_bn(block)


def bn(x, w, prefix):
    return F.batch_norm(x, w[f"{prefix}.running_mean"], w[f"{prefix}.running_var"], w[f"{prefix}.weight"],
                        w[f"{prefix}.bias"], False, 0.0, 1e-5)


def flow_warp(input, flow, size):
    """SFSegNets ``AlignedModule.flow_warp``."""
    out_h, out_w = size
    n, c, h, w = input.size()
    norm = torch.tensor([[[[out_w, out_h]]]]).type_as(input).to(input.device)
    h = torch.linspace(-1.0, 1.0, out_h).view(-1, 1).repeat(1, out_w)
    w = torch.linspace(-1.0, 1.0, out_w).repeat(out_h, 1)
    grid = torch.cat((w.unsqueeze(2), h.unsqueeze(2)), 2)
    grid = grid.repeat(n, 1, 1, 1).type_as(input).to(input.device)
    grid = grid + flow.permute(0, 2, 3, 1) / norm
    return F.grid_sample(input, grid, align_corners=True)


def sfnet_reference(x1, x2, w):
    """UperNetAlignHead level: conv_x = fpn_in(X1); f = conv_x + AlignedModule([conv_x, f]); fpn_out(f)."""
    conv_x = F.relu(bn(F.conv2d(x1, w["lateral.0.weight"], w["lateral.0.bias"]), w, "lateral.1"))
    f = F.conv2d(x2, w["proj.0.weight"], w["proj.0.bias"]) if "proj.0.weight" in w else x2
    low_feature, h_feature = conv_x, f
    h_feature_orign = h_feature
    size = low_feature.size()[2:]
    low_feature = F.conv2d(low_feature, w["down_l.weight"])
    h_feature = F.conv2d(h_feature, w["down_h.weight"])
    h_feature = F.interpolate(h_feature, size=size, mode="bilinear", align_corners=True)
    flow = F.conv2d(torch.cat([h_feature, low_feature], 1), w["flow_make.weight"], padding=1)
    f = conv_x + flow_warp(h_feature_orign, flow, size=size)
    return F.relu(bn(F.conv2d(f, w["fpn_out.0.weight"], padding=1), w, "fpn_out.1"))


@pytest.mark.parametrize("cin,coarse", [((16, 16), (5, 6)), ((8, 24), (4, 7))])
def test_sfnet_equals_the_reference_code(cin, coarse):
    torch.manual_seed(0)
    block = create_fusion("sfnet", list(cin), 16).eval()
    randomize(block)
    w = {k: v.detach().clone() for k, v in block.state_dict().items()}
    gen = torch.Generator().manual_seed(1)
    x1, x2 = torch.randn(2, cin[0], 10, 12, generator=gen), torch.randn(2, cin[1], *coarse, generator=gen)
    with torch.no_grad():
        y = block(x1, x2)
    assert y.shape == (2, 16, 10, 12)
    torch.testing.assert_close(y, sfnet_reference(x1, x2, w), rtol=1e-5, atol=1e-5)


def dcn_v2_by_gather(x, offset, mask, weight, bias, groups):
    """Modulated deformable conv, 3x3, stride 1, padding 1: DCNv2's im2col with its bilinear rule
    (a sample at (h, w) is 0 unless -1 < h < H and -1 < w < W; each corner outside counts 0), then
    the weight. Offsets (B, 2 G 9, H, W) as (dy, dx) per group and tap; masks (B, G 9, H, W)."""
    b, c, h, w = x.shape
    cg = c // groups
    cols = torch.zeros(b, c, 9, h, w)
    ys = torch.arange(h, dtype=x.dtype).view(h, 1)
    xs = torch.arange(w, dtype=x.dtype).view(1, w)
    for g in range(groups):
        xg = x[:, g * cg:(g + 1) * cg].reshape(b, cg, h * w)
        for t in range(9):
            i, j = divmod(t, 3)
            py = ys - 1 + i + offset[:, 2 * (g * 9 + t)]  # (B, H, W)
            px = xs - 1 + j + offset[:, 2 * (g * 9 + t) + 1]
            y0, x0 = torch.floor(py), torch.floor(px)
            val = torch.zeros(b, cg, h, w)
            for dy in (0, 1):
                for dx in (0, 1):
                    yy, xx = y0 + dy, x0 + dx
                    wgt = (1 - (py - yy).abs()) * (1 - (px - xx).abs())
                    ok = (yy >= 0) & (yy <= h - 1) & (xx >= 0) & (xx <= w - 1) & (py > -1) & (px > -1) & (py < h) & (px < w)
                    idx = (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).long().view(b, 1, h * w).expand(b, cg, h * w)
                    v = torch.gather(xg, 2, idx).view(b, cg, h, w)
                    val += torch.where(ok.unsqueeze(1), wgt.unsqueeze(1) * v, torch.zeros(()))
            cols[:, g * cg:(g + 1) * cg, t] = val * mask[:, g * 9 + t].unsqueeze(1)
    return torch.einsum("bckhw,ock->bohw", cols, weight.view(weight.shape[0], c, 9)) + bias.view(1, -1, 1, 1)


def fapn_reference(x1, x2, w, groups, up_factor=2):
    """FAN level: FeatureAlign_V2(X1, lateral_conv(X2)), then the output conv (the paper: ``up_factor`` 1)."""
    feat_s = F.conv2d(x2, w["lateral_top.weight"], w["lateral_top.bias"])
    feat_up = F.interpolate(feat_s, x1.shape[2:], mode="bilinear", align_corners=False)
    atten = torch.sigmoid(F.conv2d(F.avg_pool2d(x1, x1.size()[2:]), w["lateral_conv.conv_atten.weight"]))
    feat_arm = F.conv2d(x1 + x1 * atten, w["lateral_conv.conv.weight"])
    offset = F.conv2d(torch.cat([feat_arm, feat_up * up_factor], dim=1), w["offset.weight"])
    out = F.conv2d(offset, w["dcpack_L2.conv_offset_mask.weight"], w["dcpack_L2.conv_offset_mask.bias"], padding=1)
    o1, o2, mask = torch.chunk(out, 3, dim=1)
    feat_align = F.relu(dcn_v2_by_gather(feat_up, torch.cat((o1, o2), dim=1), torch.sigmoid(mask),
                                         w["dcpack_L2.weight"], w["dcpack_L2.bias"], groups))
    return F.conv2d(feat_align + feat_arm, w["output_conv.weight"], w["output_conv.bias"], padding=1)


@pytest.mark.parametrize("cin,coarse,groups,variant", [((16, 16), (5, 6), 8, "reference"), ((8, 24), (4, 7), 2, "paper")])
def test_fapn_equals_dcnv2_by_gather(cin, coarse, groups, variant):
    torch.manual_seed(0)
    block = create_fusion("fapn", list(cin), 16, deformable_groups=groups, variant=variant).eval()
    randomize(block, scale=0.2)  # offsets of a few pixels: taps cross the borders
    w = {k: v.detach().clone() for k, v in block.state_dict().items()}
    gen = torch.Generator().manual_seed(1)
    x1, x2 = torch.randn(2, cin[0], 10, 12, generator=gen), torch.randn(2, cin[1], *coarse, generator=gen)
    with torch.no_grad():
        y = block(x1, x2)
        factor = 2 if variant == "reference" else 1
        off = block.dcpack_L2.conv_offset_mask(block.offset(torch.cat([block.lateral_conv(x1), factor * F.interpolate(
            block.lateral_top(x2), (10, 12), mode="bilinear")], 1)))
    assert off[:, :2 * groups * 9].abs().max() > 1.5  # the check reaches past neighbouring pixels
    assert y.shape == (2, 16, 10, 12)
    torch.testing.assert_close(y, fapn_reference(x1, x2, w, groups, factor), rtol=1e-4, atol=1e-4)


def test_fapn_offsets_start_at_zero():
    """DCN's conv_offset_mask is zero-initialised: offsets 0 and masks 0.5, a plain 3x3 conv at half weight."""
    block = create_fusion("fapn", [8, 8], 16).eval()
    dcn = block.dcpack_L2
    x, feat = torch.randn(1, 16, 6, 7), torch.randn(1, 16, 6, 7)
    with torch.no_grad():
        torch.testing.assert_close(dcn(x, feat), F.conv2d(x, dcn.weight * 0.5, dcn.bias, padding=1), rtol=1e-5, atol=1e-5)


def test_parameters_by_hand():
    c = 256
    sfnet = create_fusion("sfnet", [256, 512], c)
    # lateral conv + BN, projection 512 -> C, down_h and down_l C -> C/2, flow 3x3 C -> 2, fpn_out 3x3 + BN
    assert sum(p.numel() for p in sfnet.parameters()) == \
        (256 * c + c + 2 * c) + (512 * c + c) + 2 * (c * c // 2) + 9 * c * 2 + (9 * c * c + 2 * c) == 858_112
    fapn = create_fusion("fapn", [256, 512], c)
    # FSM 256*256 + 256*C; top lateral 512*C + C; offset 2C*C; conv_offset_mask 9*C*(3*8*9) + 216; DCN 9*C*C + C;
    # output conv 9*C*C + C
    assert sum(p.numel() for p in fapn.parameters()) == \
        (256 * 256 + 256 * c) + (512 * c + c) + 2 * c * c + (9 * c * 216 + 216) + 2 * (9 * c * c + c) == 2_071_512


def test_macs_by_hand():
    c, hw, hwc = 256, 32 * 32, 16 * 16
    r = analyze("sfnet", inputs=["256x32x32", "512x16x16"], out=c, time=False)
    assert r.cost.macs == (256 * c * hw + 512 * c * hwc + c * (c // 2) * hwc + c * (c // 2) * hw + 9 * c * 2 * hw
                           + 9 * c * c * hw) == 751_304_704
    r = analyze("fapn", inputs=["256x32x32", "512x16x16"], out=c, time=False)
    # FSM: attention 1x1 on the pooled 1x1 map, conv at full size; top lateral at the coarse size; offset 2C -> C;
    # conv_offset_mask 3x3 C -> 216; deformable conv: 9 C per output element (the sampled columns x the weight); output conv
    assert r.cost.macs == (256 * 256 + 256 * c * hw + 512 * c * hwc + 2 * c * c * hw + 9 * c * 216 * hw
                           + 9 * c * c * hw + 9 * c * c * hw) == 1_952_514_048
    assert r.cost.uncounted_ops == {}


def test_bad_options():
    with pytest.raises(SpecError, match="divisible by deformable_groups, got 12 and 8"):
        create_fusion("fapn", [8, 8], 12)
    with pytest.raises(SpecError, match="even width, got 15"):
        create_fusion("sfnet", [8, 8], 15)


def test_fapn_reference_variant_costs_one_multiplication_per_element_of_u():
    inputs = ["16x8x8", "24x4x4"]
    paper = analyze("fapn", inputs=inputs, out=16, time=False)
    code = analyze("fapn", inputs=inputs, out=16, time=False, options={"variant": "reference"})
    assert code.cost.macs == paper.cost.macs
    assert code.cost.flops - paper.cost.flops == 16 * 8 * 8  # U * 2: C x H x W at the fine size
