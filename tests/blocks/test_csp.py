"""c2f (YOLOv8 C2f) and repc3 (RT-DETR CSPRepLayer): functional transcriptions of the reference code
compared output for output with the block's weights, parameter counts by hand, bad options."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fusioncli import create_fusion
from fusioncli.errors import SpecError

from .helpers import randomize_bn


def conv_bn(x, w, p, k, act=True):
    """Ultralytics ``Conv`` / RT-DETR ``ConvNormLayer``: act(bn(conv(x))), conv without bias, padding k // 2."""
    y = F.conv2d(x, w[f"{p}.conv.weight"], None, 1, k // 2)
    y = F.batch_norm(y, w[f"{p}.norm.running_mean"], w[f"{p}.norm.running_var"], w[f"{p}.norm.weight"],
                     w[f"{p}.norm.bias"], False, 0.0, 1e-5)
    return F.silu(y) if act else y


def c2f_reference(x, w, n, shortcut):
    """ultralytics/nn/modules/block.py C2f.forward: y = list(cv1(x).chunk(2, 1));
    y.extend(m(y[-1]) for m in self.m); cv2(cat(y, 1)); Bottleneck: x + cv2(cv1(x)) if add."""
    y = list(conv_bn(x, w, "cv1", 1).chunk(2, 1))
    for i in range(n):
        t = conv_bn(conv_bn(y[-1], w, f"m.{i}.cv1", 3), w, f"m.{i}.cv2", 3)
        y.append(y[-1] + t if shortcut else t)
    return conv_bn(torch.cat(y, 1), w, "cv2", 1)


def csp_rep_layer_reference(x, w, num_blocks, has_conv3):
    """rtdetr_pytorch/src/zoo/rtdetr/hybrid_encoder.py CSPRepLayer.forward: conv3(bottlenecks(conv1(x)) + conv2(x));
    RepVggBlock.forward (training form): act(conv1(x) + conv2(x)), act = SiLU."""
    x1 = conv_bn(x, w, "conv1", 1)
    for i in range(num_blocks):
        x1 = F.silu(conv_bn(x1, w, f"bottlenecks.{i}.conv1", 3, act=False)
                    + conv_bn(x1, w, f"bottlenecks.{i}.conv2", 1, act=False))
    y = x1 + conv_bn(x, w, "conv2", 1)
    return conv_bn(y, w, "conv3", 1) if has_conv3 else y


def _inputs():
    gen = torch.Generator().manual_seed(1)
    return torch.randn(2, 24, 5, 6, generator=gen), torch.randn(2, 16, 10, 12, generator=gen)


@pytest.mark.parametrize("n,shortcut,expansion", [(1, False, 0.5), (2, True, 0.5), (3, False, 0.25)])
def test_c2f_equals_ultralytics(n, shortcut, expansion):
    torch.manual_seed(0)
    block = create_fusion("c2f", [24, 16], 32, n=n, shortcut=shortcut, expansion=expansion).eval()
    randomize_bn(block)
    w = {k: v.detach().clone() for k, v in block.state_dict().items()}
    x1, x2 = _inputs()
    # the neck: nn.Upsample(scale_factor=2, mode="nearest") of the coarse map, then Concat([up, P4])
    x = torch.cat([F.interpolate(x1, scale_factor=2.0, mode="nearest"), x2], 1)
    with torch.no_grad():
        torch.testing.assert_close(block(x1, x2), c2f_reference(x, w, n, shortcut), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("num_blocks,expansion", [(3, 1.0), (1, 0.5)])
def test_repc3_equals_rtdetr(num_blocks, expansion):
    torch.manual_seed(0)
    block = create_fusion("repc3", [24, 16], 32, num_blocks=num_blocks, expansion=expansion).eval()
    randomize_bn(block)
    w = {k: v.detach().clone() for k, v in block.state_dict().items()}
    x1, x2 = _inputs()
    # HybridEncoder: F.interpolate(feat_high, scale_factor=2., mode='nearest') when the sizes double
    x = torch.cat([F.interpolate(x1, scale_factor=2.0, mode="nearest"), x2], 1)
    with torch.no_grad():
        torch.testing.assert_close(block(x1, x2), csp_rep_layer_reference(x, w, num_blocks, expansion != 1.0),
                                   rtol=1e-5, atol=1e-5)


def _params(kind, ins, out, **kw):
    return sum(p.numel() for p in create_fusion(kind, ins, out, **kw).parameters())


def test_c2f_parameters_by_hand():
    # YOLOv8s head layer 12: Concat(512 upsampled P5, 256 P4) -> C2f(768, 256, n=1): c = 128
    S, C, c, n = 768, 256, 128, 1
    cv1 = S * 2 * c + 2 * 2 * c              # 1x1 S -> 2c, BN(2c)
    m = n * 2 * (9 * c * c + 2 * c)          # per bottleneck: two 3x3 c -> c with BN
    cv2 = (2 + n) * c * C + 2 * C            # 1x1 (2+n)c -> C, BN(C)
    assert cv1 + m + cv2 == 591_360
    assert _params("c2f", [512, 256], 256) == 591_360
    # n = 3 (YOLOv8l), C = 512: c = 256
    S, C, c, n = 1536, 512, 256, 3
    assert _params("c2f", [1024, 512], 512, n=3) == S * 2 * c + 4 * c + n * 2 * (9 * c * c + 2 * c) + (2 + n) * c * C + 2 * C


def test_repc3_parameters_by_hand():
    # RT-DETR-R50 CCFM: CSPRepLayer(512, 256, 3, expansion=1.0): h = 256, no conv3
    S, h, nb = 512, 256, 3
    convs = 2 * (S * h + 2 * h)                        # conv1, conv2: 1x1 S -> h, BN
    rep = nb * (9 * h * h + 2 * h + h * h + 2 * h)     # RepVGG: 3x3 and 1x1 h -> h, each with BN
    assert convs + rep == 2_232_320
    assert _params("repc3", [256, 256], 256) == 2_232_320
    # RT-DETR-R18: expansion 0.5, h = 128, conv3 1x1 h -> C with BN
    S, h, C = 512, 128, 256
    assert _params("repc3", [256, 256], 256, expansion=0.5) == \
        2 * (S * h + 2 * h) + 3 * (10 * h * h + 4 * h) + h * C + 2 * C


@pytest.mark.parametrize("kind,opt,value", [("c2f", "n", 0), ("c2f", "expansion", 0.0), ("repc3", "num_blocks", 0),
                                            ("repc3", "expansion", -1.0)])
def test_bad_options(kind, opt, value):
    with pytest.raises(SpecError, match=opt):
        create_fusion(kind, [16, 16], 16, **{opt: value})
