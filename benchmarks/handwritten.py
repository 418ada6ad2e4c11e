"""Hand-written PyTorch modules computing what each registered block computes, without fusioncli.

One ``nn.Module`` per block kind, written the straightforward way for the registry's default
inputs and options (``fusioncli.registry.get_info(kind)``): the layers called one after the
other, ``torch`` / ``torch.nn.functional`` for the glue, and no input checks, no alignment
logic, no option branches, no ``Identity`` layers. Each twin takes the fusion block and calls
the block's own layers (shared, not copied), so both compute the same numbers; the ops mirror
the block's kernels one for one (e.g. ``torch.lerp`` where AFF blends with it), so a time
difference between the two is per-call overhead, not a different algorithm.

Two styles from one code, chosen by ``functional``:

* ``functional=False``: the twin calls the layers as ``torch.nn`` modules, in the containers
  the published code uses (open-aff's ``nn.Sequential`` MS-CAM branches, ASFF's ``add_conv``,
  GFF's ``conv_bn_relu``, MIRNet's ``conv_du``, ...) and otherwise the leaf layers
  (``nn.Conv2d``, ``nn.BatchNorm2d``, ``nn.Linear``, activation modules). This is the
  hand-written module of issue 8's target: what remains between it and the block is what
  fusion's alignment, checks and option handling cost.
* ``functional=True``: every layer, container and helper module becomes a plain function
  (``F.conv2d`` / ``F.batch_norm`` / ``F.relu`` ... with the layer's tensors and settings
  bound once): no ``nn.Module`` call at all below the twin itself, the least Python any eager
  implementation spends. Against it the block also pays for calling its layers as modules
  (which the per-layer table and hooks need).

Used by ``benchmarks/forward_overhead.py`` (speed) and ``tests/test_forward_equivalence.py``
(equal outputs). ``setup(kind)`` builds the block (eval mode, non-trivial BatchNorm statistics),
its hand-written twin and the default inputs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


class Twin(nn.Module):
    """Base of the hand-written modules and of their helper modules (``functional`` style:
    a helper is called through its ``forward``, without ``nn.Module.__call__``)."""


def layer(m: nn.Module, functional: bool) -> nn.Module | Callable:
    """The layer ``m`` as a twin calls it: ``m`` itself, or (functional) a plain function of ``x``
    calling ``torch.nn.functional`` with ``m``'s tensors and settings bound."""
    if not functional:
        return m
    t = type(m)
    if t is nn.Conv2d:
        w, b, s, p, d, g = m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups
        return lambda x: F.conv2d(x, w, b, s, p, d, g)
    if t is nn.BatchNorm2d:
        mean, var, w, b, eps = m.running_mean, m.running_var, m.weight, m.bias, m.eps
        return lambda x: F.batch_norm(x, mean, var, w, b, False, 0.0, eps)
    if t is nn.Linear:
        w, b = m.weight, m.bias
        return lambda x: F.linear(x, w, b)
    if t is nn.LayerNorm:
        shape, w, b, eps = m.normalized_shape, m.weight, m.bias, m.eps
        return lambda x: F.layer_norm(x, shape, w, b, eps)
    if t is nn.PReLU:
        w = m.weight
        return lambda x: F.prelu(x, w)
    if t is nn.ReLU:
        inplace = m.inplace
        return lambda x: F.relu(x, inplace)
    if t is nn.LeakyReLU:
        slope, inplace = m.negative_slope, m.inplace
        return lambda x: F.leaky_relu(x, slope, inplace)
    if t is nn.SiLU:
        return F.silu
    if t is nn.Sigmoid:
        return torch.sigmoid
    if t is nn.AdaptiveAvgPool2d:
        size = m.output_size
        return lambda x: F.adaptive_avg_pool2d(x, size)
    if issubclass(t, nn.Sequential):  # and fusion's Chain
        fs = [layer(c, True) for c in m if type(c) is not nn.Identity]

        def chain(x):
            for f in fs:
                x = f(x)
            return x

        return chain
    if isinstance(m, Twin):
        return m.forward
    raise TypeError(f"no functional form for {t.__name__}")


def layers(ms, functional: bool) -> nn.ModuleList | list:
    return [layer(m, True) for m in ms] if functional else nn.ModuleList(ms)


class Concat(Twin):
    """conv1x1(cat(X1, X2))."""

    def __init__(self, b, functional=False):
        super().__init__()
        self.conv = layer(b.conv, functional)

    def forward(self, x1, x2):
        return self.conv(torch.cat([x1, x2], dim=1))


class Cat(Twin):
    """cat(X1, X2)."""

    def __init__(self, b, functional=False):
        super().__init__()

    def forward(self, x1, x2):
        return torch.cat([x1, x2], dim=1)


class Add(Twin):
    """X1 + X2 (equal widths: no projection)."""

    def __init__(self, b, functional=False):
        super().__init__()

    def forward(self, x1, x2):
        return x1 + x2


class Gated(Twin):
    """g = sigmoid(conv1x1(cat(X1, X2))); g * X1 + (1 - g) * X2."""

    def __init__(self, b, functional=False):
        super().__init__()
        self.gate = layer(b.gate, functional)

    def forward(self, x1, x2):
        g = torch.sigmoid(self.gate(torch.cat([x1, x2], dim=1)))
        return g * x1 + (1 - g) * x2


class MultiScale(Twin):
    """act(conv_k(cat)) for k = 1, 3, 5, concatenated, then act(conv1x1)."""

    def __init__(self, b, functional=False):
        super().__init__()
        self.branches = layers([nn.Sequential(br[0], br[2]) for br in b.branches], functional)
        self.refine = layer(nn.Sequential(b.refine[0], b.refine[2]), functional)

    def forward(self, x1, x2):
        x = torch.cat([x1, x2], dim=1)
        return self.refine(torch.cat([branch(x) for branch in self.branches], dim=1))


class RCU(Twin):
    """x + conv3(act(conv3(act(x)))) (MiDaS ``ResidualConvUnit``)."""

    def __init__(self, rcu, functional=False):
        super().__init__()
        self.act, self.conv1, self.conv2 = (layer(m, functional) for m in (rcu.act, rcu.conv1, rcu.conv2))

    def forward(self, x):
        return self.conv2(self.act(self.conv1(self.act(x)))) + x


class DPT(Twin):
    """conv1x1(up2(RCU2(X1 + RCU1(X2))))."""

    def __init__(self, b, functional=False):
        super().__init__()
        self.rcu1, self.rcu2 = layer(RCU(b.rcu1, functional), functional), layer(RCU(b.rcu2, functional), functional)
        self.out_conv = layer(b.out_conv, functional)

    def forward(self, x1, x2):
        out = self.rcu2(x1 + self.rcu1(x2))
        return self.out_conv(F.interpolate(out, scale_factor=2.0, mode="bilinear", align_corners=True))


class AFF(Twin):
    """lerp(Y, X, sigmoid(L(X + Y) + G(X + Y))), L and G open-aff's ``nn.Sequential`` branches."""

    def __init__(self, b, functional=False):
        super().__init__()
        self.local_att, self.global_att = layer(b.local_att, functional), layer(b.global_att, functional)

    def forward(self, x, y):
        s = x + y
        return torch.lerp(y, x, torch.sigmoid(self.local_att(s) + self.global_att(s)))


class IAFF(Twin):
    """I = lerp(Y, X, M1(X + Y)); lerp(Y, X, M2(I))."""

    def __init__(self, b, functional=False):
        super().__init__()
        self.local_att, self.global_att = layer(b.local_att, functional), layer(b.global_att, functional)
        self.local_att2, self.global_att2 = layer(b.local_att2, functional), layer(b.global_att2, functional)

    def forward(self, x, y):
        s = x + y
        i = torch.lerp(y, x, torch.sigmoid(self.local_att(s) + self.global_att(s)))
        return torch.lerp(y, x, torch.sigmoid(self.local_att2(i) + self.global_att2(i)))


class SK(Twin):
    """U_k = ReLU(BN(conv_k(cat))), k = 3, 5; softmax over branches of fc(ReLU(BN(fc(GAP(sum U_k)))))."""

    def __init__(self, b, functional=False):
        super().__init__()
        self.path1, self.path2 = (layer(p, functional) for p in b.paths)
        self.fc_reduce, self.bn, self.act, self.fc_select = (layer(m, functional)
                                                             for m in (b.fc_reduce, b.bn, b.act, b.fc_select))

    def forward(self, x1, x2):
        x = torch.cat([x1, x2], dim=1)
        u1, u2 = self.path1(x), self.path2(x)
        z = self.act(self.bn(self.fc_reduce((u1 + u2).mean((2, 3), keepdim=True))))
        logits = self.fc_select(z)
        a = torch.softmax(logits.view(logits.shape[0], 2, -1, 1, 1), dim=1)
        return a[:, 0] * u1 + a[:, 1] * u2


class SKFF(Twin):
    """z = conv_du(GAP(X1 + X2 + X3)) (conv, PReLU); a = softmax over streams of fc_i(z); sum a_i X_i."""

    def __init__(self, b, functional=False):
        super().__init__()
        self.conv_du = layer(b.conv_du, functional)
        self.fcs = layers(b.fcs, functional)

    def forward(self, x1, x2, x3):
        z = self.conv_du((x1 + x2 + x3).mean((2, 3), keepdim=True))
        logits = torch.cat([fc(z) for fc in self.fcs], dim=1)
        a = torch.softmax(logits.view(logits.shape[0], 3, -1, 1, 1), dim=1)
        return a[:, 0] * x1 + a[:, 1] * x2 + a[:, 2] * x3


class BiFPN(Twin):
    """w = relu(w) / (sum + eps); BN(pw(dw(swish(w0 X1 + w1 up(X2)))))."""

    def __init__(self, b, functional=False):
        super().__init__()
        self.edge_weights, self.epsilon = b.edge_weights, b.epsilon
        self.swish, self.depthwise, self.pointwise, self.bn = (layer(m, functional)
                                                               for m in (b.act, b.depthwise, b.pointwise, b.bn))

    def forward(self, x1, x2):
        w = F.relu(self.edge_weights)
        w = w / (w.sum() + self.epsilon)
        out = torch.addcmul(x1 * w[0], F.interpolate(x2, size=x1.shape[-2:], mode="nearest"), w[1])
        return self.bn(self.pointwise(self.depthwise(self.swish(out))))


class ASFF(Twin):
    """Level 0 of 3: X2 by a stride-2 ``add_conv``, X3 by max-pool then one; per-pixel softmax weights."""

    def __init__(self, b, functional=False):
        super().__init__()
        self.stride_level_1 = layer(b.resample[1][0], functional)
        self.stride_level_2 = layer(b.resample[2][1], functional)
        self.weight_level_0, self.weight_level_1, self.weight_level_2 = (layer(w, functional) for w in b.weight_level)
        self.weight_levels = layer(b.weight_levels, functional)
        self.expand = layer(b.expand, functional)

    def forward(self, x1, x2, x3):
        y1, y2, y3 = x1, self.stride_level_1(x2), self.stride_level_2(F.max_pool2d(x3, 3, 2, 1))
        v = torch.cat([self.weight_level_0(y1), self.weight_level_1(y2), self.weight_level_2(y3)], dim=1)
        a = torch.softmax(self.weight_levels(v), dim=1)
        return self.expand(torch.addcmul(torch.addcmul(y1 * a[:, 0:1], y2, a[:, 1:2]), y3, a[:, 2:3]))


class FPN(Twin):
    """conv3(lateral1(X1) + nearest_up(lateral2(X2)))."""

    def __init__(self, b, functional=False):
        super().__init__()
        # mmdetection's FPN calls each conv through its ConvModule container (here: nn.Sequential)
        self.lat1, self.lat2 = layer(b.lateral[0], functional), layer(b.lateral[1], functional)
        self.fpn_conv = layer(b.fpn_conv, functional)

    def forward(self, x1, x2):
        lat = self.lat1(x1)
        return self.fpn_conv(lat + F.interpolate(self.lat2(x2), size=lat.shape[-2:], mode="nearest"))


class PAN(Twin):
    """conv3_relu(X2 + conv3_stride2_relu(X1))."""

    def __init__(self, b, functional=False):
        super().__init__()
        # mmdetection's PAFPN calls each conv through its ConvModule container (here: nn.Sequential)
        self.down, self.conv = layer(b.down[0], functional), layer(b.convs[0], functional)

    def forward(self, x1, x2):
        return self.conv(x2 + self.down(x1))


class GFF(Twin):
    """Level 0 of 3: (1 + G1) P1 + (1 - G1) (up(G2 P2) + up(G3 P3)); G = conv_sigmoid, P = conv_bn_relu."""

    def __init__(self, b, functional=False):
        super().__init__()
        self.gate1, self.gate2, self.gate3 = (layer(g, functional) for g in b.gate)
        self.proj1, self.proj2, self.proj3 = (layer(p, functional) for p in b.proj)

    def forward(self, x1, x2, x3):
        g1, g2, g3 = self.gate1(x1), self.gate2(x2), self.gate3(x3)
        p1, p2, p3 = self.proj1(x1), self.proj2(x2), self.proj3(x3)
        size = p1.shape[-2:]
        s = (F.interpolate(g2 * p2, size=size, mode="bilinear", align_corners=False)
             + F.interpolate(g3 * p3, size=size, mode="bilinear", align_corners=False))
        return (1 + g1) * p1 + (1 - g1) * s


class FFM(Twin):
    """f = conv_bn_relu(cat); f * attn(GAP(f)) + f, attn = conv, ReLU, conv, sigmoid."""

    def __init__(self, b, functional=False):
        super().__init__()
        self.conv, self.pool, self.attn = (layer(m, functional) for m in (b.conv, b.pool, b.attn))

    def forward(self, x1, x2):
        f = self.conv(torch.cat([x1, x2], dim=1))
        return f * self.attn(self.pool(f)) + f


class SE(Twin):
    """y = conv1x1(cat); y * sigmoid(fc2(ReLU(fc1(GAP(y)))))."""

    def __init__(self, b, functional=False):
        super().__init__()
        self.proj, self.fc1, self.relu, self.fc2 = (layer(m, functional) for m in (b.proj, b.fc1, b.relu, b.fc2))

    def forward(self, x1, x2):
        y = self.proj(torch.cat([x1, x2], dim=1))
        return y * torch.sigmoid(self.fc2(self.relu(self.fc1(y.mean((2, 3), keepdim=True)))))


class CBAM(Twin):
    """y = conv1x1(cat); channel attention (shared MLP on GAP and GMP), then 7x7 spatial attention."""

    def __init__(self, b, functional=False):
        super().__init__()
        self.proj, self.fc1, self.relu, self.fc2, self.spatial = (
            layer(m, functional) for m in (b.proj, b.fc1, b.relu, b.fc2, b.spatial))

    def forward(self, x1, x2):
        y = self.proj(torch.cat([x1, x2], dim=1))
        avg = self.fc2(self.relu(self.fc1(y.mean((2, 3), keepdim=True))))
        mx = self.fc2(self.relu(self.fc1(y.amax((2, 3), keepdim=True))))
        y = y * torch.sigmoid(avg + mx)
        m = torch.cat([y.mean(1, keepdim=True), y.amax(1, keepdim=True)], dim=1)
        return y * torch.sigmoid(self.spatial(m))


class SegFormer(Twin):
    """fuse(cat(linear_i(X_i) bilinearly resized to X1's size)), 1x1 convs."""

    def __init__(self, b, functional=False):
        super().__init__()
        self.linear1, self.linear2, self.linear3, self.linear4 = (layer(m, functional) for m in b.linear)
        self.fuse = layer(b.fuse, functional)

    def forward(self, x1, x2, x3, x4):
        y1 = self.linear1(x1)
        size = y1.shape[-2:]
        y2 = F.interpolate(self.linear2(x2), size=size, mode="bilinear", align_corners=False)
        y3 = F.interpolate(self.linear3(x3), size=size, mode="bilinear", align_corners=False)
        y4 = F.interpolate(self.linear4(x4), size=size, mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([y1, y2, y3, y4], dim=1))


class CrossAttention(Twin):
    """T1 + Wo softmax(Q K^T / sqrt(d)) V, Q from LN(T1), K and V from LN(T2), 8 heads."""

    def __init__(self, b, functional=False):
        super().__init__()
        self.heads, self.scale = b.num_heads, b.scale
        self.norm, self.wq, self.wk, self.wv, self.proj = (layer(m, functional)
                                                           for m in (b.norm, b.wq, b.wk, b.wv, b.proj))

    def forward(self, x1, x2):
        b, c, h, w = x1.shape
        t1, t2 = x1.flatten(2).transpose(1, 2), x2.flatten(2).transpose(1, 2)
        n1, n2 = t1.shape[1], t2.shape[1]
        q1, kv = self.norm(t1), self.norm(t2)
        q = self.wq(q1).view(b, n1, self.heads, -1).transpose(1, 2) * self.scale
        k = self.wk(kv).view(b, n2, self.heads, -1).transpose(1, 2)
        v = self.wv(kv).view(b, n2, self.heads, -1).transpose(1, 2)
        attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        o = self.proj((attn @ v).transpose(1, 2).reshape(b, n1, c))
        return (t1 + o).transpose(1, 2).reshape(b, c, h, w)


class CBS(Twin):
    """conv -> BN -> SiLU (Ultralytics ``Conv``, RT-DETR ``ConvNormLayer``); ``act=False``: no SiLU."""

    def __init__(self, m, functional=False, act=True):
        super().__init__()
        self.conv, self.norm = layer(m.conv, functional), layer(m.norm, functional)
        self.act = act

    def forward(self, x):
        y = self.norm(self.conv(x))
        return F.silu(y) if self.act else y


class C2f(Twin):
    """y0, y1 = CBS1(cat).chunk(2); y2 = CBS3(CBS3(y1)); CBS1(cat(y0, y1, y2)) (n = 1, no shortcut)."""

    def __init__(self, b, functional=False):
        super().__init__()
        self.cv1, self.cv2 = CBS(b.cv1, functional), CBS(b.cv2, functional)
        self.m1, self.m2 = CBS(b.m[0].cv1, functional), CBS(b.m[0].cv2, functional)

    def forward(self, x1, x2):
        x1 = F.interpolate(x1, size=x2.shape[-2:], mode="nearest")
        y0, y1 = self.cv1(torch.cat([x1, x2], dim=1)).chunk(2, 1)
        return self.cv2(torch.cat([y0, y1, self.m2(self.m1(y1))], dim=1))


class RepC3(Twin):
    """x = cat(up(X1), X2); three RepVGG blocks silu(CB3 + CB1) on CBS1(x), + CBS1'(x) (h = C: no conv3)."""

    def __init__(self, b, functional=False):
        super().__init__()
        self.conv1, self.conv2 = CBS(b.conv1, functional), CBS(b.conv2, functional)
        self.rep = [(CBS(r.conv1, functional, act=False), CBS(r.conv2, functional, act=False)) for r in b.bottlenecks]
        for i, (a, c) in enumerate(self.rep):
            self.add_module(f"rep{i}a", a)
            self.add_module(f"rep{i}b", c)

    def forward(self, x1, x2):
        x = torch.cat([F.interpolate(x1, size=x2.shape[-2:], mode="nearest"), x2], dim=1)
        y = self.conv1(x)
        for a, c in self.rep:
            y = F.silu(a(y) + c(y))
        return y + self.conv2(x)


class ECA(Twin):
    """y = conv1x1(cat); y * sigmoid(conv1d over the channels of GAP(y))."""

    def __init__(self, b, functional=False):
        super().__init__()
        self.proj = layer(b.proj, functional)
        w, pad = b.conv.weight, b.conv.padding
        self.conv = (lambda s: F.conv1d(s, w, None, 1, pad)) if functional else b.conv

    def forward(self, x1, x2):
        y = self.proj(torch.cat([x1, x2], dim=1))
        g = torch.sigmoid(self.conv(y.mean((2, 3)).unsqueeze(1)))
        return y * g.transpose(1, 2).unsqueeze(-1)


class CoordAtt(Twin):
    """y = conv1x1(cat); pooled along W and H, shared 1x1 + BN + h-swish, two 1x1 sigmoid gates."""

    def __init__(self, b, functional=False):
        super().__init__()
        self.proj, self.conv1, self.bn1, self.conv_h, self.conv_w = (
            layer(m, functional) for m in (b.proj, b.conv1, b.bn1, b.conv_h, b.conv_w))

    def forward(self, x1, x2):
        y = self.proj(torch.cat([x1, x2], dim=1))
        h, w = y.shape[-2:]
        z = torch.cat([y.mean(3, keepdim=True), y.mean(2, keepdim=True).transpose(2, 3)], dim=2)
        f_h, f_w = torch.split(F.hardswish(self.bn1(self.conv1(z))), [h, w], dim=2)
        return y * torch.sigmoid(self.conv_w(f_w.transpose(2, 3))) * torch.sigmoid(self.conv_h(f_h))


class FiLM(Twin):
    """gamma, beta = linear(z) split in two; gamma * X + beta per channel."""

    def __init__(self, b, functional=False):
        super().__init__()
        self.film = layer(b.film, functional)

    def forward(self, x, z):
        gamma, beta = self.film(z).chunk(2, dim=1)
        return gamma[:, :, None, None] * x + beta[:, :, None, None]


class HRNet(Twin):
    """Four branches; output i = relu(sum_j F_ij(X_j)): 1x1 + BN + bilinear resize from coarser branches,
    chains of stride-2 3x3 + BN (+ ReLU but the last) from finer ones (seg_hrnet.py fuse_layers)."""

    def __init__(self, b, functional=False):
        super().__init__()
        self.f = [[None if type(m) is nn.Identity else layer(m, functional) for m in row] for row in b.fuse_layers]
        if not functional:
            self.rows = nn.ModuleList(nn.ModuleList(m for m in row if m is not None) for row in self.f)

    def forward(self, x1, x2, x3, x4):
        xs, outs = (x1, x2, x3, x4), []
        for i, row in enumerate(self.f):
            size = xs[i].shape[-2:]
            y = xs[0] if i == 0 else row[0](xs[0])
            for j in range(1, 4):
                if j == i:
                    y = y + xs[j]
                elif j > i:
                    y = y + F.interpolate(row[j](xs[j]), size=size, mode="bilinear", align_corners=False)
                else:
                    y = y + row[j](xs[j])
            outs.append(F.relu(y))
        return outs


HANDWRITTEN: dict[str, type[Twin]] = {
    "concat": Concat, "cat": Cat, "add": Add, "gated": Gated, "multiscale": MultiScale, "dpt": DPT, "aff": AFF, "iaff": IAFF,
    "sk": SK, "skff": SKFF, "bifpn": BiFPN, "asff": ASFF, "fpn": FPN, "pan": PAN, "gff": GFF, "ffm": FFM,
    "se": SE, "cbam": CBAM, "segformer": SegFormer, "crossattn": CrossAttention,
    "c2f": C2f, "repc3": RepC3, "eca": ECA, "coordatt": CoordAtt, "film": FiLM, "hrnet": HRNet,
}


def _randomize(block: nn.Module, seed: int) -> None:
    """Non-trivial BatchNorm statistics and affine weights, BiFPN edge weights apart from each other,
    so the comparison checks more than identity normalisation and equal weights."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in block.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.randn(m.num_features, generator=gen))
                m.bias.copy_(torch.randn(m.num_features, generator=gen))
        if getattr(block, "edge_weights", None) is not None:
            block.edge_weights.copy_(torch.rand(block.edge_weights.shape, generator=gen) + 0.5)


def setup(kind: str, *, functional: bool = False, batch: int = 1, seed: int = 0,
          device: str = "cpu") -> tuple[nn.Module, nn.Module, list[torch.Tensor]]:
    """(fusion block in eval mode, its hand-written twin in the given style, the default inputs),
    all on ``device``. The block moves before its twin is built: a functional twin binds the
    block's tensors, and ``Module.to`` replaces buffers (batch-norm statistics) by new ones."""
    from fusioncli import create_fusion
    from fusioncli.registry import get_info
    from fusioncli.spec import parse_shape

    info = get_info(kind)
    shapes = [parse_shape(s) for s in info.inputs]
    torch.manual_seed(seed)
    block = create_fusion(kind, [s[0] for s in shapes], info.out).eval()
    _randomize(block, seed + 1)
    block = block.to(device)
    gen = torch.Generator().manual_seed(seed + 2)
    xs = [torch.randn((batch, *s), generator=gen).to(device) for s in shapes]
    return block, HANDWRITTEN[kind](block, functional).eval(), xs
