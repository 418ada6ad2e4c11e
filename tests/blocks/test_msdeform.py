"""Multi-scale deformable attention: the Deformable DETR code (``MSDeformAttn.forward``,
``ms_deform_attn_core_pytorch``, the encoder's ``get_reference_points``) written out and compared,
plus a per-point loop; parameters and MACs by hand; bad inputs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fusioncli import create_fusion
from fusioncli.analysis import analyze
from fusioncli.errors import SpecError


def core_pytorch(value, value_spatial_shapes, sampling_locations, attention_weights):
    """fundamentalvision/Deformable-DETR models/ops/functions/ms_deform_attn_func.py."""
    N_, S_, M_, D_ = value.shape
    _, Lq_, M_, L_, P_, _ = sampling_locations.shape
    value_list = value.split([H_ * W_ for H_, W_ in value_spatial_shapes], dim=1)
    sampling_grids = 2 * sampling_locations - 1
    sampling_value_list = []
    for lid_, (H_, W_) in enumerate(value_spatial_shapes):
        value_l_ = value_list[lid_].flatten(2).transpose(1, 2).reshape(N_ * M_, D_, H_, W_)
        sampling_grid_l_ = sampling_grids[:, :, :, lid_].transpose(1, 2).flatten(0, 1)
        sampling_value_l_ = F.grid_sample(value_l_, sampling_grid_l_, mode="bilinear", padding_mode="zeros",
                                          align_corners=False)
        sampling_value_list.append(sampling_value_l_)
    attention_weights = attention_weights.transpose(1, 2).reshape(N_ * M_, 1, Lq_, L_ * P_)
    output = (torch.stack(sampling_value_list, dim=-2).flatten(-2) * attention_weights).sum(-1).view(N_, M_ * D_, Lq_)
    return output.transpose(1, 2).contiguous()


def get_reference_points(spatial_shapes, valid_ratios):
    """DeformableTransformerEncoder.get_reference_points."""
    reference_points_list = []
    for lvl, (H_, W_) in enumerate(spatial_shapes):
        ref_y, ref_x = torch.meshgrid(torch.linspace(0.5, H_ - 0.5, H_, dtype=torch.float32),
                                      torch.linspace(0.5, W_ - 0.5, W_, dtype=torch.float32), indexing="ij")
        ref_y = ref_y.reshape(-1)[None] / (valid_ratios[:, None, lvl, 1] * H_)
        ref_x = ref_x.reshape(-1)[None] / (valid_ratios[:, None, lvl, 0] * W_)
        reference_points_list.append(torch.stack((ref_x, ref_y), -1))
    reference_points = torch.cat(reference_points_list, 1)
    return reference_points[:, :, None] * valid_ratios[:, None]


def msdeform_reference(xs, w, heads, points):
    projected = [F.conv2d(x, w[f"proj_in.{i}.weight"], w[f"proj_in.{i}.bias"]) if f"proj_in.{i}.weight" in w else x
                 for i, x in enumerate(xs)]
    shapes = [tuple(x.shape[-2:]) for x in projected]
    src = torch.cat([x.flatten(2).transpose(1, 2) for x in projected], 1)
    N, Len_q, C = src.shape
    L = len(shapes)
    ref = get_reference_points(shapes, torch.ones(N, L, 2))
    value = F.linear(src, w["value_proj.weight"], w["value_proj.bias"]).view(N, Len_q, heads, C // heads)
    offsets = F.linear(src, w["sampling_offsets.weight"], w["sampling_offsets.bias"]).view(N, Len_q, heads, L, points, 2)
    aw = F.linear(src, w["attention_weights.weight"], w["attention_weights.bias"]).view(N, Len_q, heads, L * points)
    aw = F.softmax(aw, -1).view(N, Len_q, heads, L, points)
    spatial = torch.tensor(shapes)
    offset_normalizer = torch.stack([spatial[..., 1], spatial[..., 0]], -1)
    locations = ref[:, :, None, :, None, :] + offsets / offset_normalizer[None, None, None, :, None, :]
    out = F.linear(core_pytorch(value, shapes, locations, aw), w["output_proj.weight"], w["output_proj.bias"])
    return F.layer_norm(src + out, (C,), w.get("norm.weight"), w.get("norm.bias")) if "norm.weight" in w else src + out


def randomize(block, seed=5):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in block.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.3)


@pytest.mark.parametrize("cin,heads,points,norm", [((16, 16, 16), 4, 2, True), ((8, 24), 2, 3, False)])
def test_equals_the_reference_code(cin, heads, points, norm):
    torch.manual_seed(0)
    block = create_fusion("msdeform", list(cin), 16, num_heads=heads, num_points=points, norm=norm).eval()
    randomize(block)
    w = {k: v.detach().clone() for k, v in block.state_dict().items()}
    gen = torch.Generator().manual_seed(1)
    sizes = [(8, 10), (4, 5), (2, 3)][:len(cin)]
    xs = [torch.randn(2, c, *s, generator=gen) for c, s in zip(cin, sizes)]
    with torch.no_grad():
        y = block(*xs)
    assert y.shape == (2, sum(h * wd for h, wd in sizes), 16)
    torch.testing.assert_close(y, msdeform_reference(xs, w, heads, points), rtol=1e-5, atol=1e-5)


def test_one_query_by_hand():
    """Query q of level 0 (pixel (y, x)), head 0: sum over levels and points of a * bilinear(V_l at the pixel
    coordinates ((x + 0.5)/W0 + dx/W_l) * W_l - 0.5, likewise y), written out per point."""
    torch.manual_seed(0)
    block = create_fusion("msdeform", [8, 8], 8, num_heads=2, num_points=2, norm=False).eval()
    randomize(block)
    xs = [torch.randn(1, 8, 4, 5), torch.randn(1, 8, 2, 3)]
    shapes = [(4, 5), (2, 3)]
    with torch.no_grad():
        y = block(*xs)
        src = torch.cat([x.flatten(2).transpose(1, 2) for x in xs], 1)[0]
        value = block.value_proj(src)
        off = block.sampling_offsets(src).view(-1, 2, 2, 2, 2)
        aw = block.attention_weights(src).view(-1, 2, 4).softmax(-1).view(-1, 2, 2, 2)
    q, (qy, qx) = 7, divmod(7, 5)
    starts = [0, 20]
    acc = torch.zeros(4)
    for lvl, (h, w) in enumerate(shapes):
        v = value[starts[lvl]:starts[lvl] + h * w, :4].view(h, w, 4)  # head 0: channels 0..3
        for p in range(2):
            px = ((qx + 0.5) / 5 + off[q, 0, lvl, p, 0] / w) * w - 0.5
            py = ((qy + 0.5) / 4 + off[q, 0, lvl, p, 1] / h) * h - 0.5
            x0, y0 = math.floor(px), math.floor(py)
            s = torch.zeros(4)
            for yy in (y0, y0 + 1):
                for xx in (x0, x0 + 1):
                    if 0 <= yy < h and 0 <= xx < w:
                        s += (1 - abs(py - yy)) * (1 - abs(px - xx)) * v[yy, xx]
            acc += aw[q, 0, lvl, p] * s
    with torch.no_grad():
        # the query's output minus the residual and bias, less head 0's part through output_proj: head 1's part
        out_h0 = block.output_proj.weight[:, :4] @ acc
        full_out = y[0, q] - src[q] - block.output_proj.bias
    other = full_out - out_h0
    with torch.no_grad():
        # recompute head 1's contribution through the block's core, then the sum must match
        from fusioncli.blocks.msdeform import ms_deform_attn_core, reference_points
        ref = reference_points(shapes, src)
        loc = ref[None, :, None, None, None, :] + off.unsqueeze(0) / torch.tensor([[5.0, 4.0], [3.0, 2.0]])[
            None, None, None, :, None, :]
        core = ms_deform_attn_core(value.view(1, -1, 2, 4), shapes, loc, aw.unsqueeze(0))[0, q]
    torch.testing.assert_close(core[:4], acc, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(other, block.output_proj.weight[:, 4:] @ core[4:], rtol=1e-4, atol=1e-5)


def test_parameters_by_hand():
    c, m, levels, p = 256, 8, 3, 4
    block = create_fusion("msdeform", [256, 256, 256], c)
    # value and output projections C*C + C each; offsets C*(M L P 2) + M L P 2; weights C*(M L P) + M L P; LN 2C
    assert sum(q.numel() for q in block.parameters()) == \
        2 * (c * c + c) + (c * m * levels * p * 2 + m * levels * p * 2) + (c * m * levels * p + m * levels * p) + 2 * c \
        == 206_112
    block = create_fusion("msdeform", [64, 128], c)  # projections 1x1 with bias for both levels, L = 2
    assert sum(q.numel() for q in block.parameters()) == \
        (64 * c + c) + (128 * c + c) + 2 * (c * c + c) + (c * 128 + 128) + (c * 64 + 64) + 2 * c


def test_macs_by_hand():
    c, n = 256, 32 * 32 + 16 * 16 + 8 * 8
    r = analyze("msdeform", inputs=["256x32x32", "256x16x16", "256x8x8"], out=c, time=False)
    # per token: value C*C, offsets C*192, weights C*96, output C*C; sampling and the weighted sum are FLOPs
    assert r.cost.macs == n * (c * c + c * 192 + c * 96 + c * c) == 275_251_200
    assert r.outputs == [[1, n, c]]
    assert r.cost.uncounted_ops == {}


def test_bad_options():
    with pytest.raises(SpecError, match="divisible by num_heads, got 20 and 8"):
        create_fusion("msdeform", [8], 20)
    with pytest.raises(SpecError, match="num_points: invalid value 0"):
        create_fusion("msdeform", [8], 16, num_points=0)
