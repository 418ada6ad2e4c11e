"""The necks' wiring written again, functionally, from the reference code, with the weights of a built neck.

Each function transcribes a reference forward (mmdet ``FPN.forward`` / ``PAFPN.forward``,
rwightman's ``BiFpn`` with the ``bifpn_fa`` node table, isl-org/DPT ``forward`` with
``FeatureFusionBlock_custom``, milesial's ``Up`` and the paper's crop, mmseg's
``SegformerHead``) with ``torch.nn.functional`` calls only, reading each weight by its name
in the neck's ``state_dict``. Nothing of fusioncli's graph, nodes or resizing runs: an output
that matches shows that the neck wires the same layers the same way.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _conv(W, name, x, stride=1, padding=0):
    return F.conv2d(x, W[f"{name}.weight"], W.get(f"{name}.bias"), stride=stride, padding=padding)


def _bn(W, name, x, eps):
    return F.batch_norm(x, W[f"{name}.running_mean"], W[f"{name}.running_var"], W[f"{name}.weight"],
                        W[f"{name}.bias"], training=False, eps=eps)


def fpn(W, xs, *, first, extra_levels=0, extra="pool", extra_source="output", extra_relu=False, pafpn=False):
    """mmdet ``FPN.forward`` (``upsample_cfg=dict(mode='nearest')``) and ``PAFPN.forward``."""
    levels = [first + i for i in range(len(xs))]
    laterals = [_conv(W, f"nodes.lateral_P{lv}.op", x) for lv, x in zip(levels, xs)]
    for i in range(len(laterals) - 1, 0, -1):
        prev_shape = laterals[i - 1].shape[2:]
        laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], size=prev_shape, mode="nearest")
    outs = [_conv(W, f"nodes.output_P{lv}.op", lat, padding=1) for lv, lat in zip(levels, laterals)]
    if pafpn:
        inter = outs
        for i in range(len(levels) - 1):
            inter[i + 1] = inter[i + 1] + _conv(W, f"nodes.down_P{levels[i + 1]}.op", inter[i], stride=2, padding=1)
        outs = [inter[0]] + [_conv(W, f"nodes.pafpn_P{levels[i]}.op", inter[i], padding=1)
                             for i in range(1, len(levels))]
    top = levels[-1]
    for j in range(extra_levels):
        lv = top + 1 + j
        if extra == "pool":
            outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        elif j == 0:
            src = xs[-1] if extra_source == "input" else outs[-1]
            outs.append(_conv(W, f"nodes.extra_P{lv}.op", src, stride=2, padding=1))
        elif extra_relu:
            outs.append(_conv(W, f"nodes.extra_P{lv}.op.1", F.relu(outs[-1]), stride=2, padding=1))
        else:
            outs.append(_conv(W, f"nodes.extra_P{lv}.op", outs[-1], stride=2, padding=1))
    return outs


# rwightman effdet get_fpn_config('bifpn_fa') for min_level 3, max_level 7: (output level, input offsets)
# into the list [P3_0, P4_0, P5_0, P6_0, P7_0, then each node's output in order]
BIFPN_FA = [(6, [3, 4]), (5, [2, 5]), (4, [1, 6]), (3, [0, 7]), (4, [1, 7, 8]), (5, [2, 6, 9]), (6, [3, 5, 10]),
            (7, [4, 11])]
_BIFPN_NAMES = ["td_P6", "td_P5", "td_P4", "td_P3", "out_P4", "out_P5", "out_P6", "out_P7"]


def maxpool_static_same(x, kernel_size=3, stride=2):
    """zylo117 ``efficientnet/utils_extra.py`` ``MaxPool2dStaticSamePadding(3, 2)``.forward: TF "same"
    padding with -inf, the odd pixel right/bottom, then ``nn.MaxPool2d(kernel_size, stride)``."""
    h, w = x.shape[-2:]
    extra_h = (math.ceil(w / stride) - 1) * stride - w + kernel_size
    extra_v = (math.ceil(h / stride) - 1) * stride - h + kernel_size
    left = extra_h // 2
    right = extra_h - left
    top = extra_v // 2
    bottom = extra_v - top
    x = F.pad(x, [left, right, top, bottom], value=-float("inf"))
    return F.max_pool2d(x, kernel_size, stride)


def bifpn(W, xs, *, width, repeats, eps_bn=1e-3, eps_w=1e-4, same=False):
    """rwightman ``BiFpn``: ResampleFeatureMap for P6/P7, then ``repeats`` layers of ``FpnCombine`` ('fastattn')
    + ``after_combine`` (Swish, depthwise 3x3, pointwise 1x1, BN) over the bifpn_fa node table; ``same``: every
    max pool is zylo117's ``MaxPool2dStaticSamePadding(3, 2)`` (``p5_to_p6``, ``p6_to_p7``, ``pX_downsample``)."""
    def pool(x):
        return maxpool_static_same(x) if same else F.max_pool2d(x, 3, 2, 1)

    feats = list(xs)
    p6 = feats[-1]
    if p6.shape[1] != width:
        p6 = _bn(W, "nodes.extra_P6.op.0.1", _conv(W, "nodes.extra_P6.op.0.0", p6), eps_bn)
    feats.append(pool(p6))
    feats.append(pool(feats[-1]))
    for r in range(repeats):
        nodes = list(feats)
        for (level, offsets), name in zip(BIFPN_FA, _BIFPN_NAMES):
            prefix = f"nodes.L{r}_{name}"
            target = feats[level - 3].shape[-2:]
            ins = []
            for j, off in enumerate(offsets):
                x = nodes[off]
                if x.shape[1] != width:
                    x = _bn(W, f"{prefix}.proj.{j}.1", _conv(W, f"{prefix}.proj.{j}.0", x), eps_bn)
                if x.shape[-1] > target[-1]:
                    x = pool(x)
                elif x.shape[-1] < target[-1]:
                    x = F.interpolate(x, size=tuple(target), mode="nearest")
                ins.append(x)
            w = F.relu(W[f"{prefix}.op.edge_weights"])
            w = w / (w.sum() + eps_w)
            x = torch.stack(ins, dim=-1) @ w
            x = F.silu(x)
            x = F.conv2d(x, W[f"{prefix}.op.depthwise.weight"], None, padding=1, groups=width)
            x = _conv(W, f"{prefix}.op.pointwise", x)
            nodes.append(_bn(W, f"{prefix}.op.bn", x, eps_bn))
        feats = nodes[-5:]  # P3_2 (node 3) .. P7_2 (node 7): offsets 8 to 12
    return feats


def dpt(W, xs, *, first, size_mode=False):
    """isl-org/DPT ``forward`` after the reassemble stage: ``layerX_rn`` convs, then ``refinenet4..1``
    (``FeatureFusionBlock_custom``: ReLU RCUs without BN, bilinear x2 with align_corners) ; with
    ``size_mode`` Depth Anything's ``size=`` the next level."""
    levels = [first + i for i in range(len(xs))]
    rn = [F.conv2d(x, W[f"nodes.rn_P{lv}.op.weight"], None, padding=1) for lv, x in zip(levels, xs)]

    def rcu(x, p):
        out = _conv(W, f"{p}.conv1", F.relu(x), padding=1)
        out = _conv(W, f"{p}.conv2", F.relu(out), padding=1)
        return out + x

    def block(p, xs_, size=None):
        out = xs_[0]
        if len(xs_) == 2:
            out = out + rcu(xs_[1], f"{p}.rcu1")
        out = rcu(out, f"{p}.rcu2")
        if size is None:
            out = F.interpolate(out, scale_factor=2, mode="bilinear", align_corners=True)
        else:
            out = F.interpolate(out, size=tuple(size), mode="bilinear", align_corners=True)
        return _conv(W, f"{p}.out_conv", out)

    n = len(rn)
    path = block(f"nodes.fuse_P{levels[-1]}.op", [rn[-1]], rn[-2].shape[2:] if size_mode else None)
    for i in range(n - 2, -1, -1):
        size = rn[i - 1].shape[2:] if size_mode and i > 0 else None
        path = block(f"nodes.fuse_P{levels[i]}.op", [path, rn[i]], size)
    return path


def unet(W, xs, *, first, padding):
    """milesial ``Up`` (ConvTranspose2d 2x2/2, ``F.pad`` to the skip, ``cat([x2, x1])``, DoubleConv without BN)
    and, with ``padding='valid'``, the paper's centre crop of the skip and unpadded convs."""
    pad = 1 if padding == "same" else 0
    x = xs[-1]
    outs = []
    for i in range(len(xs) - 2, -1, -1):
        lv = first + i
        x1 = F.conv_transpose2d(x, W[f"nodes.up_P{lv}.op.weight"], W[f"nodes.up_P{lv}.op.bias"], stride=2)
        x2 = xs[i]
        if padding == "same":
            dy, dx = x2.shape[2] - x1.shape[2], x2.shape[3] - x1.shape[3]
            x1 = F.pad(x1, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        else:
            top, left = (x2.shape[2] - x1.shape[2]) // 2, (x2.shape[3] - x1.shape[3]) // 2
            x2 = x2[:, :, top:top + x1.shape[2], left:left + x1.shape[3]]
        x = torch.cat([x2, x1], dim=1)
        x = F.relu(_conv(W, f"nodes.block_P{lv}.op.0", x, padding=pad))
        x = F.relu(_conv(W, f"nodes.block_P{lv}.op.2", x, padding=pad))
        outs.append(x)
    return outs[::-1]
