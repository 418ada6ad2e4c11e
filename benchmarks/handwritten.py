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
    if t is nn.GELU:
        approximate = m.approximate
        return lambda x: F.gelu(x, approximate=approximate)
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


def chain(ms, functional: bool):
    """A fusion ``Chain`` (conv, norm, activation) called layer by layer."""
    fs = [layer(m, functional) for m in ms]

    def run(x):
        for f in fs:
            x = f(x)
        return x

    return run


class CARAFE(Twin):
    """fpn_conv(lat1(X1) + CARAFE(lat2(X2))); CARAFE: compressor, encoder, pixel shuffle, softmax, reassembly."""

    def __init__(self, b, functional=False):
        super().__init__()
        self.lat1, self.lat2, self.fpn_conv = (layer(m, functional) for m in (b.lateral[0], b.lateral[1], b.fpn_conv))
        up = b.upsample
        self.compressor, self.encoder = layer(up.channel_compressor, functional), layer(up.content_encoder, functional)
        self.s, self.k = up.scale, up.up_kernel

    def forward(self, x1, x2):
        s, k = self.s, self.k
        x = self.lat2(x2)
        b, c, h, w = x.shape
        mask = F.softmax(F.pixel_shuffle(self.encoder(self.compressor(x)), s).view(b, 1, k * k, s * h, s * w), dim=2)
        mask = mask.view(b, k * k, h, s, w, s).permute(0, 2, 4, 1, 3, 5).reshape(b * h * w, k * k, s * s)
        cols = F.unfold(x, k, padding=k // 2).view(b, c, k * k, h * w).permute(0, 3, 1, 2).reshape(b * h * w, c, k * k)
        up = torch.bmm(cols, mask).view(b, h, w, c, s, s).permute(0, 3, 1, 4, 2, 5).reshape(b, c, s * h, s * w)
        return self.fpn_conv(self.lat1(x1) + up)


class DySample(Twin):
    """fpn_conv(lat1(X1) + DySample(lat2(X2))); DySample lp, static scope: grid_sample at centres + offsets."""

    def __init__(self, b, functional=False):
        super().__init__()
        self.lat1, self.lat2, self.fpn_conv = (layer(m, functional) for m in (b.lateral[0], b.lateral[1], b.fpn_conv))
        self.offset = layer(b.upsample.offset, functional)
        self.init_pos, self.s, self.g = b.upsample.init_pos, b.upsample.scale, b.upsample.groups

    def forward(self, x1, x2):
        x = self.lat2(x2)
        s, g = self.s, self.g
        offset = self.offset(x) * 0.25 + self.init_pos
        b, _, h, w = offset.shape
        centres = torch.stack(torch.meshgrid([torch.arange(w, dtype=x.dtype, device=x.device) + 0.5,
                                              torch.arange(h, dtype=x.dtype, device=x.device) + 0.5], indexing="ij"))
        centres = centres.transpose(1, 2).view(1, 2, 1, h, w)
        normalizer = torch.tensor([w, h], dtype=x.dtype, device=x.device).view(1, 2, 1, 1, 1)
        grid = 2 * (centres + offset.view(b, 2, -1, h, w)) / normalizer - 1
        grid = F.pixel_shuffle(grid.view(b, -1, h, w), s).view(b, 2, g, s * h, s * w)
        grid = grid.permute(0, 2, 3, 4, 1).reshape(b * g, s * h, s * w, 2)
        up = F.grid_sample(x.reshape(b * g, -1, h, w), grid, mode="bilinear", align_corners=False, padding_mode="border")
        return self.fpn_conv(self.lat1(x1) + up.view(b, -1, s * h, s * w))


class SFNet(Twin):
    """fpn_out(L + flow_warp(H, flow_make(cat(up(down_h(H)), down_l(L))))), L = conv_bn_relu(X1), H = proj(X2)."""

    def __init__(self, b, functional=False):
        super().__init__()
        self.lateral, self.fpn_out = chain(b.lateral, functional), chain(b.fpn_out, functional)
        self.proj = layer(b.proj[0], functional)  # the default inputs: 512 -> 256
        self.down_h, self.down_l, self.flow_make = (layer(m, functional) for m in (b.down_h, b.down_l, b.flow_make))

    def forward(self, x1, x2):
        low, x2 = self.lateral(x1), self.proj(x2)
        n, _, out_h, out_w = low.shape
        h = F.interpolate(self.down_h(x2), size=(out_h, out_w), mode="bilinear", align_corners=True)
        flow = self.flow_make(torch.cat([h, self.down_l(low)], 1))
        norm = torch.tensor([[[[out_w, out_h]]]], dtype=x2.dtype, device=x2.device)
        gy = torch.linspace(-1.0, 1.0, out_h, dtype=x2.dtype, device=x2.device).view(-1, 1).repeat(1, out_w)
        gx = torch.linspace(-1.0, 1.0, out_w, dtype=x2.dtype, device=x2.device).repeat(out_h, 1)
        grid = torch.cat((gx.unsqueeze(2), gy.unsqueeze(2)), 2).repeat(n, 1, 1, 1)
        return self.fpn_out(low + F.grid_sample(x2, grid + flow.permute(0, 2, 3, 1) / norm, align_corners=True))


class FaPN(Twin):
    """output_conv(relu(DCNv2(U, offset(cat(A, U)))) + A), A = FSM(X1), U = up(lateral_top(X2)) (the paper variant)."""

    def __init__(self, b, functional=False):
        super().__init__()
        fsm, dcn = b.lateral_conv, b.dcpack_L2
        self.conv_atten, self.conv = layer(fsm.conv_atten, functional), layer(fsm.conv, functional)
        self.lateral_top, self.offset, self.output_conv = (layer(m, functional)
                                                           for m in (b.lateral_top, b.offset, b.output_conv))
        self.offset_mask = layer(dcn.conv_offset_mask, functional)
        self.weight, self.bias, self.groups = dcn.weight, dcn.bias, dcn.deformable_groups

    def forward(self, x1, x2):
        b, _, h, w = x1.shape
        up = F.interpolate(self.lateral_top(x2), size=(h, w), mode="bilinear", align_corners=False)
        atten = torch.sigmoid(self.conv_atten(F.avg_pool2d(x1, x1.shape[2:])))
        arm = self.conv(x1 + torch.mul(x1, atten))
        o1, o2, mask = torch.chunk(self.offset_mask(self.offset(torch.cat([arm, up], dim=1))), 3, dim=1)
        off, mask = torch.cat((o1, o2), dim=1), torch.sigmoid(mask)
        c, g = up.shape[1], self.groups
        off = off.view(b, g, 9, 2, h, w)
        ty, tx = torch.meshgrid(torch.arange(3, dtype=up.dtype, device=up.device) - 1,
                                torch.arange(3, dtype=up.dtype, device=up.device) - 1, indexing="ij")
        ys = torch.arange(h, dtype=up.dtype, device=up.device).view(1, h, 1) + ty.reshape(9, 1, 1)
        xs = torch.arange(w, dtype=up.dtype, device=up.device).view(1, 1, w) + tx.reshape(9, 1, 1)
        py, px = off[:, :, :, 0] + ys, off[:, :, :, 1] + xs
        grid = torch.stack(((2 * px + 1) / w - 1, (2 * py + 1) / h - 1), dim=-1).view(b * g, 9 * h, w, 2)
        cols = F.grid_sample(up.reshape(b * g, c // g, h, w), grid, mode="bilinear", padding_mode="zeros",
                             align_corners=False)
        cols = cols.view(b, g, c // g, 9, h, w) * mask.view(b, g, 1, 9, h, w)
        aligned = F.relu(F.conv2d(cols.reshape(b, c * 9, h, w), self.weight.reshape(self.weight.shape[0], c * 9, 1, 1),
                                  self.bias))
        return self.output_conv(aligned + arm)


class MSDeform(Twin):
    """LN(X + output_proj(MSDA(X))) over the flattened levels, queries at the pixel centres."""

    def __init__(self, b, functional=False):
        super().__init__()
        self.offsets, self.weights, self.value, self.out, self.norm = (
            layer(m, functional) for m in (b.sampling_offsets, b.attention_weights, b.value_proj, b.output_proj, b.norm))
        self.m, self.p = b.num_heads, b.num_points

    def forward(self, *xs):
        shapes = [tuple(x.shape[-2:]) for x in xs]
        src = torch.cat([x.flatten(2).transpose(1, 2) for x in xs], 1)
        b, n, c = src.shape
        m, p, nl = self.m, self.p, len(xs)
        refs = []
        for h, w in shapes:
            ys, xx = torch.meshgrid(torch.linspace(0.5, h - 0.5, h, dtype=src.dtype, device=src.device),
                                    torch.linspace(0.5, w - 0.5, w, dtype=src.dtype, device=src.device), indexing="ij")
            refs.append(torch.stack((xx.reshape(-1) / w, ys.reshape(-1) / h), -1))
        ref = torch.cat(refs, 0)
        value = self.value(src).view(b, n, m, c // m)
        off = self.offsets(src).view(b, n, m, nl, p, 2)
        aw = self.weights(src).view(b, n, m, nl * p).softmax(-1).view(b, n, m, nl, p)
        normalizer = torch.tensor([[w, h] for h, w in shapes], dtype=src.dtype, device=src.device)
        grids = 2 * (ref[None, :, None, None, None, :] + off / normalizer[None, None, None, :, None, :]) - 1
        values = value.split([h * w for h, w in shapes], dim=1)
        sampled = [F.grid_sample(values[i].flatten(2).transpose(1, 2).reshape(b * m, c // m, h, w),
                                 grids[:, :, :, i].transpose(1, 2).flatten(0, 1), mode="bilinear",
                                 padding_mode="zeros", align_corners=False) for i, (h, w) in enumerate(shapes)]
        aw = aw.transpose(1, 2).reshape(b * m, 1, n, nl * p)
        o = (torch.stack(sampled, dim=-2).flatten(-2) * aw).sum(-1).view(b, c, n).transpose(1, 2).contiguous()
        return self.norm(src + self.out(o))


class GatedXAttn(Twin):
    """x + tanh(a) to_out(softmax(q k^T - max) v), then x + tanh(b) ff(x); q from LN(x), k and v from the media."""

    def __init__(self, b, functional=False):
        super().__init__()
        self.norm, self.to_q, self.to_kv, self.to_out = (layer(m, functional) for m in (b.norm, b.to_q, b.to_kv, b.to_out))
        self.ff = layer(b.ff, functional) if functional else b.ff
        self.attn_gate, self.ff_gate, self.heads, self.scale = b.attn_gate, b.ff_gate, b.num_heads, b.scale

    def forward(self, x, media):
        b, n1, _ = x.shape
        n2, h = media.shape[1], self.heads
        q = self.to_q(self.norm(x)).view(b, n1, h, -1).transpose(1, 2) * self.scale
        k, v = self.to_kv(media).chunk(2, dim=-1)
        k, v = k.reshape(b, n2, h, -1).transpose(1, 2), v.reshape(b, n2, h, -1).transpose(1, 2)
        sim = q @ k.transpose(-2, -1)
        attn = (sim - sim.amax(dim=-1, keepdim=True).detach()).softmax(dim=-1)
        x = self.to_out((attn @ v).transpose(1, 2).reshape(b, n1, -1)) * self.attn_gate.tanh() + x
        return self.ff(x) * self.ff_gate.tanh() + x


class QFormer(Twin):
    """LN(queries); self-attention, cross-attention to the image tokens, FFN, each with residual + LN (BERT)."""

    def __init__(self, b, functional=False):
        super().__init__()
        self.queries, self.embed_norm = b.query_tokens, layer(b.embed_norm, functional)
        self.attn = [tuple(layer(m, functional) for m in (a.query, a.key, a.value, a.dense, a.LayerNorm))
                     for a in (b.attention, b.crossattention)]
        self.heads = b.attention.heads
        self.w1, self.w2, self.norm = (layer(m, functional) for m in (b.intermediate_query[0], b.output_query,
                                                                        b.output_norm))

    def _attention(self, i, x, context):
        query, key, value, dense, norm = self.attn[i]
        b, n, c = x.shape
        h = self.heads
        q = query(x).view(b, n, h, -1).permute(0, 2, 1, 3)
        k = key(context).view(b, context.shape[1], h, -1).permute(0, 2, 1, 3)
        v = value(context).view(b, context.shape[1], h, -1).permute(0, 2, 1, 3)
        ctx = ((q @ k.transpose(-1, -2)) / (c // h) ** 0.5).softmax(dim=-1) @ v
        return norm(dense(ctx.permute(0, 2, 1, 3).reshape(b, n, c)) + x)

    def forward(self, image):
        h = self.embed_norm(self.queries).expand(image.shape[0], -1, -1)
        h = self._attention(1, self._attention(0, h, h), image)
        return self.norm(self.w2(F.gelu(self.w1(h))) + h)


HANDWRITTEN: dict[str, type[Twin]] = {
    "concat": Concat, "cat": Cat, "add": Add, "gated": Gated, "multiscale": MultiScale, "dpt": DPT, "aff": AFF, "iaff": IAFF,
    "sk": SK, "skff": SKFF, "bifpn": BiFPN, "asff": ASFF, "fpn": FPN, "pan": PAN, "gff": GFF, "ffm": FFM,
    "se": SE, "cbam": CBAM, "segformer": SegFormer, "crossattn": CrossAttention,
    "c2f": C2f, "repc3": RepC3, "eca": ECA, "coordatt": CoordAtt, "film": FiLM, "hrnet": HRNet,
    "carafe": CARAFE, "dysample": DySample, "sfnet": SFNet, "fapn": FaPN, "msdeform": MSDeform,
    "gatedxattn": GatedXAttn, "qformer": QFormer,
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
    from fusioncli.spec import channels_of, parse_shape

    info = get_info(kind)
    shapes = [parse_shape(s) for s in info.inputs]
    torch.manual_seed(seed)
    block = create_fusion(kind, [channels_of(s) for s in shapes], info.out).eval()
    _randomize(block, seed + 1)
    block = block.to(device)
    gen = torch.Generator().manual_seed(seed + 2)
    xs = [torch.randn((batch, *s), generator=gen).to(device) for s in shapes]
    return block, HANDWRITTEN[kind](block, functional).eval(), xs
