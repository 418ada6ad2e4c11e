"""The formula table: the (MACs, FLOPs) of one op from the shapes of its arguments.

A formula is keyed by an op's qualified name: a packet, ``"aten::add"`` (every overload), or
one overload, ``"aten::add.Tensor"`` (``"aten::relu.default"`` for the default one), which wins
over its packet's entry. It is called as torch's ``flop_counter`` formulas are::

    fn(*args, out_shape=..., **kwargs)

with every tensor of ``args`` and ``kwargs`` replaced by its ``torch.Size`` (``None`` stays
``None``, a list of tensors becomes a list of shapes, scalars stay) and ``out_shape`` the
output's shape, or a tuple of shapes for an op with several outputs. It returns the FLOPs as an
``int`` (MACs 0) or a ``(macs, flops)`` tuple of non-negative ints::

    from math import prod
    from fusioncli import register_formula

    @register_formula("mylib::fuse")
    def fuse_flops(x, y, out_shape):
        return 3 * prod(out_shape)

Plug-ins: a distribution declares formulas in the entry-point group ``fusioncli.formulas``;
the entry point's *name* is the op name, its value the formula (``module:function``)::

    [project.entry-points."fusioncli.formulas"]
    "mylib::fuse" = "mylib.costs:fuse_flops"

They are loaded when the first :class:`~fusioncli.analysis.cost.CostCounter` is created (not
when ``fusioncli`` is imported); a broken one raises :class:`~fusioncli.errors.SpecError`.

Every built-in formula (the ``fusion-v1`` convention of :mod:`fusioncli.analysis.cost`) sits in
this same table. Views (``VIEW_OPS``) count no FLOPs and, apart from the table, move no bytes.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from math import prod
from typing import Any

import torch
from torch.utils.flop_counter import flop_registry as _TORCH_FLOP_FORMULAS

from ..errors import RunError, SpecError

__all__ = [
    "BATCH_NORM_OPS", "BUILTIN_OPS", "ENTRY_POINT_GROUP", "VIEW_OPS", "formula_for", "load_entry_point_formulas",
    "register_formula", "registered_formulas", "unregister_formula",
]

ENTRY_POINT_GROUP = "fusioncli.formulas"

aten = torch.ops.aten
_NAME = re.compile(r"[A-Za-z_]\w*::[A-Za-z_]\w*(\.[A-Za-z_]\w*)?")


class _Formula:
    __slots__ = ("fn", "key", "raw")

    def __init__(self, fn: Callable, key: str, raw: bool = False) -> None:
        self.fn = fn
        self.key = key
        self.raw = raw  # torch's get_raw formulas take the tensors themselves and ``out_val``


_FORMULAS: dict[str, _Formula] = {}
_CACHE: dict[Any, _Formula | None] = {}
_EP_SOURCES: dict[str, tuple[str, str, str]] = {}
_entry_points_loaded = False


def op_name(op) -> str:
    """``"ns::op"`` or ``"ns::op.overload"`` for a name string, an OpOverloadPacket or an OpOverload."""
    if isinstance(op, str):
        if not _NAME.fullmatch(op):
            raise ValueError(f"op {op!r}: expected 'namespace::op' or 'namespace::op.overload', e.g. 'aten::add' "
                             "or 'aten::add.Tensor'")
        return op
    if isinstance(op, torch._ops.OpOverloadPacket):
        return op._qualified_op_name
    if isinstance(op, torch._ops.OpOverload):
        return f"{op._overloadpacket._qualified_op_name}.{op._overloadname}"
    overload = getattr(op, "_opoverload", None)  # torch.library.custom_op's CustomOpDef
    if isinstance(overload, torch._ops.OpOverload):
        return overload._overloadpacket._qualified_op_name
    raise TypeError(f"op {op!r}: expected a 'namespace::op[.overload]' string, an OpOverloadPacket "
                    f"(torch.ops.ns.op) or an OpOverload (torch.ops.ns.op.overload), got {type(op).__name__}")


def register_formula(op, fn: Callable | None = None, *, replace: bool = False):
    """Register ``fn`` as the formula of ``op``; without ``fn``, a decorator that does.

    ``op``: ``"ns::op"``, ``"ns::op.overload"``, an OpOverloadPacket or an OpOverload. An op
    that already has a formula raises ValueError unless ``replace=True``. Returns ``fn``.
    """
    key = op_name(op)

    def register(f: Callable) -> Callable:
        _add(key, f, replace=replace)
        return f

    return register if fn is None else register(fn)


def unregister_formula(op) -> Callable:
    """Remove the formula registered for exactly ``op`` (packet or overload key) and return it;
    KeyError when there is none."""
    key = op_name(op)
    if key not in _FORMULAS:
        raise KeyError(f"{key} has no formula registered")
    _CACHE.clear()
    _EP_SOURCES.pop(key, None)
    return _FORMULAS.pop(key).fn


def registered_formulas() -> dict[str, Callable]:
    """A copy of the table: op name -> formula."""
    return {k: f.fn for k, f in _FORMULAS.items()}


def formula_for(func) -> Callable | None:
    """The formula that counts the OpOverload ``func`` (its overload's entry, else its packet's), or None."""
    entry = lookup(func)
    return None if entry is None else entry.fn


def lookup(func) -> _Formula | None:
    """The table entry for an OpOverload, cached per OpOverload until the table changes."""
    try:
        return _CACHE[func]
    except KeyError:
        pass
    packet = func._overloadpacket._qualified_op_name
    entry = _FORMULAS.get(f"{packet}.{func._overloadname}") or _FORMULAS.get(packet)
    _CACHE[func] = entry
    return entry


def evaluate(entry: _Formula, args, kwargs, out) -> tuple[int, int]:
    """(MACs, FLOPs) of one call: the formula applied to the shapes of its arguments and output."""
    try:
        if entry.raw:
            got = entry.fn(*args, out_val=out, **kwargs)
        else:
            got = entry.fn(*[_shape(a) for a in args], out_shape=_shape(out),
                           **({k: _shape(v) for k, v in kwargs.items()} if kwargs else kwargs))
    except Exception as e:
        raise RunError(f"formula for {entry.key} raised {type(e).__name__}: {e}".splitlines()[0]) from e
    if type(got) is int and got >= 0:
        return 0, got
    return _checked(entry.key, got)


def _checked(key: str, got) -> tuple[int, int]:
    pair = got if isinstance(got, tuple) and len(got) == 2 else None if isinstance(got, tuple) else (0, got)
    if pair is None or not all(_is_count(v) for v in pair):
        raise RunError(f"formula for {key} returned {got!r}; expected a non-negative int (FLOPs) or a "
                       "(macs, flops) tuple of non-negative ints")
    return operator.index(pair[0]), operator.index(pair[1])


def _is_count(v) -> bool:
    return not isinstance(v, bool) and hasattr(v, "__index__") and operator.index(v) >= 0


def _shape(x):
    if isinstance(x, torch.Tensor):
        return x.shape
    if type(x) is list:
        return [_shape(e) for e in x]
    if type(x) is tuple:
        return tuple(_shape(e) for e in x)
    return x


def _add(key: str, fn: Callable, *, replace: bool = False, raw: bool = False) -> None:
    if not callable(fn):
        raise TypeError(f"formula for {key}: expected a callable, got {type(fn).__name__}")
    if key in _FORMULAS and not replace:
        raise ValueError(f"{key} already has a formula ({_describe(_FORMULAS[key].fn)}); "
                         "pass replace=True to override it")
    _FORMULAS[key] = _Formula(fn, key, raw)
    _EP_SOURCES.pop(key, None)
    _CACHE.clear()


def _describe(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', None) or '?'}.{getattr(fn, '__qualname__', None) or repr(fn)}"


def load_entry_point_formulas() -> list[str]:
    """Register the formula of every entry point in group ``fusioncli.formulas``; return the op
    names registered by this call (one already registered from the same entry point is skipped).

    A broken entry point (fails to load, not callable, bad op name, op that already has a
    formula) raises SpecError naming the entry point and its distribution.
    """
    global _entry_points_loaded
    from importlib.metadata import entry_points

    added = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        dist_name = f"{dist.name} {dist.version}" if dist is not None else "an unknown distribution"
        source = (ep.name, ep.value, dist_name)
        where = f"formula entry point {ep.name!r} = {ep.value!r} (group {ENTRY_POINT_GROUP}) of {dist_name}"
        try:
            key = op_name(ep.name)
        except ValueError as e:
            raise SpecError(f"{where}: the name must be the op's; {e}", field=ENTRY_POINT_GROUP) from None
        if _EP_SOURCES.get(key) == source and key in _FORMULAS:
            continue
        try:
            fn = ep.load()
        except Exception as e:
            raise SpecError(f"{where}: cannot load it: {type(e).__name__}: {e}".splitlines()[0],
                            field=ENTRY_POINT_GROUP) from e
        try:
            _add(key, fn)
        except (TypeError, ValueError) as e:
            raise SpecError(f"{where}: {e}", field=ENTRY_POINT_GROUP) from None
        _EP_SOURCES[key] = source
        added.append(key)
    _entry_points_loaded = True
    return added


def ensure_entry_point_formulas() -> None:
    """Load the entry-point formulas once (the first CostCounter calls this)."""
    if not _entry_points_loaded:
        load_entry_point_formulas()


# ---- the built-in table: convention fusion-v1 ----------------------------------------------------


def _packet_names(names: str) -> list[str]:
    """``aten::name`` and its in-place ``aten::name_``, for those this torch has."""
    return [f"aten::{n}" for name in names.split() for n in (name, name + "_") if getattr(aten, n, None) is not None]


def _first(shape):
    """The first tensor shape of an output (depth first), or None."""
    if isinstance(shape, torch.Size):
        return shape
    if isinstance(shape, (list, tuple)):
        for s in shape:
            f = _first(s)
            if f is not None:
                return f
    return None


def _numel(shape) -> int:
    return prod(shape) if isinstance(shape, torch.Size) else 0


def _n_out(out_shape) -> int:
    return _numel(_first(out_shape))


def _per_output(per: int) -> Callable:
    def formula(*args, out_shape, **kwargs) -> int:
        return per * _n_out(out_shape)

    formula.__doc__ = f"{per} per output element."
    formula.__qualname__ = f"per_output_{per}"
    return formula


def _per_input(per: int) -> Callable:
    """``per`` per element of the first argument (the input, or a backward op's grad_output)."""
    def formula(x, *args, out_shape, **kwargs) -> int:
        return per * _numel(x)

    formula.__doc__ = f"{per} per input element."
    formula.__qualname__ = f"per_input_{per}"
    return formula


def _zero(*args, out_shape, **kwargs) -> int:
    """0: data movement or a view."""
    return 0


def _input_plus_output(x, *args, out_shape, **kwargs) -> int:
    """1 per input element + 1 per output element (mean, adaptive average pooling)."""
    return _numel(x) + _n_out(out_shape)


def _pool(x, *args, out_shape, **kwargs) -> int:
    """kernel area per output element."""
    k = args[0] if args else kwargs.get("kernel_size")
    k = [k] if isinstance(k, int) else list(k)
    return prod(k) * _n_out(out_shape)


def _norm(per: int, *, training_arg: bool = False) -> Callable:
    def formula(x, *args, out_shape, **kwargs) -> int:
        weight = args[0] if args else None
        affine = 2 if weight is not None else 0
        p = per
        if training_arg:
            training = args[4] if len(args) > 4 else kwargs.get("training", False)
            p = 5 if training else 2
        return (p + affine) * _n_out(out_shape)

    formula.__doc__ = ("2 per output element (running statistics), 5 when training; +2 with an affine weight"
                       if training_arg else f"{per} per output element, +2 with an affine weight")
    return formula


def _sdpa_cpu(q, k, v, *args, out_shape, **kwargs) -> tuple[int, int]:
    """MACs = B*H*Lq*S*(E + Ev); FLOPs = 2 MACs + B*H*(Lq + S)*E (q and k each scaled by
    sqrt(scale), as the math path does) + 5*B*H*Lq*S (softmax over the scores)."""
    *batch, lq, e = q
    s, ev = k[-2], v[-1]
    bh = prod(batch)
    macs = bh * lq * s * e + bh * lq * s * ev
    return macs, 2 * macs + bh * (lq + s) * e + 5 * bh * lq * s


def _trilinear(i1, i2, i3, expand1, expand2, expand3, sumdim, unroll_dim=1, *, out_shape) -> tuple[int, int]:
    """As ATen's ``_trilinear`` computes it (``nn.Bilinear``, ``F.bilinear``): with every input
    unsqueezed at its ``expand`` dims, the dims summed that ``i3`` lacks are contracted in
    ``i1 x i2`` first, then the rest against ``i3``. MACs = points of the first contraction
    (broadcast of ``i1`` and ``i2``) + points of the second (that result, summed dims dropped, with
    ``i3``); FLOPs = 2 MACs + 1 per output element (each unrolled slice is added into a zeroed
    output). nn.Bilinear(I, J, O) on B rows: B*O*I*J + B*O*J MACs."""
    def expanded(shape, expand):
        dims = list(shape)
        for d in sorted(expand):
            dims.insert(d, 1)
        return dims

    a, b, c = expanded(i1, expand1), expanded(i2, expand2), expanded(i3, expand3)
    summed = set(sumdim)
    first = [max(x, y) for x, y in zip(a, b)]
    buf = [1 if (d in summed and c[d] == 1) else n for d, n in enumerate(first)]
    second = [max(x, y) for x, y in zip(buf, c)]
    macs = prod(first) + prod(second)
    return macs, 2 * macs + _n_out(out_shape)


_CONV_BIAS = {"aten::convolution", "aten::_convolution", "aten::cudnn_convolution", "aten::convolution_overrideable",
              "aten::_slow_conv2d_forward"}
_MATMUL_BIAS = {"aten::addmm", "aten::baddbmm"}


def _torch_formula(key: str, tfn: Callable) -> tuple[Callable, bool]:
    """torch's formula (2 FLOPs per MAC, bias excluded) halved into MACs; FLOPs = 2 MACs + 1 per
    output element for the bias add of conv (when it has a bias), addmm and baddbmm."""
    conv, matmul = key in _CONV_BIAS, key in _MATMUL_BIAS

    def bias(args, out_shape) -> int:
        if matmul or (conv and len(args) > 2 and args[2] is not None):
            return _n_out(out_shape)
        return 0

    inner = getattr(tfn, "__wrapped__", None)  # shape_wrapper's: it takes shapes
    if inner is None:  # get_raw: it takes the tensors
        def formula(*args, out_val=None, **kwargs) -> tuple[int, int]:
            macs = tfn(*args, out_val=out_val, **kwargs) // 2
            return macs, 2 * macs + bias(args, _shape(out_val))
    else:
        def formula(*args, out_shape, **kwargs) -> tuple[int, int]:
            macs = inner(*args, out_shape=out_shape, **kwargs) // 2
            return macs, 2 * macs + bias(args, out_shape)
    formula.__doc__ = _torch_formula.__doc__
    formula.__qualname__ = f"torch_formula[{key}]"
    return formula, inner is None


def _builtin_table() -> dict[str, tuple[Callable, bool]]:
    table: dict[str, tuple[Callable, bool]] = {}

    def put(names: list[str], fn: Callable, raw: bool = False) -> None:
        for n in names:
            if n in table:
                raise ValueError(f"built-in formula table: {n} listed twice")
            table[n] = (fn, raw)

    for packet, tfn in _TORCH_FLOP_FORMULAS.items():
        if isinstance(packet, torch._ops.OpOverloadPacket) and packet is not getattr(aten, "convolution_backward", 0):
            key = packet._qualified_op_name
            put([key], *_torch_formula(key, tfn))
    put(_packet_names(
        "add sub mul div rsub neg abs relu leaky_relu elu celu selu gelu silu sigmoid tanh hardswish "
        "hardsigmoid hardtanh relu6 mish softplus exp exp2 expm1 log log2 log1p sqrt rsqrt reciprocal pow "
        "clamp clamp_min clamp_max maximum minimum where sign erf sin cos floor ceil round threshold "
        "_prelu_kernel prelu square masked_fill eq ne lt le gt ge logical_not logical_and logical_or"), _per_output(1))
    put(_packet_names("addcmul addcdiv"), _per_output(2))
    put(_packet_names("lerp"), _per_output(3))
    put(_packet_names("_softmax _safe_softmax _log_softmax softmax log_softmax"), _per_output(5))
    put(_packet_names(
        "cat stack clone copy _to_copy zeros zeros_like ones ones_like full full_like fill zero new_zeros new_ones "
        "constant_pad_nd reflection_pad2d replication_pad2d index index_select gather flip roll repeat "
        "pixel_shuffle pixel_unshuffle upsample_nearest1d upsample_nearest2d upsample_nearest3d "
        "_upsample_nearest_exact2d _unsafe_index scalar_tensor arange lift_fresh_copy bernoulli native_dropout"), _zero)
    put(sorted(VIEW_OPS), _zero)
    put(_packet_names("sum amax amin max min argmax argmin prod any all"), _per_input(1))
    put(_packet_names("var std var_mean std_mean"), _per_input(3))
    put(_packet_names("mean"), _input_plus_output)
    put(_packet_names("_adaptive_avg_pool2d adaptive_avg_pool2d _adaptive_avg_pool3d"), _input_plus_output)
    put(_packet_names("adaptive_max_pool2d"), _per_input(1))
    put(_packet_names("avg_pool2d max_pool2d_with_indices max_pool2d avg_pool1d max_pool1d"), _pool)
    put(_packet_names("upsample_bilinear2d _upsample_bilinear2d_aa"), _per_output(7))
    put(_packet_names("upsample_linear1d"), _per_output(3))
    put(_packet_names("upsample_bicubic2d _upsample_bicubic2d_aa"), _per_output(31))
    put(_packet_names("_native_batch_norm_legit_no_training"), _norm(2))
    put(sorted(BATCH_NORM_OPS - set(_packet_names("_native_batch_norm_legit_no_training"))),
        _norm(5, training_arg=True))
    put(_packet_names("native_layer_norm native_group_norm"), _norm(5))
    put(_packet_names("_scaled_dot_product_flash_attention_for_cpu _scaled_dot_product_attention_math"), _sdpa_cpu)
    put(_packet_names("_trilinear"), _trilinear)
    _backward_table(put)
    _volume_table(put)
    _sampling_table(put)
    return table


# ---- backward ops: convention fusion-train-v1 (fusioncli.analysis.training) ------------------------
# Each count follows the ATen CPU kernel's expression: one per arithmetic op, compare-select or
# transcendental, as fusion-v1 counts activations; constants folded per channel are not counted.


def _masked(flops: tuple[int, ...]) -> Callable:
    """A backward with ``output_mask``: each computed gradient's FLOPs per element of grad_output."""
    def formula(grad_out, *args, out_shape, **kwargs) -> int:
        mask = kwargs.get("output_mask", args[-1] if args else None)
        return sum(per for per, want in zip(flops, mask) if want) * _numel(grad_out)

    return formula


def _conv_backward(grad_out, x, w, bias_sizes, stride, padding, dilation, transposed, output_padding, groups,
                   output_mask, *, out_shape) -> tuple[int, int]:
    """grad_input (a transposed conv of grad_output with the weight) and grad_weight (a conv of the input
    with grad_output) each take the forward's MACs: batch x weight elements x the positions of the
    strided side (grad_output's, or the input's for a transposed conv). torch's ``conv_backward_flop``
    agrees except for grad_weight of a grouped conv, which it counts ``groups`` times over. FLOPs = 2 MACs
    + 1 per grad_output element for grad_bias (a sum)."""
    per = x[0] * prod(w) * prod((x if transposed else grad_out)[2:])
    macs = per * (bool(output_mask[0]) + bool(output_mask[1]))
    return macs, 2 * macs + (_numel(grad_out) if output_mask[2] else 0)


def _batch_norm_backward(grad_out, x, weight, running_mean, running_var, save_mean, save_invstd, train, eps,
                         output_mask, *, out_shape) -> int:
    """Inference statistics: grad_input 1 (grad x weight*invstd), grad_weight 3 (sum of (x - mean) x grad),
    grad_bias 1 (sum of grad); batch statistics: the two sums (4) once, and grad_input 5 more."""
    n = _numel(grad_out)
    if not train:
        return sum(per * n for per, want in zip((1, 3, 1), output_mask) if want)
    return (4 * n if any(output_mask) else 0) + (5 * n if output_mask[0] else 0)


def _pool_backward(grad_out, x, kernel_size, *args, out_shape, **kwargs) -> int:
    """kernel area per element of grad_output (each spread over its window)."""
    k = [kernel_size] if isinstance(kernel_size, int) else list(kernel_size)
    return prod(k) * _numel(grad_out)


def _grad_in_plus_out(grad_out, *args, out_shape, **kwargs) -> int:
    """1 per element of grad_output + 1 per element of grad_input (adaptive average pooling)."""
    return _numel(grad_out) + _n_out(out_shape)


def _sdpa_backward(grad_out, q, k, v, *args, out_shape, **kwargs) -> tuple[int, int]:
    """torch's ``sdpa_backward_flop_count`` (scores recomputed, then dV, dP, dQ, dK: five matmuls) halved
    into MACs; FLOPs = 2 MACs + 5 per score (softmax recomputed from the log-sum-exp: sub, exp; dS:
    sub, mul; scale) + 2 per element of grad_output (the row sums of grad_output x output)."""
    b, h, lq, _ = q
    s = k[-2]
    from torch.utils.flop_counter import sdpa_backward_flop_count

    macs = sdpa_backward_flop_count(grad_out, q, k, v) // 2
    return macs, 2 * macs + 5 * b * h * lq * s + 2 * _numel(grad_out)


def _index_put(x, indices, values, accumulate=False, *args, out_shape, **kwargs) -> int:
    """1 per element of values when accumulating (the backward of indexing), else 0 (a copy)."""
    return _numel(values) if accumulate else 0


def _backward_table(put) -> None:
    put(_packet_names("convolution_backward"), _conv_backward)
    put(_packet_names("threshold_backward hardtanh_backward"), _per_output(1))
    put(_packet_names("leaky_relu_backward native_dropout_backward"), _per_output(2))
    put(_packet_names("sigmoid_backward tanh_backward hardsigmoid_backward elu_backward"), _per_output(3))
    put(_packet_names("_softmax_backward_data _log_softmax_backward_data _prelu_kernel_backward"), _per_output(4))
    put(_packet_names("hardswish_backward"), _per_output(5))
    put(_packet_names("silu_backward softplus_backward"), _per_output(6))
    put(_packet_names("mish_backward"), _per_output(9))
    put(_packet_names("gelu_backward"), _gelu_backward)
    put(_packet_names("native_batch_norm_backward"), _batch_norm_backward)
    put(_packet_names("native_layer_norm_backward"), _masked((8, 4, 1)))
    put(_packet_names("native_group_norm_backward"), _masked((8, 4, 1)))
    put(_packet_names("upsample_nearest1d_backward upsample_nearest2d_backward upsample_nearest3d_backward "
                      "_upsample_nearest_exact1d_backward _upsample_nearest_exact2d_backward "
                      "_upsample_nearest_exact3d_backward max_pool2d_with_indices_backward "
                      "adaptive_max_pool2d_backward"), _per_input(1))
    put(_packet_names("upsample_linear1d_backward"), _per_input(4))
    put(_packet_names("upsample_bilinear2d_backward _upsample_bilinear2d_aa_backward"), _per_input(8))
    put(_packet_names("upsample_bicubic2d_backward _upsample_bicubic2d_aa_backward"), _per_input(32))
    put(_packet_names("avg_pool2d_backward"), _pool_backward)
    put(_packet_names("_adaptive_avg_pool2d_backward"), _grad_in_plus_out)
    put(_packet_names("_scaled_dot_product_flash_attention_for_cpu_backward"), _sdpa_backward)
    put(_packet_names("_index_put_impl index_put _unsafe_index_put"), _index_put)
    put(_packet_names("select_backward slice_backward reflection_pad2d_backward replication_pad2d_backward"), _zero)


# ---- volumes (CxDxHxW): 3-D pooling and resizing, forward and backward ---------------------------------
# Conv3d runs through aten::convolution (torch's formula) and convolution_backward; adaptive average
# pooling 3-D and nearest 3-D resizing are in the tables above.


def _volume_table(put) -> None:
    put(_packet_names("upsample_trilinear3d"), _per_output(15))  # 8 taps: 8 products, 7 sums
    put(_packet_names("_upsample_nearest_exact3d"), _zero)
    put(_packet_names("avg_pool3d max_pool3d_with_indices max_pool3d"), _pool)
    put(_packet_names("adaptive_max_pool3d"), _per_input(1))
    put(_packet_names("upsample_trilinear3d_backward"), _per_input(16))  # 8 taps, each a product and a sum
    put(_packet_names("avg_pool3d_backward"), _pool_backward)
    put(_packet_names("max_pool3d_with_indices_backward adaptive_max_pool3d_backward"), _per_input(1))
    put(_packet_names("_adaptive_avg_pool3d_backward"), _grad_in_plus_out)


def _gelu_backward(grad_out, x, *args, out_shape, **kwargs) -> int:
    """11 per element (erf form: cdf 4, pdf 4, grad x (cdf + x pdf) 3); 18 with approximate='tanh'."""
    approximate = kwargs.get("approximate", args[0] if args else "none")
    return (18 if approximate == "tanh" else 11) * _n_out(out_shape)


# ---- sampling: grid sampling, unfold/fold (the second-wave blocks: CARAFE, DySample, SFNet, FaPN, ---------
# Deformable DETR). Each count follows ATen's CPU kernel (aten/src/ATen/native/GridSampler.{h,cpp}).

_GRID_PER_OUTPUT = {0: 7, 1: 0, 2: 35}  # bilinear: 4 mul + 3 add; nearest: a copy; bicubic: 5 cubic_interp1d of 7
_GRID_PER_POINT = {0: 10, 1: 2, 2: 54}  # bilinear: floor 2, fractions 2, 1 - f 2, corner weights 4; nearest: round 2;
#                                          bicubic: floor 2, fractions 2, 4 cubic coefficients per axis 2 x 25
_GRID_COORDS = {0: 2, 1: 2, 2: 8}  # coordinates that padding clips per grid point (bicubic: 4 taps per axis)
_GRID_PADDING = {0: 0, 1: 2, 2: 8}  # per clipped coordinate: zeros 0; border clamp 2; reflection abs, sub, fmod,
#                                     div, floor, parity, add or sub (6) and the clamp (2)


def _grid_sampler_2d(x, grid, interpolation_mode=0, padding_mode=0, align_corners=False, *, out_shape) -> int:
    """Per output element (N x C x Hout x Wout): bilinear 7, nearest 0, bicubic 35. Per grid point
    (N x Hout x Wout): unnormalise 4 (mul, add per axis) + padding (border 2, reflection 8 per clipped
    coordinate: 2, or 8 for bicubic's taps; zeros 0) + the weights (bilinear 10, nearest 2, bicubic 54)."""
    points = prod(grid[:-1])
    per_point = 4 + _GRID_COORDS[interpolation_mode] * _GRID_PADDING[padding_mode] + _GRID_PER_POINT[interpolation_mode]
    return _GRID_PER_OUTPUT[interpolation_mode] * _n_out(out_shape) + per_point * points


_GRID_BACKWARD = {0: (8, 24), 1: (1, 0), 2: (32, 128)}  # per grad_output element: (grad_input, grad_grid)
_GRID_BACKWARD_POINT = {0: 6, 1: 0, 2: 52}  # distances to the corners 4 + 2 (bilinear); coefficient gradients 50 + 2


def _grid_sampler_2d_backward(grad_out, x, grid, interpolation_mode, padding_mode, align_corners, output_mask, *,
                              out_shape) -> int:
    """Per element of grad_output: grad_input bilinear 8 (4 corners: mul, add), nearest 1, bicubic 32;
    grad_grid bilinear 24 (per corner, per axis: 2 mul, 1 add), nearest 0, bicubic 128 (per tap and axis:
    3 mul, 1 add). Per grid point: the forward's coordinates and weights again, and for grad_grid
    bilinear 6 (corner distances 4, the unnormalise factor 2), bicubic 52 (coefficient gradients 50, factor 2)."""
    gi, gg = _GRID_BACKWARD[interpolation_mode]
    want_input = bool(output_mask[0]) if output_mask is not None else True
    want_grid = bool(output_mask[1]) if output_mask is not None else True
    points = prod(grid[:-1])
    forward_point = 4 + _GRID_COORDS[interpolation_mode] * _GRID_PADDING[padding_mode] + _GRID_PER_POINT[interpolation_mode]
    n = _numel(grad_out)
    return ((gi * n if want_input else 0) + (gg * n + _GRID_BACKWARD_POINT[interpolation_mode] * points if want_grid else 0)
            + (forward_point * points if want_input or want_grid else 0))


def _col2im(x, *args, out_shape, **kwargs) -> int:
    """1 per input (column) element: each is added into the zeroed image (overlapping windows sum)."""
    return _numel(x)


def _sampling_table(put) -> None:
    put(_packet_names("grid_sampler_2d _grid_sampler_2d_cpu_fallback"), _grid_sampler_2d)
    put(_packet_names("grid_sampler_2d_backward _grid_sampler_2d_cpu_fallback_backward"), _grid_sampler_2d_backward)
    put(_packet_names("im2col linspace"), _zero)  # unfold: data movement; linspace: index generation, as arange
    put(_packet_names("col2im"), _col2im)


VIEW_OPS: frozenset[str] = frozenset(_packet_names(
    "view _unsafe_view reshape _reshape_alias permute transpose t expand expand_as squeeze unsqueeze slice select "
    "split split_with_sizes unbind alias detach as_strided unfold narrow chunk lift_fresh empty empty_like "
    "empty_strided new_empty new_empty_strided view_as flatten unflatten movedim diagonal _local_scalar_dense"))
"""Packets whose results alias their input (or allocate nothing): 0 FLOPs and no bytes moved."""

BATCH_NORM_OPS: frozenset[str] = frozenset(_packet_names(
    "native_batch_norm _native_batch_norm_legit _native_batch_norm_legit_no_training cudnn_batch_norm "
    "miopen_batch_norm"))
"""Batch norms: only the normalised map counts as bytes written (the saved statistics are empty
on CPU in eval mode but not on meta)."""

for _key, (_fn, _raw) in _builtin_table().items():
    _add(_key, _fn, raw=_raw)
BUILTIN_OPS: frozenset[str] = frozenset(_FORMULAS)
"""The op names of the built-in formulas."""
del _key, _fn, _raw
