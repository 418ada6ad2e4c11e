"""eca and coordatt: functional transcriptions of the authors' modules (ECANet ``eca_layer``,
houqb ``CoordAtt``) after the concat + 1x1 projection, compared output for output; widths by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fusioncli import create_fusion
from fusioncli.errors import SpecError

from .helpers import randomize_bn


def project(x1, x2, w):
    if x2.shape[-2:] != x1.shape[-2:]:
        x2 = F.interpolate(x2, size=x1.shape[-2:], mode="bilinear", align_corners=False)
    return F.conv2d(torch.cat([x1, x2], 1), w["proj.weight"], w["proj.bias"])


def eca_layer_reference(x, weight):
    """BangguWu/ECANet models/eca_module.py eca_layer.forward: y = avg_pool(x);
    y = conv(y.squeeze(-1).transpose(-1, -2)).transpose(-1, -2).unsqueeze(-1); x * sigmoid(y).expand_as(x)."""
    k = weight.shape[-1]
    y = F.adaptive_avg_pool2d(x, 1)
    y = F.conv1d(y.squeeze(-1).transpose(-1, -2), weight, None, 1, (k - 1) // 2).transpose(-1, -2).unsqueeze(-1)
    return x * torch.sigmoid(y).expand_as(x)


def coordatt_reference(x, w):
    """houqb/CoordAttention coordatt.py CoordAtt.forward, h_swish(x) = x * relu6(x + 3) / 6."""
    n, c, h, wd = x.size()
    x_h = F.adaptive_avg_pool2d(x, (h, 1))          # pool_h = AdaptiveAvgPool2d((None, 1))
    x_w = F.adaptive_avg_pool2d(x, (1, wd)).permute(0, 1, 3, 2)
    y = torch.cat([x_h, x_w], dim=2)
    y = F.conv2d(y, w["conv1.weight"], w["conv1.bias"])
    y = F.batch_norm(y, w["bn1.running_mean"], w["bn1.running_var"], w["bn1.weight"], w["bn1.bias"], False, 0.0, 1e-5)
    y = y * (F.relu6(y + 3) / 6)
    x_h, x_w = torch.split(y, [h, wd], dim=2)
    x_w = x_w.permute(0, 1, 3, 2)
    a_h = F.conv2d(x_h, w["conv_h.weight"], w["conv_h.bias"]).sigmoid()
    a_w = F.conv2d(x_w, w["conv_w.weight"], w["conv_w.bias"]).sigmoid()
    return x * a_w * a_h


def _inputs():
    gen = torch.Generator().manual_seed(1)
    return torch.randn(2, 24, 12, 10, generator=gen), torch.randn(2, 40, 6, 5, generator=gen)


@pytest.mark.parametrize("out,variant,k", [(64, "paper", 3), (256, "paper", 5), (64, "reference", 3), (32, "paper", 7)])
def test_eca_equals_reference(out, variant, k):
    torch.manual_seed(0)
    block = create_fusion("eca", [24, 40], out, variant=variant, k_size=k if out == 32 else 0).eval()
    assert block.conv.kernel_size == (k,)
    w = {n: v.detach().clone() for n, v in block.state_dict().items()}
    x1, x2 = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(block(x1, x2), eca_layer_reference(project(x1, x2, w), w["conv.weight"]),
                                   rtol=1e-5, atol=1e-5)


def test_eca_adaptive_kernel_by_hand():
    # k = t if t odd else t + 1, t = int(|(log2 C + 1) / 2|)
    for c, k in [(16, 3), (32, 3), (64, 3), (128, 5), (256, 5), (512, 5), (1024, 5), (2048, 7)]:
        t = int(abs((math.log2(c) + 1) / 2))
        assert (t if t % 2 else t + 1) == k
        assert create_fusion("eca", [c], c).conv.kernel_size == (k,)
    assert sum(p.numel() for p in create_fusion("eca", [64, 64], 64).parameters()) == 128 * 64 + 64 + 3


@pytest.mark.parametrize("out,reduction,mip", [(64, 32, 8), (512, 32, 16), (96, 4, 24)])
def test_coordatt_equals_reference(out, reduction, mip):
    torch.manual_seed(0)
    block = create_fusion("coordatt", [24, 40], out, reduction=reduction).eval()
    randomize_bn(block)
    assert block.conv1.out_channels == mip  # max(8, C // reduction)
    w = {n: v.detach().clone() for n, v in block.state_dict().items()}
    x1, x2 = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(block(x1, x2), coordatt_reference(project(x1, x2, w), w), rtol=1e-5, atol=1e-5)


def test_coordatt_parameters_by_hand():
    C, S, m = 64, 128, 8
    expected = (S * C + C              # projection 1x1 with bias
                + C * m + m + 2 * m    # conv1 with bias, BN(m)
                + 2 * (m * C + C))     # conv_h, conv_w with bias
    assert expected == 9_944
    assert sum(p.numel() for p in create_fusion("coordatt", [64, 64], 64).parameters()) == expected


@pytest.mark.parametrize("kind,opt,value", [("eca", "k_size", 4), ("eca", "k_size", -1), ("coordatt", "reduction", 0)])
def test_bad_options(kind, opt, value):
    with pytest.raises(SpecError, match=opt):
        create_fusion(kind, [16, 16], 16, **{opt: value})
