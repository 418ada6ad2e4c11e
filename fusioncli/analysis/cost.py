"""Exact cost accounting: MACs, FLOPs and bytes moved for every aten op of a forward pass.

Why not just torch's ``FlopCounterMode`` or fvcore: both count only the matrix
products (conv, mm, bmm, attention) and report the element-wise ops that do the
*fusing* (add, mul, sigmoid, softmax, interpolation, normalisation) as zero, so an
``add`` fusion shows 0 FLOPs. This counter is a ``TorchDispatchMode`` like
``FlopCounterMode``: for the matrix products it calls torch's own formulas
(``torch.utils.flop_counter.flop_registry``, which count 2 FLOPs per MAC, bias
excluded) and halves them into MACs; for everything else it applies the table
below. Ops that no formula covers are never silently zero: they are collected in
``uncounted`` with their call counts.

Convention ``fusion-v1`` (per output element unless stated):

==========================================  =========================================
op                                           FLOPs
==========================================  =========================================
conv, linear, mm, bmm, attention             2 per MAC (MACs: bias excluded)
bias add of conv / addmm / baddbmm           1
add, sub, mul, div, neg, activations, ...    1  (sigmoid, gelu, silu: 1 as well)
addcmul, addcdiv                             2
softmax, log_softmax                         5  (max, sub, exp, sum, div)
batch norm, inference (running stats)        2, +2 with affine weight and bias
batch/layer/group/instance norm, statistics  5, +2 with affine weight and bias
sum, amax, amin, max/min over a dim          1 per *input* element
mean                                         1 per input element + 1 per output
var, std                                     3 per input element
avg/max pooling                              kernel area
adaptive avg pooling                         1 per input element + 1 per output
bilinear / bicubic interpolation             7 / 31 (weights precomputed)
nearest interpolation, cat, copy, pad        0 (data movement: bytes only)
views (view, permute, expand, slice, ...)    0 and no bytes
==========================================  =========================================

Bytes: every op that is not a view reads its tensor arguments and writes its
outputs; ``bytes_read`` and ``bytes_written`` add those sizes up. This is the
traffic of an unfused eager execution, an upper bound on DRAM traffic.
"""

from __future__ import annotations

import weakref
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from math import prod

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry as _TORCH_FLOP_FORMULAS
from torch.utils.module_tracker import ModuleTracker

CONVENTION = (
    "fusion-v1: MACs = multiply-accumulates of conv/linear/matmul/attention, bias excluded; "
    "FLOPs = 2 x MACs + 1 per output element of each add/sub/mul/div, bias add and activation "
    "+ stated per-element counts for softmax, normalisation, pooling and interpolation"
)

aten = torch.ops.aten


def _packets(names: str) -> list:
    out = []
    for name in names.split():
        for n in (name, name + "_"):
            p = getattr(aten, n, None)
            if p is not None:
                out.append(p)
    return out


_POINTWISE = {
    **{p: 1 for p in _packets(
        "add sub mul div rsub neg abs relu leaky_relu elu celu selu gelu silu sigmoid tanh hardswish "
        "hardsigmoid hardtanh relu6 mish softplus exp exp2 expm1 log log2 log1p sqrt rsqrt reciprocal pow "
        "clamp clamp_min clamp_max maximum minimum where sign erf sin cos floor ceil round threshold "
        "_prelu_kernel prelu square masked_fill eq ne lt le gt ge logical_not logical_and logical_or"
    )},
    **{p: 2 for p in _packets("addcmul addcdiv")},
    **{p: 3 for p in _packets("lerp")},
    **{p: 5 for p in _packets("_softmax _safe_softmax _log_softmax softmax log_softmax")},
}
_REDUCE_IN = {p: 1 for p in _packets("sum amax amin max min argmax argmin prod any all")}
_REDUCE_IN.update({p: 3 for p in _packets("var std var_mean std_mean")})
_MEAN = set(_packets("mean"))
_ADAPTIVE_AVG = set(_packets("_adaptive_avg_pool2d adaptive_avg_pool2d _adaptive_avg_pool3d"))
_ADAPTIVE_MAX = set(_packets("adaptive_max_pool2d"))
_POOL = set(_packets("avg_pool2d max_pool2d_with_indices max_pool2d avg_pool1d max_pool1d"))
_INTERP = {
    **{p: 7 for p in _packets("upsample_bilinear2d _upsample_bilinear2d_aa grid_sampler_2d")},
    **{p: 3 for p in _packets("upsample_linear1d")},
    **{p: 31 for p in _packets("upsample_bicubic2d _upsample_bicubic2d_aa")},
}
_BN_EVAL = set(_packets("_native_batch_norm_legit_no_training"))
_BN = set(_packets("native_batch_norm _native_batch_norm_legit cudnn_batch_norm miopen_batch_norm"))
_NORM_STATS = set(_packets("native_layer_norm native_group_norm"))
_SDPA_CPU = set(_packets("_scaled_dot_product_flash_attention_for_cpu _scaled_dot_product_attention_math"))
_MOVE = set(_packets(
    "cat stack clone copy _to_copy zeros zeros_like ones ones_like full full_like fill zero new_zeros new_ones "
    "constant_pad_nd reflection_pad2d replication_pad2d index index_select gather flip roll repeat "
    "pixel_shuffle pixel_unshuffle upsample_nearest1d upsample_nearest2d upsample_nearest3d "
    "_upsample_nearest_exact2d _unsafe_index scalar_tensor arange lift_fresh_copy bernoulli native_dropout"
))
_VIEW = set(_packets(
    "view _unsafe_view reshape _reshape_alias permute transpose t expand expand_as squeeze unsqueeze slice select "
    "split split_with_sizes unbind alias detach as_strided unfold narrow chunk lift_fresh empty empty_like "
    "empty_strided new_empty view_as flatten unflatten movedim diagonal _local_scalar_dense"
))
_IGNORED = {  # metadata queries that carry no work (the same list FlopCounterMode skips)
    aten.sym_size.default, aten.sym_stride.default, aten.sym_numel.default, aten.is_contiguous.default,
    aten.stride.default, aten.size.default, aten.dim.default, aten.numel.default, aten.is_same_size.default,
    aten.sym_storage_offset.default, aten.storage_offset.default, torch.ops.prim.device.default,
    aten.is_contiguous.memory_format, aten.is_strides_like_format.default,
    aten.is_non_overlapping_and_dense.default, aten.sym_is_contiguous.default, torch.ops.prim.layout.default,
}


_COVERED = (set(_TORCH_FLOP_FORMULAS) | set(_POINTWISE) | set(_REDUCE_IN) | _MEAN | _ADAPTIVE_AVG | _ADAPTIVE_MAX
            | _POOL | set(_INTERP) | _BN_EVAL | _BN | _NORM_STATS | _SDPA_CPU | _MOVE | _VIEW) - {aten.convolution_backward}


def _covered(packet) -> bool:
    return packet in _COVERED


def _numel(t) -> int:
    return t.numel() if isinstance(t, torch.Tensor) else 0


def _tensors(obj) -> list[torch.Tensor]:
    return [t for t in tree_flatten(obj)[0] if isinstance(t, torch.Tensor)]


def _shape_args(args, kwargs, out):
    to_shape = lambda x: x.shape if isinstance(x, torch.Tensor) else x  # noqa: E731
    return ([to_shape(a) for a in args], {k: to_shape(v) for k, v in kwargs.items()}, to_shape(out))


def op_cost(packet, args, kwargs, out) -> tuple[int, int] | None:
    """(MACs, FLOPs) of one aten op, or None when no formula covers it."""
    outs = _tensors(out)
    first_out = outs[0] if outs else None
    n_out = _numel(first_out)
    if packet in _TORCH_FLOP_FORMULAS and packet is not aten.convolution_backward:
        flops = _TORCH_FLOP_FORMULAS[packet](*args, **kwargs, out_val=out)
        macs = flops // 2
        bias = 0
        if packet in (aten.convolution, aten._convolution, aten.cudnn_convolution, aten.convolution_overrideable,
                      aten._slow_conv2d_forward):
            bias = n_out if len(args) > 2 and args[2] is not None else 0
        elif packet in (aten.addmm, aten.baddbmm):
            bias = n_out
        return macs, 2 * macs + bias
    if packet in _POINTWISE:
        return 0, _POINTWISE[packet] * n_out
    if packet in _MOVE or packet in _VIEW:
        return 0, 0
    if packet in _REDUCE_IN:
        return 0, _REDUCE_IN[packet] * _numel(args[0])
    if packet in _MEAN:
        return 0, _numel(args[0]) + n_out
    if packet in _ADAPTIVE_AVG:
        return 0, _numel(args[0]) + n_out
    if packet in _ADAPTIVE_MAX:
        return 0, _numel(args[0])
    if packet in _POOL:
        k = args[1] if len(args) > 1 else kwargs.get("kernel_size")
        k = [k] if isinstance(k, int) else list(k)
        return 0, prod(k) * n_out
    if packet in _INTERP:
        return 0, _INTERP[packet] * n_out
    if packet in _BN_EVAL or packet in _BN or packet in _NORM_STATS:
        weight = args[1] if len(args) > 1 else None
        affine = 2 if weight is not None else 0
        if packet in _BN_EVAL:
            per = 2
        elif packet in _BN:
            training = args[5] if len(args) > 5 else kwargs.get("training", False)
            per = 5 if training else 2
        else:
            per = 5
        return 0, (per + affine) * n_out
    if packet in _SDPA_CPU:
        q, k, v = args[0], args[1], args[2]
        *batch, lq, e = q.shape
        s, ev = k.shape[-2], v.shape[-1]
        bh = prod(batch)
        macs = bh * lq * s * e + bh * lq * s * ev
        # as the math path computes it: q and k each scaled by sqrt(scale), softmax over scores
        return macs, 2 * macs + bh * (lq + s) * e + 5 * bh * lq * s
    return None


_SHORTCUT_RESIZE = {getattr(aten, n).default for n in (
    "upsample_bilinear2d", "upsample_bicubic2d", "upsample_nearest2d", "_upsample_bilinear2d_aa",
    "_upsample_nearest_exact2d") if hasattr(aten, n)}
_SHORTCUT_REDUCE = {aten.mean.dim, aten.sum.dim_IntList, aten.amax.default, aten.amin.default}
_SHORTCUT_BN = {aten.native_batch_norm.default, aten._native_batch_norm_legit_no_training.default}
# out-of-place element-wise ops whose result, for floating tensors of one dtype and Python
# scalars, has that dtype and the broadcast shape of the tensor arguments
_SHORTCUT_POINTWISE = {
    o for n in ("add.Tensor add.Scalar sub.Tensor sub.Scalar mul.Tensor mul.Scalar div.Tensor div.Scalar rsub.Tensor "
                "rsub.Scalar neg.default relu.default leaky_relu.default sigmoid.default tanh.default gelu.default "
                "silu.default hardswish.default hardsigmoid.default hardtanh.default elu.default exp.default "
                "sqrt.default rsqrt.default reciprocal.default pow.Tensor_Scalar clamp.default clamp_min.default "
                "maximum.default minimum.default lerp.Scalar lerp.Tensor addcmul.default addcdiv.default "
                "_softmax.default _safe_softmax.default _log_softmax.default _prelu_kernel.default").split()
    if (o := getattr(getattr(aten, n.split(".")[0], None), n.split(".")[1], None)) is not None
}


def _meta_shortcut(func, args):
    """Output of a shape-trivial op on meta tensors, without running its meta kernel.

    torch's meta kernels for interpolation, batch norm and many element-wise ops are Python
    decompositions that take 0.2-20 ms a call (two bilinear resizes cost 40 ms, most of a block's
    counting time); their output shapes follow from the arguments. Outputs are contiguous, which
    changes no count. Anything else returns None and runs normally; the tests check that
    counting on meta equals counting on CPU for every block.
    """
    if func is aten.cat.default:
        return _meta_cat(*args)
    if func is aten.convolution.default:
        return _meta_conv(*args)
    if func in _SHORTCUT_MATMUL:  # meta_mm & co. check shapes with torch._check, which imports sympy
        return _meta_matmul(func, args)
    x = args[0] if args else None
    if not isinstance(x, torch.Tensor) or x.device.type != "meta":
        return None
    if func in _SHORTCUT_RESIZE:
        return torch.empty((*x.shape[:-2], *args[1]), dtype=x.dtype, device="meta")
    if func in _SHORTCUT_POINTWISE:
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if all(t.device.type == "meta" and t.dtype == x.dtype for t in tensors) and x.dtype.is_floating_point and \
                all(isinstance(a, (torch.Tensor, int, float, bool, type(None), list, tuple)) for a in args):
            shape = _broadcast([t.shape for t in tensors])
            return None if shape is None else torch.empty(shape, dtype=x.dtype, device="meta")
        return None
    if func in _SHORTCUT_REDUCE and x.dtype.is_floating_point and len(args) >= 2 and \
            isinstance(args[1], (list, tuple)) and args[1] and all(isinstance(d, int) for d in args[1]):
        keep = bool(args[2]) if len(args) > 2 else False
        dims = {d % x.dim() for d in args[1]}
        shape = [1 if i in dims else n for i, n in enumerate(x.shape) if keep or i not in dims]
        return _empty(shape, x.dtype)
    if func in (aten.max_pool2d_with_indices.default, aten.avg_pool2d.default) and x.dim() == 4:
        ceil = (args[5] if len(args) > 5 else False) if func is aten.max_pool2d_with_indices.default else \
            (args[4] if len(args) > 4 else False)
        dil = (args[4] if len(args) > 4 else [1, 1]) if func is aten.max_pool2d_with_indices.default else [1, 1]
        size = _pool_out(x.shape[-2:], args[1], args[2] if len(args) > 2 else [], args[3] if len(args) > 3 else [0],
                         dil, ceil)
        if size is None:
            return None
        out = _empty((*x.shape[:-2], *size), x.dtype)
        return (out, _empty(out.shape, torch.int64)) if func is aten.max_pool2d_with_indices.default else out
    if func is aten.native_layer_norm.default:
        axis = x.dim() - len(args[1])
        stats = (*x.shape[:axis], *([1] * len(args[1])))
        return _empty(x.shape, x.dtype), _empty(stats, torch.float32), _empty(stats, torch.float32)
    if func in _SHORTCUT_BN and x.dim() >= 2:
        return _empty(x.shape, x.dtype), _empty((x.shape[1],), torch.float32), _empty((x.shape[1],), torch.float32)
    return None


_SHORTCUT_MATMUL = {aten.mm.default, aten.addmm.default, aten.bmm.default}


def _meta_matmul(func, args):
    """(n, k) @ (k, m) -> (n, m); addmm's bias first; bmm batched. None (run the op) unless every
    tensor is a floating meta tensor of one dtype with matching inner sizes."""
    a, b = args[1:3] if func is aten.addmm.default else args[:2]
    tensors = args[:3] if func is aten.addmm.default else args[:2]
    if not all(isinstance(t, torch.Tensor) and t.device.type == "meta" and t.dtype == a.dtype for t in tensors):
        return None
    if not a.dtype.is_floating_point:
        return None
    if func is aten.bmm.default:
        if a.dim() != 3 or b.dim() != 3 or a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1]:
            return None
        return _empty((a.shape[0], a.shape[1], b.shape[2]), a.dtype)
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[0]:
        return None
    return _empty((a.shape[0], b.shape[1]), a.dtype)


def _empty(shape, dtype):
    # torch.empty, not empty_like or clone: their meta paths import sympy (0.5 s) on first use
    return torch.empty(tuple(shape), dtype=dtype, device="meta")


def _broadcast(shapes) -> tuple[int, ...] | None:
    """Broadcast shape, or None when they do not broadcast (torch then raises its own error).
    Plain Python: ``torch.broadcast_shapes`` imports sympy (0.5 s) on first use."""
    n = max(len(s) for s in shapes)
    out = []
    for dims in zip(*[(1,) * (n - len(s)) + tuple(s) for s in shapes]):
        sizes = {d for d in dims if d != 1}
        if len(sizes) > 1:
            return None
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def _pool_out(hw, kernel, stride, padding, dilation, ceil_mode) -> list[int] | None:
    """Output size of a 2-d pooling, as torch's pooling_output_shape computes it."""
    two = lambda v: [v, v] if isinstance(v, int) else (list(v) * 2 if len(v) == 1 else list(v))  # noqa: E731
    k, s, p, d = two(kernel), two(stride) if stride else two(kernel), two(padding), two(dilation)
    out = []
    for n, ki, si, pi, di in zip(hw, k, s, p, d):
        num = n + 2 * pi - di * (ki - 1) - 1 + (si - 1 if ceil_mode else 0)
        o = num // si + 1
        if ceil_mode and (o - 1) * si >= n + pi:
            o -= 1
        if o <= 0:
            return None
        out.append(o)
    return out


def _meta_conv(x, w, bias, stride, padding, dilation, transposed, output_padding, groups):
    nd = x.dim() - 2
    ok = (isinstance(x, torch.Tensor) and x.device.type == "meta" and w.device.type == "meta" and not transposed
          and nd >= 1 and w.dim() == nd + 2 and x.shape[1] == w.shape[1] * groups
          and all(isinstance(v, (list, tuple)) and len(v) == nd and all(isinstance(i, int) for i in v)
                  for v in (stride, padding, dilation)))
    if not ok:
        return None
    spatial = [(x.shape[2 + i] + 2 * padding[i] - dilation[i] * (w.shape[2 + i] - 1) - 1) // stride[i] + 1
               for i in range(nd)]
    if any(s <= 0 for s in spatial):
        return None  # let torch raise its own error
    return torch.empty((x.shape[0], w.shape[0], *spatial), dtype=x.dtype, device="meta")


def _meta_cat(tensors, dim: int = 0):
    ts = [t for t in tensors if not (t.dim() == 1 and t.numel() == 0)]  # legacy empty tensors are skipped
    if not ts or any(t.device.type != "meta" or t.dtype != ts[0].dtype or t.dim() != ts[0].dim() for t in ts):
        return None
    dim = dim % ts[0].dim()
    shape = list(ts[0].shape)
    if any(list(t.shape[:dim]) + list(t.shape[dim + 1:]) != shape[:dim] + shape[dim + 1:] for t in ts):
        return None  # let torch raise its own error
    shape[dim] = sum(t.shape[dim] for t in ts)
    return torch.empty(shape, dtype=ts[0].dtype, device="meta")


@dataclass
class Tally:
    calls: int = 0
    macs: int = 0
    flops: int = 0
    bytes_read: int = 0
    bytes_written: int = 0

    def add(self, macs: int, flops: int, read: int, written: int) -> None:
        self.calls += 1
        self.macs += macs
        self.flops += flops
        self.bytes_read += read
        self.bytes_written += written

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CostResult:
    total: Tally
    by_op: dict[str, Tally]
    by_module: dict[str, Tally]
    uncounted: dict[str, int]
    peak_activation_bytes: int
    touched: set = field(default_factory=set, repr=False)  # ids of tensors that took part in an op


class CostCounter(TorchDispatchMode):
    """Count MACs, FLOPs and bytes of everything run inside the context.

    Per-module figures are inclusive (a module's count contains its children's), as in
    ``FlopCounterMode``; module names are the dotted paths of ``ModuleTracker`` with the
    root's class name dropped.
    """

    def __init__(self, root_name: str | None = None) -> None:
        super().__init__()
        self.total = Tally()
        self.by_op: dict[str, Tally] = defaultdict(Tally)
        self.by_module: dict[str, Tally] = defaultdict(Tally)
        self.uncounted: Counter[str] = Counter()
        self.touched: set[int] = set()
        self.tracker = ModuleTracker()
        self.root_name = root_name
        self.live = 0
        self.peak = 0
        self._depth = 0

    def __enter__(self):
        # the mode is re-entered to count decompositions: register the module hooks once only,
        # or the outer registration's handles are lost and its global hooks leak
        if self._depth == 0:
            self.tracker.__enter__()
        self._depth += 1
        return super().__enter__()

    def __exit__(self, *exc):
        result = super().__exit__(*exc)
        self._depth -= 1
        if self._depth == 0:
            self.tracker.__exit__()
        return result

    def _release(self, nbytes: int) -> None:
        self.live -= nbytes

    def _module_names(self) -> list[str]:
        names = []
        for p in self.tracker.parents:
            if p == "Global":
                continue
            if self.root_name and (p == self.root_name or p.startswith(self.root_name + ".")):
                p = p[len(self.root_name) + 1:]
            names.append(p)
        return names

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _IGNORED:
            return func(*args, **kwargs)
        packet = func._overloadpacket
        if not _covered(packet):
            # Try the op's own decomposition (as FlopCounterMode does) before giving up.
            with self:
                decomposed = func.decompose(*args, **kwargs)
            if decomposed is not NotImplemented:
                return decomposed
        out = _meta_shortcut(func, args)
        if out is None:
            out = func(*args, **kwargs)
        cost = op_cost(packet, args, kwargs, out)
        if cost is None:
            self.uncounted[str(packet)] += 1
            cost = (0, 0)
        ins = _tensors((args, kwargs))
        for t in ins:
            self.touched.add(id(t))
        outs = _tensors(out)
        if packet in _BN or packet in _BN_EVAL:
            # the saved mean/invstd outputs are empty on CPU in eval mode but not on meta:
            # count the normalised map only, so meta and real devices agree
            outs = outs[:1]
        if packet in _VIEW:
            read = written = 0
            for o in outs:  # a view keeps its base alive: tie the base's lifetime to the view
                if ins:
                    weakref.finalize(o, _noop, ins[0])
        else:
            read = sum(t.numel() * t.element_size() for t in {id(t): t for t in ins}.values())
            written = sum(t.numel() * t.element_size() for t in outs)
            for o in outs:
                nbytes = o.numel() * o.element_size()
                self.live += nbytes
                weakref.finalize(o, self._release, nbytes)
            self.peak = max(self.peak, self.live)
        macs, flops = cost
        self.total.add(macs, flops, read, written)
        self.by_op[str(packet)].add(macs, flops, read, written)
        for name in self._module_names():
            self.by_module[name].add(macs, flops, read, written)
        return out

    def result(self) -> CostResult:
        return CostResult(self.total, dict(self.by_op), dict(self.by_module), dict(self.uncounted), self.peak,
                          self.touched)


def _noop(*_args) -> None:
    return None
