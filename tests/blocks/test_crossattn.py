"""Cross-attention fusion: counts by hand (quadratic in the token count), a plain reimplementation, bad inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fusioncli import create_fusion
from fusioncli.analysis import analyze
from fusioncli.errors import SpecError


def attention_by_hand(x1, x2, w, heads, norm):
    """CrossViT: T1 + proj(softmax(q k^T / sqrt(d)) v), q from LN(T1), k and v from LN(T2)."""
    if "proj_in.0.weight" in w:
        x1 = F.conv2d(x1, w["proj_in.0.weight"], w["proj_in.0.bias"])
    if "proj_in.1.weight" in w:
        x2 = F.conv2d(x2, w["proj_in.1.weight"], w["proj_in.1.bias"])
    b, c, h, wd = x1.shape
    t1, t2 = x1.flatten(2).transpose(1, 2), x2.flatten(2).transpose(1, 2)
    n1, n2 = (F.layer_norm(t, (c,), w["norm.weight"], w["norm.bias"], 1e-6) for t in (t1, t2)) if norm else (t1, t2)
    q, k, v = F.linear(n1, w["wq.weight"], w.get("wq.bias")), F.linear(n2, w["wk.weight"], w.get("wk.bias")), \
        F.linear(n2, w["wv.weight"], w.get("wv.bias"))
    d = c // heads
    out = []
    for i in range(heads):
        sl = slice(i * d, (i + 1) * d)
        a = torch.softmax(q[..., sl] @ k[..., sl].transpose(1, 2) / d ** 0.5, dim=-1)
        out.append(a @ v[..., sl])
    o = F.linear(torch.cat(out, -1), w["proj.weight"], w["proj.bias"])
    return (t1 + o).transpose(1, 2).reshape(b, c, h, wd)


@pytest.mark.parametrize("c_in,heads,qkv_bias,norm", [((16, 16), 4, False, True), ((8, 24), 2, True, True),
                                                      ((16, 24), 8, False, False)])
def test_forward_equals_formula(c_in, heads, qkv_bias, norm):
    torch.manual_seed(0)
    block = create_fusion("crossattn", list(c_in), 16, num_heads=heads, qkv_bias=qkv_bias, norm=norm).eval()
    with torch.no_grad():
        for m in block.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.normal_()
                m.bias.normal_()
    w = {k: v.detach().clone() for k, v in block.state_dict().items()}
    gen = torch.Generator().manual_seed(1)
    x1, x2 = torch.randn(2, c_in[0], 6, 5, generator=gen), torch.randn(2, c_in[1], 3, 7, generator=gen)
    with torch.no_grad():
        y = block(x1, x2)
    assert y.shape == (2, 16, 6, 5)
    torch.testing.assert_close(y, attention_by_hand(x1, x2, w, heads, norm), rtol=1e-5, atol=1e-5)


def test_parameter_count_by_hand():
    # LN 2C + Wq, Wk, Wv 3*C*C + their biases 3C (qkv_bias, the default) + proj C*C + C
    assert sum(p.numel() for p in create_fusion("crossattn", [64, 64], 64).parameters()) == \
        2 * 64 + 3 * 64 * 64 + 3 * 64 + 64 * 64 + 64 == 16_768
    assert sum(p.numel() for p in create_fusion("crossattn", [64, 64], 64, qkv_bias=False).parameters()) == \
        2 * 64 + 3 * 64 * 64 + 64 * 64 + 64 == 16_576
    # + 1x1 projections Ci*C + C where Ci != C
    block = create_fusion("crossattn", [32, 96], 64)
    assert sum(p.numel() for p in block.parameters()) == \
        (32 * 64 + 64) + (96 * 64 + 64) + 2 * 64 + 3 * 64 * 64 + 3 * 64 + 64 * 64 + 64 == 25_088


def macs(n1, n2, c, c1=None, c2=None):
    proj = (n1 * c1 * c if c1 else 0) + (n2 * c2 * c if c2 else 0)
    return proj + n1 * c * c + 2 * n2 * c * c + 2 * n1 * n2 * c + n1 * c * c  # q, k and v, QK^T and AV, out proj


def test_macs_by_hand():
    r = analyze("crossattn", inputs=["64x16x16", "64x8x8"], out=64, time=False)
    assert r.cost.macs == macs(256, 64, 64) == 4_718_592
    r = analyze("crossattn", inputs=["32x16x16", "96x8x8"], out=64, time=False)
    assert r.cost.macs == macs(256, 64, 64, c1=32, c2=96) == 5_636_096
    assert r.outputs == [[1, 64, 16, 16]]
    assert r.unused_params == []


def test_attention_cost_is_quadratic_in_resolution():
    small = analyze("crossattn", inputs=["64x16x16", "64x16x16"], out=64, time=False).cost.macs
    large = analyze("crossattn", inputs=["64x32x32", "64x32x32"], out=64, time=False).cost.macs
    assert small == macs(256, 256, 64)
    assert large - 4 * small == 2 * (1024 * 1024 - 4 * 256 * 256) * 64


def test_heads_must_divide_width():
    with pytest.raises(SpecError, match="divisible by num_heads, got 60 and 8"):
        create_fusion("crossattn", [64, 64], 60)


def test_bad_num_heads():
    with pytest.raises(SpecError, match="num_heads"):
        create_fusion("crossattn", [64, 64], 64, num_heads=0)


def test_exactly_two_inputs():
    with pytest.raises(SpecError, match="exactly 2"):
        create_fusion("crossattn", [64, 64, 64], 64)
