"""BiSeNet FFM: counts by hand, functional reimplementations of the paper and mmseg variants, bad inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fusioncli import create_fusion
from fusioncli.analysis import analyze
from fusioncli.errors import SpecError

from .helpers import randomize_bn


def bn(t, w, p):
    return F.batch_norm(t, w[f"{p}.running_mean"], w[f"{p}.running_var"], w[f"{p}.weight"], w[f"{p}.bias"],
                        False, 0.0, 1e-5)


def ffm_by_hand(x1, x2, w, variant):
    """f = ReLU(BN(conv(cat))); paper: a = sigmoid(W2 ReLU(W1 GAP f)); mmseg: a = sigmoid(ReLU(BN(W GAP f)))."""
    if x2.shape[-2:] != x1.shape[-2:]:
        x2 = F.interpolate(x2, size=x1.shape[-2:], mode="bilinear", align_corners=False)
    f = F.relu(bn(F.conv2d(torch.cat([x1, x2], 1), w["conv.0.weight"]), w, "conv.1"))
    s = f.mean(dim=(2, 3), keepdim=True)
    if variant == "paper":
        a = torch.sigmoid(F.conv2d(F.relu(F.conv2d(s, w["attn.0.weight"])), w["attn.2.weight"]))
    else:
        a = torch.sigmoid(F.relu(bn(F.conv2d(s, w["attn.0.weight"]), w, "attn.1")))
    return f * a + f


@pytest.mark.parametrize("variant,reduction", [("paper", 1), ("paper", 4), ("reference", 1)])
def test_forward_equals_formula(variant, reduction):
    torch.manual_seed(0)
    block = create_fusion("ffm", [8, 24], 32, variant=variant, reduction=reduction).eval()
    randomize_bn(block)
    w = {k: v.detach().clone() for k, v in block.state_dict().items()}
    gen = torch.Generator().manual_seed(1)
    x1, x2 = torch.randn(2, 8, 12, 12, generator=gen), torch.randn(2, 24, 6, 6, generator=gen)
    with torch.no_grad():
        y = block(x1, x2)
    torch.testing.assert_close(y, ffm_by_hand(x1, x2, w, variant), rtol=1e-5, atol=1e-5)


def test_variants_layers():
    paper = create_fusion("ffm", [128, 128], 256)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in paper.attn)
    assert [m.out_channels for m in paper.attn if isinstance(m, torch.nn.Conv2d)] == [256, 256]
    coin = create_fusion("ffm", [128, 128], 256, reduction=4)
    assert [m.out_channels for m in coin.attn if isinstance(m, torch.nn.Conv2d)] == [64, 256]
    ref = create_fusion("ffm", [128, 128], 256, variant="reference")
    assert [type(m).__name__ for m in ref.attn] == ["Conv2d", "BatchNorm2d", "ReLU", "Sigmoid"]


def test_parameter_count_by_hand():
    def count(**kw):
        return sum(p.numel() for p in create_fusion("ffm", [128, 128], 256, **kw).parameters())

    # paper: sum(Ci)*C + 2C + 2*C*(C/r), no biases
    assert count() == 256 * 256 + 2 * 256 + 2 * 256 * 256 == 197_120
    assert count(reduction=4) == 256 * 256 + 2 * 256 + 2 * 256 * 64 == 98_816
    # mmseg: sum(Ci)*C + 2C + C*C + 2C
    assert count(variant="reference") == 256 * 256 + 2 * 256 + 256 * 256 + 2 * 256 == 132_096


def test_macs_by_hand():
    # sum(Ci)*C*H*W for the fusing conv + the attention convs on a 1x1 map
    r = analyze("ffm", inputs=["128x64x64", "128x64x64"], out=256, time=False)
    assert r.cost.macs == 256 * 256 * 64 * 64 + 2 * 256 * 256 == 268_566_528
    r = analyze("ffm", inputs=["64x32x32", "128x16x16"], out=64, options={"reduction": 4}, time=False)
    assert r.cost.macs == 192 * 64 * 32 * 32 + 2 * 64 * 16 == 12_584_960
    assert r.outputs == [[1, 64, 32, 32]]
    r = analyze("ffm", inputs=["64x32x32", "128x16x16"], out=64, options={"variant": "reference"}, time=False)
    assert r.cost.macs == 192 * 64 * 32 * 32 + 64 * 64
    assert r.unused_params == []


def test_reduction_with_reference_is_refused():
    with pytest.raises(SpecError, match="variant='paper'"):
        create_fusion("ffm", [128, 128], 256, variant="reference", reduction=4)


@pytest.mark.parametrize("reduction", [0, 300])
def test_bad_reduction(reduction):
    with pytest.raises(SpecError, match="reduction"):
        create_fusion("ffm", [128, 128], 256, reduction=reduction)
