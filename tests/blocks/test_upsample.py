"""CARAFE and DySample merges: parameters and MACs by hand, the authors' computations written out
independently (CARAFE's reassembly as its CUDA op defines it, DySample's ``forward_lp``/``sample``
as tiny-smart/dysample writes them), bad inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fusioncli import create_fusion
from fusioncli.analysis import analyze
from fusioncli.errors import SpecError


def randomize(block, seed=5, scale=0.3):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * scale)


def carafe_reference(x, w, s=2, k=5):
    """CARAFEPack: compressor, encoder, pixel_shuffle, softmax over the k^2 taps; then the carafe op:
    out[c, i, j] = sum_{a,b} mask[a*k+b, i, j] * X[c, i//s + a - k//2, j//s + b - k//2] (zero padded)."""
    mask = F.conv2d(F.conv2d(x, w["upsample.channel_compressor.weight"], w["upsample.channel_compressor.bias"]),
                    w["upsample.content_encoder.weight"], w["upsample.content_encoder.bias"], padding=1)
    mask = F.pixel_shuffle(mask, s)
    b, kk, hs, ws = mask.shape
    mask = F.softmax(mask.view(b, 1, kk, hs, ws), dim=2).view(b, kk, hs, ws)
    h, wd = x.shape[-2:]
    xp = F.pad(x, [k // 2] * 4)
    out = torch.zeros(b, x.shape[1], hs, ws)
    for a in range(k):
        for c in range(k):
            shifted = xp[:, :, a:a + h, c:c + wd].repeat_interleave(s, 2).repeat_interleave(s, 3)
            out += mask[:, a * k + c].unsqueeze(1) * shifted
    return out


def dysample_reference(x, w, init_pos, s=2, groups=4):
    """tiny-smart/dysample ``forward_lp`` (static scope) and ``sample``, as written there."""
    offset = F.conv2d(x, w["upsample.offset.weight"], w["upsample.offset.bias"]) * 0.25 + init_pos
    B, _, H, W = offset.shape
    offset = offset.view(B, 2, -1, H, W)
    coords_h = torch.arange(H) + 0.5
    coords_w = torch.arange(W) + 0.5
    coords = torch.stack(torch.meshgrid([coords_w, coords_h], indexing="ij")).transpose(1, 2).unsqueeze(1).unsqueeze(0)
    normalizer = torch.tensor([W, H], dtype=x.dtype).view(1, 2, 1, 1, 1)
    coords = F.pixel_shuffle(2 * (coords + offset) / normalizer - 1, s).permute(0, 2, 3, 4, 1).contiguous().flatten(0, 1)
    return F.grid_sample(x.reshape(B * groups, -1, H, W), coords, mode="bilinear", align_corners=False,
                         padding_mode="border").view(B, -1, s * H, s * W)


def merge(block_fn, x1, x2, w):
    """mmdet FPN_CARAFE level: fpn_conv(lateral0(X1) + up(lateral1(X2)))."""
    lat1 = F.conv2d(x1, w["lateral.0.weight"], w["lateral.0.bias"])
    lat2 = F.conv2d(x2, w["lateral.1.weight"], w["lateral.1.bias"])
    return F.conv2d(lat1 + block_fn(lat2), w["fpn_conv.weight"], w["fpn_conv.bias"], padding=1)


@pytest.mark.parametrize("cin", [(16, 16), (8, 24)])
def test_carafe_equals_the_reassembly_op(cin):
    torch.manual_seed(0)
    block = create_fusion("carafe", list(cin), 16, compressed_channels=8).eval()
    randomize(block)
    w = {k: v.detach().clone() for k, v in block.state_dict().items()}
    gen = torch.Generator().manual_seed(1)
    x1, x2 = torch.randn(2, cin[0], 10, 12, generator=gen), torch.randn(2, cin[1], 5, 6, generator=gen)
    with torch.no_grad():
        y = block(x1, x2)
    assert y.shape == (2, 16, 10, 12)
    torch.testing.assert_close(y, merge(lambda t: carafe_reference(t, w), x1, x2, w), rtol=1e-4, atol=1e-4)


def test_dysample_init_pos_is_the_references():
    h = torch.arange((-2 + 1) / 2, (2 - 1) / 2 + 1) / 2
    ref = torch.stack(torch.meshgrid([h, h], indexing="ij")).transpose(1, 2).repeat(1, 4, 1).reshape(1, -1, 1, 1)
    assert torch.equal(create_fusion("dysample", [16, 16], 16).upsample.init_pos, ref)


@pytest.mark.parametrize("cin", [(16, 16), (8, 24)])
def test_dysample_equals_the_reference_code(cin):
    torch.manual_seed(0)
    block = create_fusion("dysample", list(cin), 16).eval()
    randomize(block)
    w = {k: v.detach().clone() for k, v in block.state_dict().items()}
    gen = torch.Generator().manual_seed(1)
    x1, x2 = torch.randn(2, cin[0], 10, 14, generator=gen), torch.randn(2, cin[1], 5, 7, generator=gen)
    with torch.no_grad():
        y = block(x1, x2)
    assert y.shape == (2, 16, 10, 14)
    expected = merge(lambda t: dysample_reference(t, w, w["upsample.init_pos"]), x1, x2, w)
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)


def test_dysample_dyscope_runs_the_scope_conv():
    block = create_fusion("dysample", [16, 16], 16, dyscope=True).eval()
    randomize(block)
    w = {k: v.detach().clone() for k, v in block.state_dict().items()}
    x = torch.randn(1, 16, 4, 4)
    scope = F.conv2d(x, w["upsample.scope.weight"], w["upsample.scope.bias"]).sigmoid()
    offset = F.conv2d(x, w["upsample.offset.weight"], w["upsample.offset.bias"]) * scope * 0.5 + w["upsample.init_pos"]
    # the static-scope reference fed this offset: undo its * 0.25 + init_pos by passing offset through a 1x1 identity
    with torch.no_grad():
        got = block.upsample(x)
    ident = {"upsample.offset.weight": torch.zeros(32, 16, 1, 1), "upsample.offset.bias": torch.zeros(32)}
    expected = dysample_reference(x, ident, offset)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_parameters_by_hand():
    # laterals Cf*C + C, Cc*C + C; fpn_conv 9*C*C + C
    base = (256 * 256 + 256) + (512 * 256 + 256) + (9 * 256 * 256 + 256)
    # CARAFE: compressor C*64 + 64; encoder 64*9*(25*4) + 100
    carafe = create_fusion("carafe", [256, 512], 256)
    assert sum(p.numel() for p in carafe.parameters()) == base + (256 * 64 + 64) + (64 * 9 * 100 + 100) == 861_348
    # DySample: offset conv C * 2*4*4 + 32 (dyscope: the same again)
    dys = create_fusion("dysample", [256, 512], 256)
    assert sum(p.numel() for p in dys.parameters()) == base + (256 * 32 + 32) == 795_424
    dys = create_fusion("dysample", [256, 512], 256, dyscope=True)
    assert sum(p.numel() for p in dys.parameters()) == base + 2 * (256 * 32 + 32)


def test_macs_by_hand():
    hw, hwc = 32 * 32, 16 * 16
    base = 256 * 256 * hw + 512 * 256 * hwc + 9 * 256 * 256 * hw  # laterals at their sizes, 3x3 at the fine size
    r = analyze("carafe", inputs=["256x32x32", "512x16x16"], out=256, time=False)
    # compressor 256->64 and encoder 3x3 64->100 at the coarse size; reassembly: k^2 C per output pixel
    assert r.cost.macs == base + 256 * 64 * hwc + 64 * 9 * 100 * hwc + 25 * 256 * hw == 730_136_576
    assert r.cost.uncounted_ops == {}
    r = analyze("dysample", inputs=["256x32x32", "512x16x16"], out=256, time=False)
    assert r.cost.macs == base + 256 * 32 * hwc == 706_740_224  # offset conv 256 -> 2*4*2^2 at the coarse size


@pytest.mark.parametrize("kind", ["carafe", "dysample"])
def test_sizes_must_be_in_the_scale_ratio(kind):
    block = create_fusion(kind, [8, 8], 8)
    with pytest.raises(SpecError, match="must be 10x12 for a 5x6 coarse map, got 11x12"):
        block(torch.randn(1, 8, 11, 12), torch.randn(1, 8, 5, 6))


def test_bad_options():
    with pytest.raises(SpecError, match="up_kernel: invalid value 4"):
        create_fusion("carafe", [8, 8], 8, up_kernel=4)
    with pytest.raises(SpecError, match="divisible by groups, got 10 and 4"):
        create_fusion("dysample", [8, 8], 10)
    with pytest.raises(SpecError, match="exactly 2"):
        create_fusion("carafe", [8, 8, 8], 8)
